"""Report tables of the experiment commands: ablations (Tables VI, VIII) and cross-validation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phanet.config import POSE_LOSS_SETTINGS
from phanet.inference import TrainedModel
from phanet.reports import figures
from phanet.reports.embedding import representations, tsne
from phanet.reports.tables import PAPER_TABLE6_BU3DFE, PAPER_TABLE8_BU3DFE, mean_std, pct, ranked, write_table
from phanet.training.module import MONITOR as tested_by  # the metric that picks the tested checkpoint
from phanet.training.run_folder import RunFolder


def _attention_key(run: Any) -> tuple[tuple[str, ...], bool]:
    """A run's Table VI configuration: (scales, joint SAL), as its evaluation summary records them."""
    return tuple(run.summary["scales"]), bool(run.summary["joint_sa"])


def _with_setting(rows: list[tuple[str, Any]], setting: str) -> Any:
    return next((run for _, run in rows if run.summary["loss_setting"] == setting), None)


def training_columns(run: Any) -> dict[str, Any]:
    """How a row trained, from its per-epoch metrics: the epochs run, the epoch whose checkpoint was
    tested (best validation FER accuracy, counted from 1; the first of equal ones, as the checkpoint
    callback keeps it), the training FER accuracy (%) in that epoch, NaN when no epoch was
    validated, and the wall minutes of its epochs (training and validation); then what ended its
    training (:func:`ended_by`). A run that carries these columns
    already (``run.training``, a published summary's) gives them as they are."""
    if getattr(run, "training", None) is not None:
        return dict(run.training)
    metrics = getattr(run, "metrics", None)
    ended = {"Ended by": ended_by(getattr(run, "run_dir", None))}
    if metrics is None or tested_by not in metrics or metrics[tested_by].isna().all():
        return {"Epochs": math.nan, "Tested epoch": math.nan, "Train FER": math.nan, "Minutes": math.nan, **ended}
    per_epoch = metrics.groupby("epoch").last()  # a resumed run may log an epoch twice
    tested = per_epoch[tested_by].idxmax()
    seconds = per_epoch["seconds"].sum() if "seconds" in per_epoch else math.nan
    return {
        "Epochs": len(per_epoch),
        "Tested epoch": int(tested) + 1,
        "Train FER": pct(per_epoch.loc[tested].get("train/expression_acc", math.nan)),
        "Minutes": round(seconds / 60, 1),
        **ended,
    }


def ended_by(run_dir: Path | None) -> str:
    """What ended the training in ``run_dir``, in words for a report: ``early stopping``, ``epoch limit
    (40)`` (train.epochs), ``time cap (90 min)`` (train.max_minutes) or ``interruption``; ``-`` when
    unknown."""
    if run_dir is None:
        return "-"
    folder = RunFolder(run_dir)
    ended, config = folder.ended_by(), folder.stored_config()
    if ended is None or config is None:
        return "-"
    if ended == "epochs":
        return f"epoch limit ({config.train.epochs})"
    if ended == "max_minutes":
        return f"time cap ({config.train.max_minutes:g} min)"
    return {"early_stop": "early stopping", "interrupted": "interruption"}[ended]


def table6(rows: list[tuple[str, Any]], dataset: str) -> pd.DataFrame:
    """Table VI with the measured accuracy, its rank, and the paper's BU-3DFE column and rank; then
    the row's pose accuracy and how it trained (:func:`training_columns`)."""
    measured = {label: pct(run.summary["expression_accuracy"]) for label, run in rows}
    paper = {label: PAPER_TABLE6_BU3DFE.get(_attention_key(run), math.nan) for label, run in rows}
    measured_rank, paper_rank = ranked(measured), ranked(paper)
    return pd.DataFrame(
        [
            {
                "Different attention": label,
                f"Acc. on {dataset}": measured[label],
                "rank": measured_rank[label],
                "Paper (BU-3DFE)": paper[label],
                "paper rank": paper_rank[label],
                "Pose": pct(run.summary["pose_accuracy"]),
                **training_columns(run),
            }
            for label, run in rows
        ]
    )


def table8(rows: list[tuple[str, Any]]) -> pd.DataFrame:
    """Table VIII: pose and expression accuracy per loss setting, next to the paper's BU-3DFE values,
    then how each row trained (:func:`training_columns`).

    Settings without a pose loss (L(e), L_att + L(e)) report no pose accuracy, as in the paper.
    """
    records = []
    for label, run in rows:
        has_pose = run.summary["loss_setting"] in POSE_LOSS_SETTINGS
        records.append(
            {
                "Different loss": label,
                "Acc. on Pose": pct(run.summary["pose_accuracy"]) if has_pose else math.nan,
                "Acc. on Exp.": pct(run.summary["expression_accuracy"]),
                "Paper pose": PAPER_TABLE8_BU3DFE.get(run.summary["loss_setting"], (math.nan, math.nan))[0],
                "Paper exp.": PAPER_TABLE8_BU3DFE.get(run.summary["loss_setting"], (math.nan, math.nan))[1],
                **training_columns(run),
            }
        )
    return pd.DataFrame(records)


def ablation_markdown(results: dict[str, list[tuple[str, Any]]], faces: Any, out: Path) -> str:
    """Tables VI and VIII, Fig. 15 (with/without the constraint factor) and Fig. 14 (with/without
    joint SAL) from the ablation runs; ``faces`` is the dataset they were tested on."""
    dataset = faces.name
    parts = []
    if "6" in results:
        parts.append(
            write_table(
                table6(results["6"], dataset),
                out / "table6",
                "Table VI — FER accuracy (%) of each attention configuration",
                bold_max=[f"Acc. on {dataset}"],
            )
        )
    if "8" in results:
        parts.append(
            write_table(
                table8(results["8"]),
                out / "table8",
                "Table VIII — accuracy (%) of each loss setting",
                bold_max=["Acc. on Pose", "Acc. on Exp."],
            )
        )
    if "fig15" in results and "8" in results and _with_setting(results["8"], "multi") is not None:
        with_factor = _with_setting(results["8"], "multi")
        label, without = results["fig15"][0]
        figures.task_weights_figure(
            {"with factor": with_factor.metrics, "without factor": without.metrics}, out / "fig15_task_weights.png", "DCML"
        )
        final = without.metrics.iloc[-1]
        parts.append(
            "**Fig. 15 — dynamic task weights with and without the constraint factor**\n\n"
            f"Without the factor ({label}): final λe = {final['train/lambda_e']:.3f}, λp = {final['train/lambda_p']:.3f}; "
            f"FER accuracy {pct(without.summary['expression_accuracy']):.2f} %, pose accuracy "
            f"{pct(without.summary['pose_accuracy']):.2f} % (with it: "
            f"{pct(with_factor.summary['expression_accuracy']):.2f} % and {pct(with_factor.summary['pose_accuracy']):.2f} %)."
            "\n\n![task weights](fig15_task_weights.png)"
        )
    if "6" in results:
        runs = {_attention_key(run): run for _, run in results["6"]}
        full = ("N_S1", "H_S2", "H_S3")
        parts.append(tsne_comparison(runs.get((full, True)), runs.get((full, False)), faces, out))
    return "\n\n".join(p for p in parts if p)


def tsne_comparison(with_sal: Any, without_sal: Any, faces: Any, out: Path, count: int = 900) -> str:
    """Fig. 14 from two trained networks: f with joint SAL against the fused features without SAL,
    on the same test images."""
    if with_sal is None or without_sal is None:
        return ""
    test = set(with_sal.summary["test_subjects"])
    indices = [i for i, s in enumerate(faces.samples) if s.subject in test]
    chosen = sorted(np.random.default_rng(0).choice(indices, size=min(count, len(indices)), replace=False).tolist())
    labels = np.array([faces.samples[i].expression for i in chosen])
    embeddings = {}
    for name, run in (("(a) PhaNet with joint SAL: f", with_sal), ("(b) without joint SAL: fused features", without_sal)):
        features = representations(TrainedModel.from_checkpoint(run.checkpoint), faces, chosen)["f"]
        embeddings[name] = (tsne(features), labels)
    figures.tsne_figure(embeddings, faces.expressions, out / "fig14_tsne.png")
    return (
        "**Fig. 14 — t-SNE of the joint representation of test images, with and without joint SAL**\n\n![t-SNE](fig14_tsne.png)"
    )


def crossval_tables(results: dict[str, list[Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-fold accuracies, mean ± std per method), accuracies in %."""
    folds = []
    for method, runs in results.items():
        for k, run in enumerate(runs, start=1):
            folds.append(
                {
                    "Method": method,
                    "Fold": k,
                    "Test subjects": len(run.summary.get("test_subjects", [])),
                    "Acc. of pose": pct(run.summary["pose_accuracy"]),
                    "Acc. of FER": pct(run.summary["expression_accuracy"]),
                }
            )
    per_fold = pd.DataFrame(folds)
    summary = pd.DataFrame(
        [
            {
                "Method": method,
                "Folds": len(runs),
                "Acc. of pose (mean ± std)": mean_std([pct(r.summary["pose_accuracy"]) for r in runs]),
                "Acc. of FER (mean ± std)": mean_std([pct(r.summary["expression_accuracy"]) for r in runs]),
            }
            for method, runs in results.items()
        ]
    )
    return per_fold, summary


def per_expression_table(results: dict[str, list[Any]]) -> pd.DataFrame:
    """Table V: FER accuracy (%) of every expression per method, the mean over folds (or runs)."""
    rows = []
    for method, runs in results.items():
        classes = runs[0].summary["expression_classes"]
        per_run = [[run.summary["expression_accuracy_per_class"].get(c, math.nan) for c in classes] for run in runs]
        means = np.nanmean(np.asarray(per_run, dtype=float), axis=0) * 100.0
        row = {"Method": method, **{c: float(v) for c, v in zip(classes, means)}}
        row["Average"] = float(np.mean([pct(run.summary["expression_accuracy"]) for run in runs]))
        rows.append(row)
    return pd.DataFrame(rows)
