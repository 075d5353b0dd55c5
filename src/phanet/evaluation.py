"""``phanet evaluate``: the prediction rows of a trained model over labelled faces
(:meth:`phanet.inference.TrainedModel.labelled_rows`), and from them accuracy overall and per pose
and confusion matrices."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

from phanet.data.records import MISSING, LabeledFaces
from phanet.errors import PhanetError
from phanet.files import write_json as write_json_atomically
from phanet.inference import TrainedModel


@dataclass
class LabelMap:
    """How the data's class indices map onto the model's (by name, or through a cross-dataset mapping).

    ``expression[i]`` / ``pose[i]`` is the model's index for the data's class i, or ``MISSING`` when
    the model has no counterpart (such samples are reported, and left out of that accuracy).
    """

    expression: list[int]
    pose: list[int]
    unmatched_expressions: list[str]
    unmatched_poses: list[str]


def label_map(
    model_expressions: list[str], model_poses: list[str], faces: LabeledFaces, mapping: dict[str, str] | None = None
) -> LabelMap:
    """Map the data's classes onto the model's: by name, or through ``mapping`` (data name → model name;
    data classes absent from it have no counterpart)."""
    if mapping is None:
        mapping = {n: n for n in faces.expressions}
    expr = [model_expressions.index(mapping[n]) if mapping.get(n) in model_expressions else MISSING for n in faces.expressions]
    pose = [model_poses.index(n) if n in model_poses else MISSING for n in faces.poses]
    return LabelMap(
        expression=expr,
        pose=pose,
        unmatched_expressions=[n for n, i in zip(faces.expressions, expr) if i == MISSING],
        unmatched_poses=[n for n, i in zip(faces.poses, pose) if i == MISSING],
    )


def _accuracy(predicted: np.ndarray, true: np.ndarray) -> float:
    return float((predicted == true).mean()) if len(true) else math.nan


def summarize(
    frame: pd.DataFrame, model_expressions: list[str], model_poses: list[str], faces: LabeledFaces, labels: LabelMap
) -> dict[str, Any]:
    """Accuracies, per-pose expression accuracy and confusion matrices (rows = true, columns = predicted)."""
    expr_index = {n: i for i, n in enumerate(faces.expressions)}
    true_e = np.array([labels.expression[expr_index[n]] for n in frame["true_expression"]])
    pred_e = np.array([model_expressions.index(n) for n in frame["expression"]])
    keep_e = true_e != MISSING
    result: dict[str, Any] = {
        "samples": int(len(frame)),
        "expression_classes": model_expressions,
        "pose_classes": model_poses,
        "expression_accuracy": _accuracy(pred_e[keep_e], true_e[keep_e]),
        "unmatched_expressions": {n: int((frame["true_expression"] == n).sum()) for n in labels.unmatched_expressions},
    }
    cm = (
        multiclass_confusion_matrix(
            torch.from_numpy(pred_e[keep_e]), torch.from_numpy(true_e[keep_e]), num_classes=len(model_expressions)
        )
        if keep_e.any()
        else None
    )
    result["confusion_expression"] = cm.tolist() if cm is not None else []
    if cm is not None:
        totals = cm.sum(1).clamp(min=1)
        result["expression_accuracy_per_class"] = {
            n: (float(cm[i, i] / totals[i]) if cm[i].sum() else math.nan) for i, n in enumerate(model_expressions)
        }
        shown = [v for v in result["expression_accuracy_per_class"].values() if not math.isnan(v)]
        # Every expression counts alike, however many test images it has (imbalanced data).
        result["expression_accuracy_mean_per_class"] = float(np.mean(shown)) if shown else math.nan
    pose_index = {n: i for i, n in enumerate(faces.poses)}
    has_pose = frame["true_pose"] != ""
    if model_poses and has_pose.any():
        true_p = np.array([labels.pose[pose_index[n]] if n else MISSING for n in frame["true_pose"]])
        pred_p = np.array([model_poses.index(n) for n in frame["pose"]])
        keep_p = true_p != MISSING
        result["pose_accuracy"] = _accuracy(pred_p[keep_p], true_p[keep_p])
        result["pose_samples"] = int(keep_p.sum())
        result["unmatched_poses"] = {n: int((frame["true_pose"] == n).sum()) for n in labels.unmatched_poses}
        cmp = (
            multiclass_confusion_matrix(
                torch.from_numpy(pred_p[keep_p]), torch.from_numpy(true_p[keep_p]), num_classes=len(model_poses)
            )
            if keep_p.any()
            else None
        )
        result["confusion_pose"] = cmp.tolist() if cmp is not None else []
    else:
        result["pose_accuracy"] = math.nan
        result["pose_samples"] = 0
        result["confusion_pose"] = []
    per_pose = {}
    for name in faces.poses:
        rows = (frame["true_pose"] == name).to_numpy() & keep_e
        if rows.any():
            per_pose[name] = _accuracy(pred_e[rows], true_e[rows])
    result["expression_accuracy_per_pose"] = per_pose
    for column, key in (("c", "mean_scale_weights"), ("lambda", "mean_task_weights")):
        names = ["c1", "c2", "c3"] if column == "c" else ["lambda_e", "lambda_p"]
        result[key] = [float(frame[n].mean()) if frame[n].notna().any() else math.nan for n in names]
    return result


def format_summary(result: dict[str, Any]) -> str:
    """The evaluation as a few readable lines (accuracies in %)."""

    def pct(value: float) -> str:
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"

    lines = [f"samples: {result['samples']}", f"expression accuracy: {pct(result['expression_accuracy'])} %"]
    per_class = {n: v for n, v in result.get("expression_accuracy_per_class", {}).items() if not math.isnan(v)}
    if per_class:
        lines.append(f"expression accuracy per expression (%; mean {pct(result['expression_accuracy_mean_per_class'])}):")
        lines.append("  " + "  ".join(f"{n:>6s}" for n in per_class))
        lines.append("  " + "  ".join(f"{pct(v):>6s}" for v in per_class.values()))
    lines.append(f"pose accuracy: {pct(result['pose_accuracy'])} %")
    if result["expression_accuracy_per_pose"]:
        poses = list(result["expression_accuracy_per_pose"])
        lines.append("expression accuracy per pose (%):")
        lines.append("  " + "  ".join(f"{p:>6s}" for p in poses))
        lines.append("  " + "  ".join(f"{pct(result['expression_accuracy_per_pose'][p]):>6s}" for p in poses))
    for key in ("unmatched_expressions", "unmatched_poses"):
        if result.get(key):
            lines.append(f"{key.replace('_', ' ')} (left out): " + ", ".join(f"{k} ({v})" for k, v in result[key].items()))
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """JSON with NaN (and infinities) written as null, written atomically (:mod:`phanet.files`)."""
    write_json_atomically(path, _clean(payload))
    return Path(path)


def evaluate(
    model: TrainedModel, faces: LabeledFaces, batch_size: int = 64, mapping: dict[str, str] | None = None, progress: bool = False
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Evaluate ``model`` on all of ``faces``: (summary, per-sample predictions)."""
    labels = label_map(model.expressions, model.poses, faces, mapping)
    if len(labels.unmatched_expressions) == len(faces.expressions):
        raise PhanetError(
            f"evaluate: none of the data's expression classes {faces.expressions} is among the model's "
            f"{model.expressions}; give a class mapping (phanet crossdata) for a cross-dataset test"
        )
    frame = model.labelled_rows(faces, batch_size, progress=progress)
    summary = summarize(frame, model.expressions, model.poses, faces, labels)
    summary["skipped"] = [{"path": p, "reason": r} for p, r in faces.skipped]
    return summary, frame
