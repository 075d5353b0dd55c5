"""Report tables of the experiment commands: ablations (Tables VI, VIII) and cross-validation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from phanet.reports.tables import LOSS_ROWS, PAPER_TABLE6_BU3DFE, mean_std, pct, ranked, write_table


def table6(rows: list[tuple[str, Any]], dataset: str) -> pd.DataFrame:
    """Table VI with the measured accuracy, its rank, and the paper's BU-3DFE column and rank."""
    measured = {label: pct(run.summary["expression_accuracy"]) for label, run in rows}
    paper = {label: PAPER_TABLE6_BU3DFE.get(label, math.nan) for label, _ in rows}
    measured_rank, paper_rank = ranked(measured), ranked(paper)
    return pd.DataFrame([{
        "Different attention": label,
        f"Acc. on {dataset}": measured[label],
        "rank": measured_rank[label],
        "Paper (BU-3DFE)": paper[label],
        "paper rank": paper_rank[label],
    } for label, _ in rows])


def table8(rows: list[tuple[str, Any]]) -> pd.DataFrame:
    """Table VIII: pose and expression accuracy per loss setting, next to the paper's BU-3DFE values.

    Settings without a pose loss (L(e), L_att + L(e)) report no pose accuracy, as in the paper.
    """
    paper = {label: values for _, label, values in LOSS_ROWS}
    records = []
    for label, run in rows:
        has_pose = run.summary["loss_setting"] in ("p_e", "att_e_p", "multi")
        records.append({
            "Different loss": label,
            "Acc. on Pose": pct(run.summary["pose_accuracy"]) if has_pose else math.nan,
            "Acc. on Exp.": pct(run.summary["expression_accuracy"]),
            "Paper pose": paper.get(label, (math.nan, math.nan))[0],
            "Paper exp.": paper.get(label, (math.nan, math.nan))[1],
        })
    return pd.DataFrame(records)


def ablation_markdown(results: dict[str, list[tuple[str, Any]]], dataset: str, out: Path) -> str:
    parts = []
    if "6" in results:
        parts.append(write_table(table6(results["6"], dataset), out / "table6",
                                 "Table VI — FER accuracy (%) of each attention configuration",
                                 bold_max=[f"Acc. on {dataset}"]))
    if "8" in results:
        parts.append(write_table(table8(results["8"]), out / "table8",
                                 "Table VIII — accuracy (%) of each loss setting",
                                 bold_max=["Acc. on Pose", "Acc. on Exp."]))
    return "\n\n".join(parts)


def crossval_tables(results: dict[str, list[Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-fold accuracies, mean ± std per method), accuracies in %."""
    folds = []
    for method, runs in results.items():
        for k, run in enumerate(runs, start=1):
            folds.append({"Method": method, "Fold": k, "Test subjects": len(run.summary.get("test_subjects", [])),
                          "Acc. of pose": pct(run.summary["pose_accuracy"]),
                          "Acc. of FER": pct(run.summary["expression_accuracy"])})
    per_fold = pd.DataFrame(folds)
    summary = pd.DataFrame([{
        "Method": method,
        "Folds": len(runs),
        "Acc. of pose (mean ± std)": mean_std([pct(r.summary["pose_accuracy"]) for r in runs]),
        "Acc. of FER (mean ± std)": mean_std([pct(r.summary["expression_accuracy"]) for r in runs]),
    } for method, runs in results.items()])
    return per_fold, summary
