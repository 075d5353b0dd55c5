"""Joint scale attention learning, SAL (Eq. 6–8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from phanet.models.precision import at_least_float32


class ScaleAttention(nn.Module):
    """Squeeze-and-excitation over scales.

    Eq. 6: ``M_F = H([g(M_S1), g(M_S2), g(M_S3)])`` with g global average pooling.
    Eq. 7: ``[c_1, c_2, c_3] = sigmoid(ReLU(W_2 ReLU(W_1 M_F)))`` — exactly as written, so every
    coefficient starts (and stays) in [0.5, 1).
    Eq. 8: ``f = H([c_1 M^R_S1, c_2 M^R_S2, c_3 M^R_S3])``.

    Args:
        channels (int): channels of each pooled scale representation ``M^R_s``.
        num_scales (int): number of scales fused (1–3 in the ablations).
        hidden (int): units of W_1, the bottleneck.
    """

    def __init__(self, channels: int, num_scales: int, hidden: int = 64) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels * num_scales, hidden)
        self.fc2 = nn.Linear(hidden, num_scales)
        # Every coefficient starts at the same value, sigmoid(0.01) ≈ 0.5 (the paper's Fig. 12), just
        # above the ReLU's kink: from exactly 0 (or below) no gradient would ever reach W_1, W_2.
        nn.init.zeros_(self.fc2.weight)
        nn.init.constant_(self.fc2.bias, 0.01)

    def coefficients(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """c of Eq. 7, (B, num_scales), in float32 also under mixed precision."""
        fused = torch.cat(pooled, dim=1)
        return torch.sigmoid(F.relu(at_least_float32(self.fc2(F.relu(self.fc1(fused))))))

    def forward(self, pooled: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, c): the re-weighted joint representation (Eq. 8) and the coefficients."""
        c = self.coefficients(pooled)
        f = torch.cat([c[:, i : i + 1] * m for i, m in enumerate(pooled)], dim=1)
        return f, c
