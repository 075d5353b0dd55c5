"""DCML head (Eq. 9–10): expression and pose classifiers and the dynamic task weights λ."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from phanet.models.precision import at_least_float32


class DCMLHead(nn.Module):
    """One fully connected layer, two softmax classifiers and the λ regressor.

    Eq. 10: ``[λe, λp] = sigmoid(W^λ f + b^λ)`` under the constraints of Eq. 9, ``λe + λp = 1`` and
    ``λe ≥ λp ≥ 0``. With ``lambda_form="bounded"`` they hold exactly by construction:
    ``λp = sigmoid(W^λ f + b^λ) / 2`` and ``λe = 1 - λp``. ``lambda_form="free"`` keeps only the sum
    (``softmax`` of two logits); it exists to show what happens without the ordering constraint.
    """

    def __init__(
        self, in_features: int, num_expressions: int, num_poses: int, hidden: int = 512, lambda_form: str = "bounded"
    ) -> None:
        super().__init__()
        if lambda_form not in ("bounded", "free"):
            raise ValueError(f"lambda_form must be 'bounded' or 'free', got {lambda_form!r}")
        self.fc = nn.Linear(in_features, hidden)
        self.expression = nn.Linear(hidden, num_expressions)
        with warnings.catch_warnings():  # num_poses = 0 (a dataset without poses) is a valid empty head
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            self.pose = nn.Linear(hidden, num_poses)
        self.lambda_form = lambda_form
        self.lam = nn.Linear(in_features, 1 if lambda_form == "bounded" else 2)

    def task_weights(self, f: torch.Tensor) -> torch.Tensor:
        """(λe, λp) per sample, (B, 2), in float32 also under mixed precision (so that λe + λp = 1 exactly)."""
        z = at_least_float32(self.lam(f))
        if self.lambda_form == "bounded":
            lambda_p = 0.5 * torch.sigmoid(z[:, 0])
            return torch.stack([1 - lambda_p, lambda_p], dim=1)
        return torch.softmax(z, dim=1)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden = F.relu(self.fc(f))
        return self.expression(hidden), self.pose(hidden), self.task_weights(f)
