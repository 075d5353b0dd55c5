"""PhaNet assembly (Fig. 2): HPAL (three DenseNet scales, two PANs), joint SAL and the DCML head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from phanet.models.attention import PixelAttentionNetwork, compose_boxes, crop_and_zoom, swap_squares
from phanet.models.base import Network, network_info, parameter_groups
from phanet.models.densenet import DenseNet
from phanet.models.heads import DCMLHead
from phanet.models.info import PAPER_EXPRESSIONS, PAPER_POSES, SCALE_NAMES
from phanet.models.output import PhaNetOutput
from phanet.models.precision import low_precision_features
from phanet.models.registry import register_model
from phanet.models.scale_attention import ScaleAttention

#: Settings of the pixel attention networks and of crop-and-zoom (``attention=`` of :class:`PhaNet`):
#: the PAN's hidden units and pooled grid (Eq. 2), the bounds of a square's side as a fraction of
#: the image it is cut from, the crop (``affine``: exact bilinear sampling; ``boxcar``: the paper's
#: mask of steep sigmoids, Eq. 5) and the mask's steepness, whether a PAN reads the coarser map
#: without passing gradient into that scale's backbone, and the fraction of training faces whose S3
#: square is another face's (0: the paper's HPAL).
ATTENTION_DEFAULTS: dict[str, Any] = {
    "hidden": 128,
    "grid": 7,
    "side_min": 0.3,
    "side_max": 0.6,
    "crop": "affine",
    "mask_steepness": 50.0,
    "detach_input": True,
    "swap": 0.0,
}

#: PhaNet's parts (:meth:`PhaNet.parameter_groups`), as named in ``dynamics.csv`` and ``optim.part_lr``.
PARTS = {
    "backbones.0": "S1_backbone",
    "backbones.1": "S2_backbone",
    "backbones.2": "S3_backbone",
    "scale_classifiers.0": "S1_classifier",
    "scale_classifiers.1": "S2_classifier",
    "scale_classifiers.2": "S3_classifier",
    "pans.0": "PAN_S2",
    "pans.1": "PAN_S3",
    "sal": "SAL",
    "head.fc": "head_fc",
    "head.expression": "head_expression",
    "head.pose": "head_pose",
    "head.lam": "head_lambda",
}
PART_NAMES = tuple(PARTS.values())


class PhaNet(Network):
    """Pose-adaptive hierarchical attention network.

    ``PhaNet()`` is the paper's BU-3DFE configuration: 7 expressions, 9 yaw classes, 224 × 224 input,
    DenseNet-40 (k = 12) at each of the three scales, both PANs and joint SAL.

    Args:
        expressions (sequence of str): expression class names, E of them (the order of the logits).
        poses (sequence of str): pose (yaw) class names, P of them; empty for a dataset without pose labels.
        image_size (int): input side of every scale's network; the S2 and S3 regions are zoomed to it.
        input_size (int): side of the images the model receives (a multiple of ``image_size``; default
            ``image_size``, as in the paper). S1 sees them average-pooled to ``image_size``, and the S2
            and S3 squares are cut from them at full resolution, so zooming in adds real detail.
        scales (sequence of str): the scales whose features form f — any non-empty subset of
            ``N_S1`` (no attention, the whole image), ``H_S2``, ``H_S3`` (Table VI). Coarser scales are
            still computed when a finer one needs them to localise its square.
        joint_sa (bool): ``J_SA`` — re-weight the scales with SAL (Eq. 7–8); otherwise f is the plain
            concatenation (c = 1).
        backbone (mapping): keyword arguments of :class:`~phanet.models.densenet.DenseNet`, shared by the
            scales (the weights are not shared); default DenseNet-40, k = 12.
        attention (mapping): PAN and crop-and-zoom settings, any of :data:`ATTENTION_DEFAULTS`.
        sal_hidden (int): bottleneck of SAL's W_1.
        head_hidden (int): the DCML fully connected layer.
        lambda_form (str): ``bounded`` (λe ≥ λp exactly) or ``free`` (see :class:`DCMLHead`).
        sal_form (str): the gate of Eq. 7, ``literal`` or ``sigmoid`` (see :class:`ScaleAttention`).

    ``info`` (:class:`~phanet.models.info.ModelInfo`) holds the class lists, the input size and scaling.
    """

    def __init__(
        self,
        expressions: Sequence[str] = PAPER_EXPRESSIONS,
        poses: Sequence[str] = PAPER_POSES,
        image_size: int = 224,
        input_size: int | None = None,
        scales: Sequence[str] = SCALE_NAMES,
        joint_sa: bool = True,
        backbone: Mapping[str, Any] | None = None,
        attention: Mapping[str, Any] | None = None,
        sal_hidden: int = 64,
        head_hidden: int = 512,
        lambda_form: str = "bounded",
        sal_form: str = "literal",
    ) -> None:
        super().__init__()
        unknown = [s for s in scales if s not in SCALE_NAMES]
        if not scales or unknown:
            raise ValueError(f"scales must be a non-empty subset of {SCALE_NAMES}, got {list(scales)}")
        unknown = sorted(set(attention or {}) - set(ATTENTION_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown attention setting {unknown[0]!r} (known: {', '.join(ATTENTION_DEFAULTS)})")
        settings = {**ATTENTION_DEFAULTS, **(attention or {})}
        self.info = network_info("phanet", expressions, poses, image_size, input_size)
        self.image_size = image_size
        self.crop, self.mask_steepness = settings["crop"], settings["mask_steepness"]
        self.detach_input, self.swap = settings["detach_input"], settings["swap"]
        self.used = [SCALE_NAMES.index(s) for s in SCALE_NAMES if s in scales]
        self.num_computed = max(self.used) + 1
        self.joint_sa = joint_sa
        backbones = [DenseNet(**(backbone or {})) for _ in range(self.num_computed)]
        channels = backbones[0].num_features
        self.backbones = nn.ModuleList(backbones)
        num_expressions, num_poses = len(self.info.expressions), len(self.info.poses)
        self.scale_classifiers = nn.ModuleList(nn.Linear(channels, num_expressions) for _ in range(self.num_computed))
        self.pans = nn.ModuleList(
            PixelAttentionNetwork(channels, settings["hidden"], settings["grid"], settings["side_min"], settings["side_max"])
            for _ in range(self.num_computed - 1)
        )
        self.sal = ScaleAttention(channels, len(self.used), sal_hidden, sal_form) if joint_sa else None
        self.head = DCMLHead(channels * len(self.used), num_expressions, num_poses, head_hidden, lambda_form)
        #: The dtype the three backbones compute in under autocast (``train.precision: bf16-backbones``),
        #: None for the input's own; the squares, the PANs, crop-and-zoom, SAL, the heads and the loss keep
        #: the input's dtype (:func:`~phanet.models.precision.low_precision_features`).
        self.backbone_dtype: torch.dtype | None = None

    @property
    def input_size(self) -> int:
        return self.info.input_size

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The trainable parameters by part: each scale's backbone and classifier, each PAN, SAL, the
        DCML fully connected layer, its expression and pose classifiers and the λ regressor
        (:data:`PART_NAMES`)."""
        return parameter_groups(self, PARTS)

    def class_activation_map(self, scale: int, feature_map: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Response of ``M_s`` for expression ``classes`` (B,): the scale classifier's weights of that
        class over the channels (a class activation map), (B, h, w)."""
        weights = cast(nn.Linear, self.scale_classifiers[scale]).weight[classes]
        return torch.einsum("bc,bchw->bhw", weights, feature_map)

    def forward_features(
        self,
        images: torch.Tensor,
        return_maps: bool = False,
        return_crops: bool = False,
        map_classes: torch.Tensor | None = None,
        squares: torch.Tensor | None = None,
    ) -> dict:
        """HPAL: per-scale maps, pooled representations, per-scale logits and the squares.

        ``images`` are ``input_size`` pixels. S1 sees them at ``image_size``; each finer square is cut
        from the previous scale's zoomed region (Eq. 5) or, when ``input_size`` exceeds
        ``image_size``, from the full-resolution input, so that zooming in adds detail.

        ``squares`` (B, 2, 3), for analysis: the local squares (x, y, l) of S2 (in the image) and S3 (in
        the S2 square) to cut instead of the PANs' wherever a row is finite; NaN rows keep the PAN's
        square. The PANs' raw outputs are still those computed from the images.
        """
        batch = images.shape[0]
        nan_boxes = images.new_full((batch, 2, 3), float("nan"))
        boxes, local_boxes, pan_outputs = nan_boxes.clone(), nan_boxes.clone(), nan_boxes.clone()
        pooled, logits = [], []
        maps: list | None = [None, None, None] if return_maps else None
        crops: list | None = [None, None] if return_crops else None
        factor = images.shape[-1] // self.image_size
        region = F.avg_pool2d(images, factor) if factor > 1 else images
        outer = None
        crop = self.crop, self.mask_steepness
        for s in range(self.num_computed):
            feature_map = low_precision_features(cast(DenseNet, self.backbones[s]).forward_features, region, self.backbone_dtype)
            pooled.append(feature_map.mean(dim=(2, 3)))
            logits.append(self.scale_classifiers[s](pooled[-1]))
            if maps is not None:
                classes = map_classes if map_classes is not None else logits[-1].argmax(dim=1)
                maps[s] = self.class_activation_map(s, feature_map, classes)
            if s + 1 == self.num_computed:
                break
            # The next scale's square, chosen by its PAN from this scale's map (Eq. 2, 5).
            pan = cast(PixelAttentionNetwork, self.pans[s])
            raw = pan.raw(feature_map.detach() if self.detach_input else feature_map)
            local = pan.bound(raw)
            if squares is not None:
                given = squares[:, s].to(local.dtype)
                local = torch.where(torch.isfinite(given).all(1, keepdim=True), given, local)
            elif s == 1 and self.training and self.swap > 0 and batch > 1:
                local = swap_squares(local, self.swap)
            pan_outputs[:, s] = raw
            outer = local if outer is None else compose_boxes(outer, local)
            if factor > 1:
                region = crop_and_zoom(images, outer, self.image_size, *crop)
            else:
                region = crop_and_zoom(region, local, self.image_size, *crop)
            local_boxes[:, s] = local
            boxes[:, s] = outer
            if crops is not None:
                crops[s] = region
        return {
            "pooled": pooled,
            "logits": logits,
            "boxes": boxes,
            "local_boxes": local_boxes,
            "maps": maps,
            "crops": crops,
            "pan_outputs": pan_outputs,
        }

    def _per_scale(self, values: torch.Tensor) -> torch.Tensor:
        """(B, 3) from the (B, fused scales) ``values``: NaN in the columns of scales not fused."""
        full = values.new_full((values.shape[0], 3), float("nan"))
        full[:, self.used] = values
        return full

    def forward_head(self, hpal: dict) -> PhaNetOutput:
        """Joint SAL (Eq. 6–8) and DCML (Eq. 10) on the HPAL result."""
        pooled = [hpal["pooled"][s] for s in self.used]
        batch = pooled[0].shape[0]
        sal_logits = None
        if self.sal is not None:
            f, c, z = self.sal(pooled)
            sal_logits = self._per_scale(z)
        else:
            f, c = torch.cat(pooled, dim=1), pooled[0].new_ones((batch, len(self.used)))
        weights = self._per_scale(c)
        expression_logits, pose_logits, task_weights = self.head(f)
        missing: list[torch.Tensor | None] = [None] * (3 - self.num_computed)
        return PhaNetOutput(
            expression_logits=expression_logits,
            pose_logits=pose_logits,
            scale_logits=list(hpal["logits"]) + missing,
            boxes=hpal["boxes"],
            local_boxes=hpal["local_boxes"],
            scale_weights=weights,
            task_weights=task_weights,
            features=f,
            cams=hpal["maps"],
            crops=hpal["crops"],
            pan_outputs=hpal.get("pan_outputs"),
            sal_logits=sal_logits,
            scale_features=list(hpal["pooled"]) + missing,
        )

    def forward(
        self, images: torch.Tensor, return_maps: bool = False, return_crops: bool = False, map_classes: torch.Tensor | None = None
    ) -> PhaNetOutput:
        """``images`` (B, 3, input_size, input_size). With ``return_maps``, the class activation maps of
        every scale for ``map_classes`` (default: each scale's predicted expression)."""
        return self.forward_head(self.forward_features(images, return_maps, return_crops, map_classes))


@register_model
def phanet(**kwargs: Any) -> PhaNet:
    """PhaNet as in the paper: the three scales and joint SAL (the last row of Table VI); any argument
    of :class:`PhaNet` may be given."""
    return PhaNet(**kwargs)


def _register_ablation(scales: tuple[str, ...]) -> None:
    """``phanet_<scales>``, e.g. ``phanet_n_s1_h_s2``: a Table VI row without joint SAL."""
    name = "phanet_" + "_".join(s.lower() for s in scales)

    def build(**kwargs: Any) -> PhaNet:
        return PhaNet(scales=scales, joint_sa=False, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"PhaNet with the scales {' + '.join(scales)} and no joint SAL (a row of Table VI)."
    register_model(build)


for _count in (1, 2, 3):
    for _scales in combinations(SCALE_NAMES, _count):
        _register_ablation(_scales)
