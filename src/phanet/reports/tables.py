"""Paper-style tables as Markdown (and CSV), computed from evaluation results.

Each function takes plain data (evaluation summaries as written by :mod:`phanet.evaluation`, or
rows of numbers) and returns a :class:`pandas.DataFrame` in the paper's layout; :func:`to_markdown`
renders any of them. Accuracies are percentages with two decimals, as in the paper.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phanet.files import atomic_write_text, write_csv


def pct(value: float | None) -> float:
    """A fraction as a percentage (NaN stays NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    return 100.0 * float(value)


def mean_std(values: Sequence[float]) -> str:
    """``"84.92 ± 1.20"`` of percentages (sample standard deviation; ``± 0.00`` for a single value)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.2f} ± {std:.2f}"


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "-" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def to_markdown(table: pd.DataFrame, bold_max: Sequence[str] = ()) -> str:
    """A GitHub Markdown table; the highest value of each column in ``bold_max`` is set in bold."""
    best = {c: table[c].max() for c in bold_max if c in table and pd.api.types.is_numeric_dtype(table[c])}
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" if not pd.api.types.is_numeric_dtype(table[c]) else "---:" for c in table.columns) + "|"
    lines = [header, rule]
    for _, row in table.iterrows():
        cells = []
        for column in table.columns:
            text = _cell(row[column])
            if column in best and not pd.isna(row[column]) and row[column] == best[column]:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_table(table: pd.DataFrame, path: str | Path, title: str = "", bold_max: Sequence[str] = ()) -> str:
    """Write ``path``.md and ``path``.csv; returns the Markdown (with its title)."""
    path = Path(path)
    write_csv(path.with_suffix(".csv"), table)
    markdown = (f"**{title}**\n\n" if title else "") + to_markdown(table, bold_max)
    atomic_write_text(path.with_suffix(".md"), markdown + "\n")
    return markdown


def pose_range(poses: Sequence[str]) -> str:
    """``(-90°, 90°)`` from pose class names that are angles; '-' otherwise."""
    try:
        angles = [float(p) for p in poses]
    except ValueError:
        return "-"
    if not angles:
        return "-"
    return f"({min(angles):g}°, {max(angles):g}°)"


def method_table(results: dict[str, dict[str, Any]], features: dict[str, str] | None = None) -> pd.DataFrame:
    """Tables I, V, VII: method, features, yaw range, pose accuracy, FER accuracy (one row per method)."""
    features = features or {}
    rows = []
    for method, summary in results.items():
        rows.append(
            {
                "Methods": method,
                "Features": features.get(method, ""),
                "Yaw": pose_range(summary.get("pose_classes", [])),
                "Acc. of pose": pct(summary.get("pose_accuracy")),
                "Acc. of FER": pct(summary.get("expression_accuracy")),
            }
        )
    return pd.DataFrame(rows)


def per_pose_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Tables II and III: FER accuracy of each method under every yaw angle, and the average."""
    poses: list[str] = []
    for summary in results.values():
        for pose in summary.get("expression_accuracy_per_pose", {}):
            if pose not in poses:
                poses.append(pose)
    with contextlib.suppress(ValueError):  # class names that are not angles keep their order
        poses.sort(key=float)
    rows = []
    for method, summary in results.items():
        per_pose = summary.get("expression_accuracy_per_pose", {})
        row: dict[str, Any] = {"Methods": method}
        for pose in poses:
            row[f"{pose}°" if _is_angle(pose) else pose] = pct(per_pose.get(pose))
        row["Average"] = pct(summary.get("expression_accuracy"))
        rows.append(row)
    return pd.DataFrame(rows)


def _is_angle(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def expression_pose_table(predictions: pd.DataFrame, expressions: Sequence[str], poses: Sequence[str]) -> pd.DataFrame:
    """Table IV: recognition rate of every expression (rows) under every pose (columns), with averages.

    ``predictions`` has ``true_expression``, ``true_pose`` and ``expression`` columns (an evaluation's
    predictions.csv). The bottom row averages each pose, the right column each expression, the
    corner is the overall accuracy.
    """
    frame = predictions.copy()
    frame["true_pose"] = frame["true_pose"].astype(str)
    frame["correct"] = frame["expression"] == frame["true_expression"]
    rows = []
    for expression in expressions:
        row: dict[str, Any] = {"Exp./pose": expression}
        part = frame[frame["true_expression"] == expression]
        for pose in poses:
            cell = part[part["true_pose"] == pose]["correct"]
            row[f"{pose}°" if _is_angle(pose) else pose] = pct(cell.mean()) if len(cell) else math.nan
        row["Average"] = pct(part["correct"].mean()) if len(part) else math.nan
        rows.append(row)
    average: dict[str, Any] = {"Exp./pose": "Average"}
    for pose in poses:
        cell = frame[frame["true_pose"] == pose]["correct"]
        average[f"{pose}°" if _is_angle(pose) else pose] = pct(cell.mean()) if len(cell) else math.nan
    average["Average"] = pct(frame["correct"].mean())
    rows.append(average)
    return pd.DataFrame(rows)


#: The paper's Table VI column for BU-3DFE, keyed by a row's (scales, joint SAL), for side-by-side reporting.
PAPER_TABLE6_BU3DFE = {
    (("N_S1",), False): 77.79,
    (("H_S2",), False): 83.10,
    (("H_S3",), False): 80.57,
    (("N_S1", "H_S2"), False): 83.20,
    (("N_S1", "H_S3"), False): 84.24,
    (("H_S2", "H_S3"), False): 81.57,
    (("N_S1", "H_S2", "H_S3"), False): 84.74,
    (("N_S1", "H_S2", "H_S3"), True): 84.92,
}

#: The paper's Table VIII for BU-3DFE: (pose, FER) accuracy per loss setting (no pose loss, no pose accuracy).
PAPER_TABLE8_BU3DFE = {
    "e": (math.nan, 77.79),
    "att_e": (math.nan, 80.15),
    "p_e": (98.25, 79.34),
    "att_e_p": (98.70, 82.27),
    "multi": (99.49, 84.92),
}


def ranked(values: dict[str, float]) -> dict[str, int]:
    """Rank of every entry (1 = highest; ties share the best rank; NaN last)."""
    series = pd.Series(values, dtype=float).rank(method="min", ascending=False, na_option="bottom")
    return {k: int(v) for k, v in series.items()}
