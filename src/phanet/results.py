"""One row per face: the prediction columns that evaluation, prediction and the reports all use.

:func:`face_rows` is the one step from a batch of network inputs to these rows, whatever runs the
network (a backend of :mod:`phanet.predict.backends`: PyTorch or ONNX Runtime). ``phanet evaluate``
puts the true labels in front of them, ``phanet predict`` and :class:`phanet.predict.Predictor` the
file, frame and face box. Columns, in order (``prob_<class>`` and ``pose_prob_<class>`` for every
class of the model; the pose columns only for a model with pose classes):

- ``expression``, ``expression_prob``, ``prob_<class>``: predicted expression, its probability, all probabilities;
- ``pose``, ``pose_prob``, ``pose_prob_<class>``: predicted pose (yaw) class and probabilities;
- ``s2_x, s2_y, s2_l, s3_x, s3_y, s3_l``: the attended S2 and S3 squares (centre, half side) in
  normalised [0, 1] coordinates of the network input (NaN for a model without attention);
- ``s2_x0, s2_y0, s2_x1, s2_y1, s3_x0 … s3_y1``: the same squares in pixels of the picture the face
  came from (left, top, right, bottom), given where in that picture the network input lies; NaN when
  that is not known (evaluation reads its images at the network's size);
- ``c1, c2, c3``: SAL scale weights; ``lambda_e, lambda_p``: DCML task weights.

A face whose logits are not all finite gets NaN in every column: the arg-max of NaN scores would
still name a class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from phanet.files import atomic_write_text

if TYPE_CHECKING:
    from phanet.models.info import ModelInfo

SQUARE_COLUMNS = ("s2_x", "s2_y", "s2_l", "s3_x", "s3_y", "s3_l")
PIXEL_SQUARE_COLUMNS = ("s2_x0", "s2_y0", "s2_x1", "s2_y1", "s3_x0", "s3_y0", "s3_x1", "s3_y1")
WEIGHT_COLUMNS = ("c1", "c2", "c3", "lambda_e", "lambda_p")


def prediction_columns(expressions: Sequence[str], poses: Sequence[str]) -> list[str]:
    """The columns :func:`face_rows` gives for a model with these class lists, in order."""
    names = ["expression", "expression_prob", *(f"prob_{e}" for e in expressions)]
    if poses:
        names += ["pose", "pose_prob", *(f"pose_prob_{p}" for p in poses)]
    return names + [*SQUARE_COLUMNS, *PIXEL_SQUARE_COLUMNS, *WEIGHT_COLUMNS]


def pixel_squares(squares: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Squares (N, 2, 3) = (x, y, l) in [0, 1] coordinates of the network input → (N, 8) corners
    (x0, y0, x1, y1 of S2, then of S3) in pixels of the picture, the input covering ``regions`` (N, 4)
    = (x, y, w, h) of it."""
    x, y, half = squares[..., 0], squares[..., 1], squares[..., 2]
    rx, ry, rw, rh = (regions[:, None, i] for i in range(4))
    corners = np.stack([rx + (x - half) * rw, ry + (y - half) * rh, rx + (x + half) * rw, ry + (y + half) * rh], -1)
    return corners.reshape(len(squares), 8)


def face_rows(
    backend: Callable[[np.ndarray | torch.Tensor], Mapping[str, np.ndarray]],
    images: np.ndarray | torch.Tensor,
    info: ModelInfo,
    regions: Sequence[Sequence[float]] | np.ndarray | None = None,
) -> pd.DataFrame:
    """The rows of one batch of network inputs (B, 3, S, S), run through ``backend``.

    ``regions`` (B × (x, y, w, h)) says which part of its picture each input shows, in pixels;
    without it the pixel squares are NaN.
    """
    outputs = {name: np.asarray(value, dtype=np.float32) for name, value in backend(images).items()}
    expr_logits, pose_logits = outputs["expression_logits"], outputs["pose_logits"]
    count = len(expr_logits)
    columns: dict[str, np.ndarray | list] = {}
    expr_prob = torch.softmax(torch.from_numpy(expr_logits), dim=1).numpy()
    columns["expression"] = [info.expressions[i] for i in expr_prob.argmax(1)]
    columns["expression_prob"] = expr_prob.max(1)
    for i, name in enumerate(info.expressions):
        columns[f"prob_{name}"] = expr_prob[:, i]
    if info.poses:
        pose_prob = torch.softmax(torch.from_numpy(pose_logits), dim=1).numpy()
        columns["pose"] = [info.poses[i] for i in pose_prob.argmax(1)]
        columns["pose_prob"] = pose_prob.max(1)
        for i, name in enumerate(info.poses):
            columns[f"pose_prob_{name}"] = pose_prob[:, i]
    squares = outputs["boxes"].reshape(count, 2, 3)
    for i, name in enumerate(SQUARE_COLUMNS):
        columns[name] = squares.reshape(count, 6)[:, i]
    corners = (
        pixel_squares(squares, np.asarray(regions, dtype=np.float64).reshape(count, 4))
        if regions is not None
        else np.full((count, 8), np.nan)
    )
    for i, name in enumerate(PIXEL_SQUARE_COLUMNS):
        columns[name] = corners[:, i]
    for i in range(3):
        columns[f"c{i + 1}"] = outputs["scale_weights"][:, i]
    columns["lambda_e"], columns["lambda_p"] = outputs["task_weights"][:, 0], outputs["task_weights"][:, 1]
    table = pd.DataFrame(columns)
    finite = np.isfinite(expr_logits).all(1) & np.isfinite(pose_logits.reshape(count, -1)).all(1)
    if not finite.all():
        labels = ["expression", "pose"] if info.poses else ["expression"]
        table.loc[~finite, labels] = None
        table.loc[~finite, [c for c in table.columns if c not in labels]] = np.nan
    return table


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """``.csv`` (empty cells for missing values) or ``.json`` (a list of row objects, NaN as null).

    The file is written atomically (:mod:`phanet.files`): a full disk leaves the old file or none.
    """
    path = Path(path)
    text = table.to_json(orient="records", indent=1) if path.suffix.lower() == ".json" else table.to_csv(index=False)
    atomic_write_text(path, text)
    return path
