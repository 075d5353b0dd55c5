"""Region coverage: how often the attended squares hold the facial parts that carry an expression.

The paper shows (Figs. 9–11) that the S2 and S3 squares of the pixel attention networks settle on the
mouth, eyes and brows whatever the pose. With landmark ground truth (the ``lm_<point>_x``,
``lm_<point>_y``, ``lm_<point>_vis`` columns of the built-in dataset's manifest, see
:mod:`phanet.synth.landmarks`) this is counted per yaw and per scale.

Squares follow :mod:`phanet.results` and :mod:`phanet.models.attention`: ``(x, y, l)`` is the
centre and the **half** side in normalised image coordinates (x to the right, y down, [0, 1] across
the image), so a square spans ``[x - l, x + l] × [y - l, y + l]``. Landmarks use the same coordinates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from phanet.data.manifest import canonical_pose
from phanet.data.records import sort_pose_names
from phanet.errors import PhanetError
from phanet.models.attention import at_range_end
from phanet.synth.landmarks import landmark_columns

#: Expression regions and the landmarks that stand for them.
REGIONS: dict[str, tuple[str, ...]] = {
    "mouth": ("mouth", "mouth_left", "mouth_right"),
    "eye": ("left_eye", "right_eye"),
    "brow": ("left_brow", "right_brow"),
}
#: Attended scales: the S2 and S3 squares of the results table.
SCALES = ("S2", "S3")


def square_covers(box: np.ndarray, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Whether each square contains at least one visible point.

    ``box`` (..., 3): squares (x, y, l), l the half side. ``points`` (..., K, 3): K points (x, y,
    visible) per square, visible > 0 where the point is seen. A point on the square's border is
    inside; ``margin`` widens the square by that much on every side (normalised units). A square or
    point with NaN coordinates covers nothing. Returns a bool array of the batch shape (...).
    """
    box = np.asarray(box, dtype=float)
    points = np.asarray(points, dtype=float)
    x, y, half = box[..., 0:1], box[..., 1:2], box[..., 2:3] + margin
    inside = (np.abs(points[..., 0] - x) <= half) & (np.abs(points[..., 1] - y) <= half) & (points[..., 2] > 0)
    return inside.any(axis=-1)


def region_points(landmarks: pd.DataFrame, region: str) -> np.ndarray:
    """The points of ``region`` (a key of :data:`REGIONS`) as an (N, K, 3) array of x, y, visible."""
    return np.stack([landmarks[list(landmark_columns(name))].to_numpy(dtype=float) for name in REGIONS[region]], 1)


def _require(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PhanetError(f"coverage: the {what} has no column {missing[0]!r} (needs {', '.join(columns)})")


def coverage_table(
    results: pd.DataFrame, landmarks: pd.DataFrame, pose_column: str = "true_pose", margin: float = 0.0
) -> pd.DataFrame:
    """Fraction of images whose S2 / S3 square covers each expression region, per yaw and scale.

    ``results``: the per-image table of ``phanet evaluate`` (``predictions.csv``, or
    :func:`phanet.evaluation.predict_faces`), of which ``path``, ``pose_column`` (default
    ``true_pose``, the labelled yaw) and the squares ``s2_x, s2_y, s2_l, s3_x, s3_y, s3_l`` are used.
    ``landmarks``: a table with ``path`` and the landmark columns ``lm_<point>_{x,y,vis}`` (the
    built-in dataset's ``manifest.csv``, or :func:`phanet.data.adapters.synth.landmark_table`). The
    two are joined on ``path``; results without landmarks are left out. ``margin``: see
    :func:`square_covers`.

    One row per pose and scale, poses in angle order and then ``all`` (every image, also those without
    a pose label): ``pose``, ``scale`` (S2, S3), ``images`` (joined images with a finite square at that
    scale), and the fractions ``mouth``, ``eye``, ``brow`` (the square holds a visible point of that
    region) and ``any`` (of at least one of the three). NaN where ``images`` is 0.
    """
    squares = [f"{s.lower()}_{c}" for s in SCALES for c in ("x", "y", "l")]
    points = [c for names in REGIONS.values() for name in names for c in landmark_columns(name)]
    _require(results, ["path", pose_column, *squares], "results table")
    _require(landmarks, ["path", *points], "landmark table")
    table = results[["path", pose_column, *squares]].merge(
        landmarks[["path", *points]].drop_duplicates("path"), on="path", how="inner"
    )
    if table.empty:
        raise PhanetError("coverage: no image of the results table is in the landmark table (joined on 'path')")
    pose = np.array([canonical_pose(p) for p in table[pose_column]], dtype=object)
    region_sets = {region: region_points(table, region) for region in REGIONS}
    valid, covers = {}, {}
    for scale in SCALES:
        box = table[[f"{scale.lower()}_{c}" for c in ("x", "y", "l")]].to_numpy(dtype=float)
        valid[scale] = np.isfinite(box).all(1)
        hits = {region: square_covers(box, pts, margin) for region, pts in region_sets.items()}
        hits["any"] = np.logical_or.reduce(list(hits.values()))
        covers[scale] = hits
    rows = []
    for name in [*sort_pose_names({p for p in pose if p}), "all"]:
        in_pose = pose == name if name != "all" else np.ones(len(table), dtype=bool)
        for scale in SCALES:
            chosen = valid[scale] & in_pose
            count = int(chosen.sum())
            row = {"pose": name, "scale": scale, "images": count}
            for region, hit in covers[scale].items():
                row[region] = float(hit[chosen].mean()) if count else float("nan")
            rows.append(row)
    return pd.DataFrame(rows, columns=["pose", "scale", "images", *REGIONS, "any"])


def coverage_by_pose(coverage: pd.DataFrame) -> pd.DataFrame:
    """:func:`coverage_table` laid out like the paper's per-yaw tables: one row per scale and region
    (``S2 any``, ``S3 any``, then S3's ``mouth``, ``eye``, ``brow``), one column per yaw and ``all``,
    percentages."""
    rows = []
    for scale, region in (("S2", "any"), ("S3", "any"), ("S3", "mouth"), ("S3", "eye"), ("S3", "brow")):
        part = coverage[coverage["scale"] == scale]
        label = f"{scale} square on mouth, eye or brow" if region == "any" else f"{scale} square on {region}"
        row: dict[str, object] = {"Region": label}
        for pose, value in zip(part["pose"], part[region]):
            row["all" if pose == "all" else f"{pose}°"] = round(100 * float(value), 2)
        rows.append(row)
    return pd.DataFrame(rows)


def local_s3_squares(results: pd.DataFrame) -> np.ndarray:
    """The S3 squares of ``results`` (columns ``s2_*``, ``s3_*`` in image coordinates) in the coordinates
    of the zoomed S2 square they were cut from, as the second PAN chose them: (N, 3) of x, y, l."""
    s2 = results[["s2_x", "s2_y", "s2_l"]].to_numpy(dtype=float)
    s3 = results[["s3_x", "s3_y", "s3_l"]].to_numpy(dtype=float)
    side = 2 * s2[:, 2:3]
    return np.concatenate([(s3[:, :2] - (s2[:, :2] - s2[:, 2:3])) / side, s3[:, 2:3] / side], axis=1)


def pinned_squares(results: pd.DataFrame, side_min: float, side_max: float, tolerance: float = 0.01) -> dict[str, float]:
    """Share of images whose S2 / S3 square sits at the end of its range, where its PAN has no gradient.

    Each square is taken in the coordinates of the image it was cut from (S2 in the input image, S3
    in the zoomed S2 square), as its PAN bounds it (:class:`~phanet.models.attention.PixelAttentionNetwork`):
    its centre offset ``(x - 1/2) / (1/2 - l)`` in [-1, 1] (tanh) and its side ``(2 l - side_min) /
    (side_max - side_min)`` in [0, 1] (sigmoid). A square is *pinned* when the centre offset along x
    or y is within ``tolerance`` of ±1, or the side within ``tolerance`` of 0 or 1
    (:func:`~phanet.models.attention.at_range_end`). Images without a
    finite square are left out. Returns ``{"S2": share, "S3": share}`` (NaN without squares).
    """
    out = {}
    for scale, box in (("S2", results[["s2_x", "s2_y", "s2_l"]].to_numpy(dtype=float)), ("S3", local_s3_squares(results))):
        valid = np.isfinite(box).all(1)
        offset = (box[valid, :2] - 0.5) / (0.5 - box[valid, 2:3])
        side = (2 * box[valid, 2] - side_min) / (side_max - side_min)
        out[scale] = float(at_range_end(offset, side, tolerance).mean()) if valid.any() else float("nan")
    return out
