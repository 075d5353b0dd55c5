"""Joint scale attention learning, SAL (Eq. 6–8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from phanet.models.precision import at_least_float32

#: Gates of Eq. 7 (see :class:`ScaleAttention`).
SAL_FORMS = ("literal", "sigmoid")


class ScaleAttention(nn.Module):
    """Squeeze-and-excitation over scales.

    Eq. 6: ``M_F = H([g(M_S1), g(M_S2), g(M_S3)])`` with g global average pooling.
    Eq. 7: ``[c_1, c_2, c_3] = sigmoid(ReLU(W_2 ReLU(W_1 M_F)))`` — exactly as written, so every
    coefficient starts (and stays) in [0.5, 1).
    Eq. 8: ``f = H([c_1 M^R_S1, c_2 M^R_S2, c_3 M^R_S3])``.

    ``form`` chooses the gate of Eq. 7:

    - ``literal``: ``sigmoid(ReLU(z))`` with ``z = W_2 ReLU(W_1 M_F)``, as written; a coefficient
      lives in [0.5, 1), and one whose z is negative for every sample is exactly 0.5 and receives no
      gradient (a dead scale weight).
    - ``sigmoid``: ``sigmoid(z)``, the squeeze-and-excitation gate; a coefficient lives in (0, 1) and
      always receives gradient.

    Both start every coefficient at (about) 0.5, as in the paper's Fig. 12.

    Args:
        channels (int): channels of each pooled scale representation ``M^R_s``.
        num_scales (int): number of scales fused (1–3 in the ablations).
        hidden (int): units of W_1, the bottleneck.
        form (str): ``literal`` or ``sigmoid``.
    """

    def __init__(self, channels: int, num_scales: int, hidden: int = 64, form: str = "literal") -> None:
        super().__init__()
        if form not in SAL_FORMS:
            raise ValueError(f"form must be one of {SAL_FORMS}, got {form!r}")
        self.form = form
        self.fc1 = nn.Linear(channels * num_scales, hidden)
        self.fc2 = nn.Linear(hidden, num_scales)
        # Every coefficient starts at the same value, 0.5 (the paper's Fig. 12). The literal form starts
        # just above the ReLU's kink, sigmoid(0.01): from exactly 0 (or below) no gradient would reach W_1, W_2.
        nn.init.zeros_(self.fc2.weight)
        nn.init.constant_(self.fc2.bias, 0.01 if form == "literal" else 0.0)

    def pre_activations(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """z = W_2 ReLU(W_1 M_F), (B, num_scales), in float32 also under mixed precision."""
        fused = torch.cat(pooled, dim=1)
        return at_least_float32(self.fc2(F.relu(self.fc1(fused))))

    def coefficients(self, pooled: list[torch.Tensor]) -> torch.Tensor:
        """c of Eq. 7, (B, num_scales)."""
        return self.gate(self.pre_activations(pooled))

    def gate(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 7's outer part on the pre-activations ``z``: ``sigmoid(ReLU(z))`` or ``sigmoid(z)``."""
        return torch.sigmoid(F.relu(z) if self.form == "literal" else z)

    @staticmethod
    def weigh(pooled: list[torch.Tensor], c: torch.Tensor) -> torch.Tensor:
        """Eq. 8: f = H([c_1 M^R_S1, c_2 M^R_S2, c_3 M^R_S3]) for coefficients ``c`` (B, num_scales)."""
        return torch.cat([c[:, i : i + 1] * m for i, m in enumerate(pooled)], dim=1)

    def forward(self, pooled: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(f, c, z): the re-weighted joint representation (Eq. 8), the coefficients and their
        pre-activations."""
        z = self.pre_activations(pooled)
        c = self.gate(z)
        return self.weigh(pooled, c), c, z
