"""PhaNet assembly (Fig. 2): HPAL (three DenseNet scales, two PANs), joint SAL and the DCML head."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from phanet.config import SCALE_NAMES, AttentionConfig, BackboneConfig, ModelConfig
from phanet.models.attention import PixelAttentionNetwork, compose_boxes, crop_and_zoom, swap_squares
from phanet.models.densenet import DenseNet
from phanet.models.heads import DCMLHead
from phanet.models.output import PhaNetOutput
from phanet.models.scale_attention import ScaleAttention


class PhaNet(nn.Module):
    """Pose-adaptive hierarchical attention network.

    ``PhaNet()`` is the paper's BU-3DFE configuration: 7 expressions, 9 pans, 224 × 224 input,
    DenseNet-40 (k = 12) at each of the three scales, both PANs and joint SAL.

    Args:
        num_expressions (int): expression classes E.
        num_poses (int): pose (pan) classes P; 0 for a dataset without pose labels.
        image_size (int): input side of every scale's network; the S2 and S3 regions are zoomed to it.
        input_size (int): side of the images the model receives (a multiple of ``image_size``; default
            ``image_size``, as in the paper). S1 sees them average-pooled to ``image_size``, and the S2
            and S3 squares are cut from them at full resolution, so zooming in adds real detail.
        scales (sequence of str): the scales whose features form f — any non-empty subset of
            ``N_S1`` (no attention, the whole image), ``H_S2``, ``H_S3`` (Table VI). Coarser scales are
            still computed when a finer one needs them to localise its square.
        joint_sa (bool): ``J_SA`` — re-weight the scales with SAL (Eq. 7–8); otherwise f is the plain
            concatenation (c = 1).
        backbone (BackboneConfig): DenseNet settings, shared by the scales (weights are not shared).
        attention (AttentionConfig): PAN and crop-and-zoom settings.
        sal_hidden (int): bottleneck of SAL's W_1.
        head_hidden (int): the DCML fully connected layer.
        lambda_form (str): ``bounded`` (λe ≥ λp exactly) or ``free`` (see :class:`DCMLHead`).
        sal_form (str): the gate of Eq. 7, ``literal`` or ``sigmoid`` (see :class:`ScaleAttention`).
    """

    def __init__(
        self,
        num_expressions: int = 7,
        num_poses: int = 9,
        image_size: int = 224,
        input_size: int | None = None,
        scales: tuple[str, ...] | list[str] = SCALE_NAMES,
        joint_sa: bool = True,
        backbone: BackboneConfig | None = None,
        attention: AttentionConfig | None = None,
        sal_hidden: int = 64,
        head_hidden: int = 512,
        lambda_form: str = "bounded",
        sal_form: str = "literal",
    ) -> None:
        super().__init__()
        unknown = [s for s in scales if s not in SCALE_NAMES]
        if not scales or unknown:
            raise ValueError(f"scales must be a non-empty subset of {SCALE_NAMES}, got {list(scales)}")
        backbone = backbone or BackboneConfig()
        self.attention_config = attention = attention or AttentionConfig()
        self.num_expressions = num_expressions
        self.num_poses = num_poses
        self.image_size = image_size
        self.input_size = input_size or image_size
        if self.input_size % image_size:
            raise ValueError(f"input_size {self.input_size} must be a multiple of image_size {image_size}")
        self.used = [SCALE_NAMES.index(s) for s in SCALE_NAMES if s in scales]
        self.num_computed = max(self.used) + 1
        self.joint_sa = joint_sa
        self.backbones = nn.ModuleList(DenseNet(**dataclasses.asdict(backbone)) for _ in range(self.num_computed))
        channels = self.backbones[0].num_features
        self.scale_classifiers = nn.ModuleList(nn.Linear(channels, num_expressions) for _ in range(self.num_computed))
        self.pans = nn.ModuleList(
            PixelAttentionNetwork(channels, attention.hidden, attention.grid, attention.side_min, attention.side_max)
            for _ in range(self.num_computed - 1)
        )
        self.sal = ScaleAttention(channels, len(self.used), sal_hidden, sal_form) if joint_sa else None
        self.head = DCMLHead(channels * len(self.used), num_expressions, num_poses, head_hidden, lambda_form)

    @classmethod
    def from_config(cls, config: ModelConfig, num_expressions: int, num_poses: int) -> "PhaNet":
        return cls(num_expressions, num_poses, config.image_size, config.input_size, config.scales, config.joint_sa,
                   config.backbone, config.attention, config.sal_hidden, config.head_hidden, config.lambda_form,
                   config.sal_form)

    def attention_parameters(self) -> list[nn.Parameter]:
        """Parameters of the PANs (updated by the ranking step of the alternating schedule)."""
        return list(self.pans.parameters())

    def scale_attention_parameters(self) -> list[nn.Parameter]:
        """Parameters of SAL (none without J_SA)."""
        return list(self.sal.parameters()) if self.sal is not None else []

    def class_activation_map(self, scale: int, feature_map: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Response of ``M_s`` for expression ``classes`` (B,): the scale classifier's weights of that
        class over the channels (a class activation map), (B, h, w)."""
        weights = self.scale_classifiers[scale].weight[classes]
        return torch.einsum("bc,bchw->bhw", weights, feature_map)

    def forward_features(self, images: torch.Tensor, return_maps: bool = False, return_crops: bool = False,
                         map_classes: torch.Tensor | None = None, squares: torch.Tensor | None = None) -> dict:
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
        crop = self.attention_config.crop, self.attention_config.mask_steepness
        for s in range(self.num_computed):
            if s > 0:
                pan = self.pans[s - 1]
                # feature_map: the coarser scale's map, computed at the end of the previous pass of the loop.
                coarse = feature_map.detach() if self.attention_config.detach_input else feature_map  # noqa: F821
                raw = pan.raw(coarse)
                local = pan.bound(raw)
                if squares is not None:
                    given = squares[:, s - 1].to(local.dtype)
                    local = torch.where(torch.isfinite(given).all(1, keepdim=True), given, local)
                elif s == 2 and self.training and self.attention_config.swap > 0 and batch > 1:
                    local = swap_squares(local, self.attention_config.swap)
                pan_outputs[:, s - 1] = raw
                outer = local if outer is None else compose_boxes(outer, local)
                if factor > 1:
                    region = crop_and_zoom(images, outer, self.image_size, *crop)
                else:
                    region = crop_and_zoom(region, local, self.image_size, *crop)
                local_boxes[:, s - 1] = local
                boxes[:, s - 1] = outer
                if crops is not None:
                    crops[s - 1] = region
            feature_map = self.backbones[s].forward_features(region)
            pooled.append(feature_map.mean(dim=(2, 3)))
            logits.append(self.scale_classifiers[s](pooled[-1]))
            if maps is not None:
                classes = map_classes if map_classes is not None else logits[-1].argmax(dim=1)
                maps[s] = self.class_activation_map(s, feature_map, classes)
        return {"pooled": pooled, "logits": logits, "boxes": boxes, "local_boxes": local_boxes,
                "maps": maps, "crops": crops, "pan_outputs": pan_outputs}

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
        scale_logits = list(hpal["logits"]) + [None] * (3 - self.num_computed)
        return PhaNetOutput(
            expression_logits=expression_logits,
            pose_logits=pose_logits,
            scale_logits=scale_logits,
            boxes=hpal["boxes"],
            local_boxes=hpal["local_boxes"],
            scale_weights=weights,
            task_weights=task_weights,
            features=f,
            cams=hpal["maps"],
            crops=hpal["crops"],
            pan_outputs=hpal.get("pan_outputs"),
            sal_logits=sal_logits,
        )

    def forward(self, images: torch.Tensor, return_maps: bool = False, return_crops: bool = False,
                map_classes: torch.Tensor | None = None) -> PhaNetOutput:
        """``images`` (B, 3, input_size, input_size). With ``return_maps``, the class activation maps of
        every scale for ``map_classes`` (default: each scale's predicted expression)."""
        return self.forward_head(self.forward_features(images, return_maps, return_crops, map_classes))
