"""One row per face from a :class:`PhaNetOutput`: the table evaluation and prediction both write.

Columns (``prob_<class>`` and ``pose_prob_<class>`` for every class of the model):

- ``expression``, ``expression_prob``, ``prob_<class>``: predicted expression, its probability, all probabilities;
- ``pose``, ``pose_prob``, ``pose_prob_<class>``: predicted pose (pan) class and probabilities;
- ``s2_x, s2_y, s2_l, s3_x, s3_y, s3_l``: the attended S2 and S3 squares (centre, half side) in
  normalised [0, 1] coordinates of the network input (NaN for a model without attention);
- ``c1, c2, c3``: SAL scale weights; ``lambda_e, lambda_p``: DCML task weights.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from phanet.models.output import PhaNetOutput

SQUARE_COLUMNS = ("s2_x", "s2_y", "s2_l", "s3_x", "s3_y", "s3_l")


def output_table(output: PhaNetOutput, expressions: list[str], poses: list[str]) -> pd.DataFrame:
    """The per-face prediction table of one batch."""
    expr_prob = torch.softmax(output.expression_logits.float(), dim=1).cpu().numpy()
    columns: dict[str, np.ndarray | list] = {
        "expression": [expressions[i] for i in expr_prob.argmax(1)],
        "expression_prob": expr_prob.max(1),
    }
    for i, name in enumerate(expressions):
        columns[f"prob_{name}"] = expr_prob[:, i]
    if poses:
        pose_prob = torch.softmax(output.pose_logits.float(), dim=1).cpu().numpy()
        columns["pose"] = [poses[i] for i in pose_prob.argmax(1)]
        columns["pose_prob"] = pose_prob.max(1)
        for i, name in enumerate(poses):
            columns[f"pose_prob_{name}"] = pose_prob[:, i]
    boxes = output.boxes.detach().float().cpu().numpy().reshape(-1, 6)
    for i, name in enumerate(SQUARE_COLUMNS):
        columns[name] = boxes[:, i]
    weights = output.scale_weights.detach().float().cpu().numpy()
    for i in range(3):
        columns[f"c{i + 1}"] = weights[:, i]
    tasks = output.task_weights.detach().float().cpu().numpy()
    columns["lambda_e"], columns["lambda_p"] = tasks[:, 0], tasks[:, 1]
    return pd.DataFrame(columns)
