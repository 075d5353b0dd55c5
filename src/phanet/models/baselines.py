"""The paper's baselines (Tables I, V, VII): DenseNet-40, VGG-19 and HOG + 2 FC layers.

Each predicts expression and pose from the whole image with two linear heads and returns the same
:class:`PhaNetOutput` as PhaNet (no squares, scale weights or λ: those fields are NaN), so training,
evaluation and reports treat every method alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from phanet.models.base import Network, network_info, parameter_groups
from phanet.models.densenet import DenseNet
from phanet.models.info import PAPER_EXPRESSIONS, PAPER_POSES
from phanet.models.output import PhaNetOutput
from phanet.models.registry import register_model


class _TwoHeadClassifier(Network):
    """Shared plumbing: features (B, n) → expression and pose logits wrapped in a PhaNetOutput.

    Every baseline takes the class lists ``expressions`` and ``poses``, the side ``image_size`` of
    what its network sees and the side ``input_size`` of the images it receives (default
    ``image_size``; larger inputs are average-pooled to ``image_size``, as PhaNet's S1 pools them).
    """

    def __init__(
        self, arch: str, expressions: Sequence[str], poses: Sequence[str], image_size: int, input_size: int | None
    ) -> None:
        super().__init__()
        self.info = network_info(arch, expressions, poses, image_size, input_size)
        self.image_size = image_size

    def _heads(self, num_features: int) -> None:
        self.expression = nn.Linear(num_features, len(self.info.expressions))
        self.pose = nn.Linear(num_features, len(self.info.poses))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The trainable parameters by top-level module (the feature extractor, each head)."""
        return parameter_groups(self, {})

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, images: torch.Tensor, return_maps: bool = False, return_crops: bool = False, map_classes: torch.Tensor | None = None
    ) -> PhaNetOutput:
        # Inputs larger than the network's size (model.input_size) are average-pooled to it, as
        # PhaNet's S1 does, so every method receives the same images.
        factor = images.shape[-1] // self.image_size
        f = self.forward_features(F.avg_pool2d(images, factor) if factor > 1 else images)
        batch = f.shape[0]
        nan = f.new_full((batch, 2, 3), float("nan"))
        return PhaNetOutput(
            expression_logits=self.expression(f),
            pose_logits=self.pose(f),
            scale_logits=[None, None, None],
            boxes=nan,
            local_boxes=nan.clone(),
            scale_weights=f.new_full((batch, 3), float("nan")),
            task_weights=f.new_full((batch, 2), float("nan")),
            features=f,
        )


class DenseNetBaseline(_TwoHeadClassifier):
    """A DenseNet on the whole face, expression and pose heads on the pooled features.

    ``backbone``: keyword arguments of :class:`~phanet.models.densenet.DenseNet` (default DenseNet-40,
    k = 12).
    """

    def __init__(
        self,
        expressions: Sequence[str] = PAPER_EXPRESSIONS,
        poses: Sequence[str] = PAPER_POSES,
        image_size: int = 224,
        input_size: int | None = None,
        backbone: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__("densenet", expressions, poses, image_size, input_size)
        self.backbone = DenseNet(**(backbone or {}))
        self._heads(self.backbone.num_features)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(images).mean(dim=(2, 3))


#: VGG-19 (configuration "E"): 16 convolutions in five stages.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class VGG19(_TwoHeadClassifier):
    """VGG-19 with batch normalisation; global average pooling and one 512-unit layer replace the
    two 4096-unit layers so that it trains at any input size. ``width`` scales every channel count."""

    def __init__(
        self,
        expressions: Sequence[str] = PAPER_EXPRESSIONS,
        poses: Sequence[str] = PAPER_POSES,
        image_size: int = 224,
        input_size: int | None = None,
        width: float = 1.0,
        hidden: int = 512,
    ) -> None:
        super().__init__("vgg19", expressions, poses, image_size, input_size)
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG19:
            if isinstance(item, str):
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(8, int(round(item * width)))
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, hidden)
        self._heads(hidden)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.features(images).mean(dim=(2, 3))
        return F.relu(self.fc(pooled))


class HOG(nn.Module):
    """Histogram of oriented gradients (Dalal & Triggs) as a fixed layer.

    Unsigned orientations in ``bins`` bins over 180° with linear vote interpolation, ``cell`` × ``cell``
    pixel cells, 2 × 2-cell blocks with L2-Hys normalisation (clip 0.2). Input: images in [-1, 1].
    """

    luma: torch.Tensor
    dx: torch.Tensor

    def __init__(self, bins: int = 9, cell: int = 8) -> None:
        super().__init__()
        self.bins = bins
        self.cell = cell
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("dx", torch.tensor([[[[-1.0, 0.0, 1.0]]]]), persistent=False)

    def output_size(self, image_size: int) -> int:
        cells = image_size // self.cell
        return (cells - 1) ** 2 * 4 * self.bins

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        gray = (images * self.luma).sum(dim=1, keepdim=True)
        gx = F.conv2d(F.pad(gray, (1, 1, 0, 0), mode="replicate"), self.dx)
        gy = F.conv2d(F.pad(gray, (0, 0, 1, 1), mode="replicate"), self.dx.transpose(2, 3))
        magnitude = torch.sqrt(gx**2 + gy**2 + 1e-12)
        angle = torch.remainder(torch.atan2(gy, gx), math.pi) / math.pi * self.bins
        lower = torch.floor(angle)
        frac = angle - lower
        votes = torch.zeros(images.shape[0], self.bins, *images.shape[2:], device=images.device, dtype=images.dtype)
        votes.scatter_add_(1, lower.long() % self.bins, magnitude * (1 - frac))
        votes.scatter_add_(1, (lower.long() + 1) % self.bins, magnitude * frac)
        cells = F.avg_pool2d(votes, self.cell) * self.cell**2
        blocks = torch.cat(
            [cells[:, :, i : cells.shape[2] - 1 + i, j : cells.shape[3] - 1 + j] for i in (0, 1) for j in (0, 1)], dim=1
        )
        blocks = blocks.permute(0, 2, 3, 1)
        blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + 1e-6)
        blocks = blocks.clamp(max=0.2)
        blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + 1e-6)
        return blocks.flatten(1)


class HOGClassifier(_TwoHeadClassifier):
    """HOG features and two fully connected layers (Table VII)."""

    def __init__(
        self,
        expressions: Sequence[str] = PAPER_EXPRESSIONS,
        poses: Sequence[str] = PAPER_POSES,
        image_size: int = 224,
        input_size: int | None = None,
        hidden: int = 512,
    ) -> None:
        super().__init__("hog_fc", expressions, poses, image_size, input_size)
        self.hog = HOG()
        self.fc = nn.Linear(self.hog.output_size(image_size), hidden)
        self._heads(hidden)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.hog(images)))


@register_model
def densenet(**kwargs: Any) -> DenseNetBaseline:
    """A DenseNet baseline; ``backbone`` sets its depth, growth rate and stem (any argument of
    :class:`DenseNetBaseline`)."""
    return DenseNetBaseline(**kwargs)


@register_model
def densenet40(**kwargs: Any) -> DenseNetBaseline:
    """DenseNet-40 with growth rate 12, the paper's baseline (Tables I, V) and PhaNet's backbone."""
    backbone = {**kwargs.pop("backbone", {}), "depth": 40, "growth_rate": 12}
    return DenseNetBaseline(backbone=backbone, **kwargs)


@register_model
def vgg19(**kwargs: Any) -> VGG19:
    """VGG-19 with batch normalisation (Tables V, VII)."""
    return VGG19(**kwargs)


@register_model
def hog_fc(**kwargs: Any) -> HOGClassifier:
    """HOG features and two fully connected layers (Table VII)."""
    return HOGClassifier(**kwargs)
