"""The one typed result that flows from every model to losses, metrics, reports and visualisation."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class PhaNetOutput:
    """Everything downstream code needs from one forward pass.

    Attributes:
        expression_logits: (B, E) from the joint representation f (DCML head).
        pose_logits: (B, P) (P = 0 for a dataset without poses).
        scale_logits: per-scale expression logits p(e|s) for S1, S2, S3, each (B, E) or None where the
            scale was not computed.
        boxes: (B, 2, 3) the S2 and S3 squares (x, y, l) in normalised coordinates of the original
            image; NaN where not computed.
        local_boxes: (B, 2, 3) the same squares in the coordinates of the image each was cut from
            (S2 in S1, S3 in the zoomed S2).
        scale_weights: (B, 3) SAL coefficients c1..c3 (1 where joint SAL is off, NaN for absent scales).
        task_weights: (B, 2) DCML weights (λe, λp).
        features: (B, n) the joint representation f.
        cams: optional class activation maps (B, h, w) of S1, S2, S3 (None for a scale not
            computed): each scale's last convolutional map weighted by its classifier's weights of one
            expression; for the attention figures and the PAN initialisation; None unless requested.
        crops: optional zoomed S2 and S3 regions (B, 3, H, W) (None where not computed); None unless
            requested.
        pan_outputs: optional (B, 2, 3) raw outputs (a_x, a_y, a_l) of the S2 and S3 PANs before they
            are bounded into squares (NaN where not computed); for the PAN initialisation.
        sal_logits: optional (B, 3) SAL's pre-activations z = W_2 ReLU(W_1 M_F) of Eq. 7, before the
            gate (NaN for absent scales); None without joint SAL.
        scale_features: the pooled representation g(M_s) of each scale S1, S2, S3, (B, C) or None where
            the scale was not computed (their concatenation over the fused scales is M_F of Eq. 6); None
            for a network without scales.
    """

    expression_logits: torch.Tensor
    pose_logits: torch.Tensor
    scale_logits: list[torch.Tensor | None]
    boxes: torch.Tensor
    local_boxes: torch.Tensor
    scale_weights: torch.Tensor
    task_weights: torch.Tensor
    features: torch.Tensor
    cams: list[torch.Tensor | None] | None = None
    crops: list[torch.Tensor | None] | None = field(default=None)
    pan_outputs: torch.Tensor | None = None
    sal_logits: torch.Tensor | None = None
    scale_features: list[torch.Tensor | None] | None = None
