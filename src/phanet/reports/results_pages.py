"""The results pages: a published summary (:mod:`phanet.reports.published`) as the Markdown tables of its
section, and its cells of the README's headline table. Every number comes from the summary; a
transcribed summary's tables are printed cell by cell as its report gave them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from phanet.reports.summaries import crossval_tables, per_expression_table, table6, table8
from phanet.reports.tables import mean_std, method_table, per_pose_table, to_markdown


def _runs(summary: dict[str, Any]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(
            name=r["name"],
            fold=r["fold"],
            table=r.get("table"),
            summary=r["evaluation"],
            training={k: (math.nan if v is None else v) for k, v in r["training"].items()},
            scale_weights=r.get("scale_weights"),
            coverage=r.get("coverage"),
        )
        for r in summary["runs"]
    ]


def _provenance_lines(summary: dict[str, Any]) -> list[str]:
    if summary.get("source") == "transcribed":
        return [f"*{summary['note']}*", "", f"Command: `{summary['command']}`."]
    machine = summary["machine"]
    version = f", generator version {summary['generator_version']}" if summary.get("generator_version") else ""
    load = summary.get("load")
    when = (f"1-minute load {load[0]} at the start and {load[1]} at the end" if load else "load not recorded") + (
        f"; {summary['minutes']:g} minutes" if summary.get("minutes") is not None else ""
    )
    return [
        f"Command: `{summary['command']}` (phanet {summary['phanet_version']}, commit {summary['commit']}{version}), "
        f"{summary['date']}.",
        "",
        f"Machine: {machine['cpu']}, {machine['usable_cores']} usable cores, {machine['device']}, torch "
        f"{machine['torch']}; threads: {summary['threads']}; {when}. Per-image table: "
        f"`docs/results/{summary['predictions']}`.",
    ]


def _training_table(runs: Sequence[SimpleNamespace]) -> pd.DataFrame:
    rows = []
    for run in runs:
        row = {"Method": run.name} if run.fold is None else {"Method": run.name, "Fold": run.fold}
        rows.append({**row, **run.training})
    return pd.DataFrame(rows)


def _weights_table(runs: Sequence[SimpleNamespace]) -> pd.DataFrame | None:
    rows = []
    for run in runs:
        spread = run.scale_weights
        if spread is None or spread["mean"][0] is None or all(math.isnan(m) for m in map(float, spread["mean"])):
            continue
        label = run.name if run.fold is None else f"{run.name}, fold {run.fold}"
        cells = {
            f"c{i + 1}": f"{float(m):.3f} ± {float(s):.3f}"
            for i, (m, s) in enumerate(zip(spread["mean"], spread["std"]))
            if m is not None and not math.isnan(float(m))
        }
        rows.append({"Network": label, **cells})
    return pd.DataFrame(rows) if rows else None


def _coverage_table(run: SimpleNamespace) -> pd.DataFrame:
    rows = [
        {"Square holds": label, **{f"{k}°" if k != "all" else k: 100 * v for k, v in values.items()}}
        for label, values in run.coverage.items()
    ]
    return pd.DataFrame(rows)


def _demo(summary: dict[str, Any]) -> list[str]:
    runs = _runs(summary)
    by_name = {run.name: run.summary for run in runs}
    features = {"PhaNet": "Pixel and scale attention", "DenseNet-40": "Dense features"}
    lines = [
        "**Table I — methods (accuracy in %, held-out subjects)**",
        "",
        to_markdown(method_table(by_name, features), ["Acc. of pose", "Acc. of FER"]),
        "",
        "**Table II — FER accuracy (%) per yaw**",
        "",
        to_markdown(per_pose_table(by_name)),
        "",
        "**FER accuracy (%) per expression**",
        "",
        to_markdown(per_expression_table({run.name: [run] for run in runs})),
        "",
        "**How each network trained**",
        "",
        to_markdown(_training_table(runs)),
    ]
    weights = _weights_table(runs)
    if weights is not None:
        lines += ["", "**Scale weights on the test images (mean ± std over the images)**", "", to_markdown(weights)]
    for run in runs:
        if run.coverage is not None:
            lines += ["", f"**Where {run.name}'s squares looked (% of the test images)**", "", to_markdown(_coverage_table(run))]
    return lines


def _crossval(summary: dict[str, Any]) -> list[str]:
    runs = _runs(summary)
    methods: dict[str, list[SimpleNamespace]] = {}
    for run in runs:
        methods.setdefault(run.name, []).append(run)
    per_fold, means = crossval_tables(methods)
    lines = [
        "**Accuracy (%) per fold**",
        "",
        to_markdown(per_fold),
        "",
        "**Mean ± standard deviation over the folds**",
        "",
        to_markdown(means),
        "",
        "**FER accuracy (%) per expression, mean over the folds**",
        "",
        to_markdown(per_expression_table(methods)),
        "",
    ]
    per_yaw = per_pose_table(
        {
            name: {
                "expression_accuracy_per_pose": {
                    yaw: float(np.mean([r.summary["expression_accuracy_per_pose"].get(yaw, math.nan) for r in group]))
                    for yaw in group[0].summary["expression_accuracy_per_pose"]
                },
                "expression_accuracy": float(np.mean([r.summary["expression_accuracy"] for r in group])),
            }
            for name, group in methods.items()
        }
    )
    lines += [
        "**FER accuracy (%) per yaw, mean over the folds**",
        "",
        to_markdown(per_yaw),
        "",
        "**How each network trained**",
        "",
        to_markdown(_training_table(runs)),
    ]
    weights = _weights_table(runs)
    if weights is not None:
        lines += ["", "**Scale weights on the test images (mean ± std over the images)**", "", to_markdown(weights)]
    return lines


def _ablation(summary: dict[str, Any]) -> list[str]:
    runs = _runs(summary)
    rows6 = [(r.name, r) for r in runs if r.table == "6"]
    lines = []
    if rows6:
        lines += [
            "**Table VI — attention configurations (accuracy in %)**",
            "",
            to_markdown(table6(rows6, "the built-in data")),
            "",
        ]
    rows8 = [(r.name, r) for r in runs if r.table == "8"]
    if rows8:
        lines += ["**Table VIII — loss settings (accuracy in %)**", "", to_markdown(table8(rows8))]
    return lines


def _transcribed(summary: dict[str, Any]) -> list[str]:
    """The tables of a transcribed summary, cell by cell as its report printed them."""
    lines: list[str] = []
    for table in summary["tables"]:
        head = "| " + " | ".join(table["columns"]) + " |"
        rule = "|---|" + "---:|" * (len(table["columns"]) - 1)
        lines += [f"**{table['title']}**", "", head, rule, *("| " + " | ".join(row) + " |" for row in table["rows"]), ""]
    return lines[:-1]


#: The headline table's columns (the README's): FER and pose accuracy of PhaNet and of DenseNet-40.
HEADLINE = ("PhaNet FER", "DenseNet-40 FER", "PhaNet pose", "DenseNet-40 pose")


def headline(summary: dict[str, Any]) -> list[str]:
    """A summary's cells of the headline table (:data:`HEADLINE`): one run's accuracies, or the mean ±
    standard deviation over the folds (a transcribed summary's, from the rows of its tables named
    after the columns, in their last column)."""
    if summary["kind"] == "transcribed":
        rows = {row[0]: row[-1].strip("*") for table in summary["tables"] for row in table["rows"]}
        return [rows[column] for column in HEADLINE]
    cells = []
    for column in HEADLINE:
        name, task = column.rsplit(" ", 1)
        key = "expression_accuracy" if task == "FER" else "pose_accuracy"
        values = [100 * run["evaluation"][key] for run in summary["runs"] if run["name"] == name]
        cells.append(f"{values[0]:.2f}" if len(values) == 1 else mean_std(values))
    return cells


def render(summary: dict[str, Any]) -> str:
    """The Markdown of a summary's results section: how it was made, then its tables. An ``inline``
    summary (a measurement whose page says beside it how it was made) gives its table alone."""
    kinds = {"demo": _demo, "crossval": _crossval, "ablation": _ablation, "transcribed": _transcribed}
    body = kinds[summary["kind"]](summary)
    if summary.get("inline"):
        return "\n".join(body[2:]) + "\n"  # without the table's bold title
    return "\n".join([*_provenance_lines(summary), "", *body]) + "\n"
