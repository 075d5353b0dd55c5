"""The paper's baselines (Tables I, V, VII): DenseNet-40, VGG-19 and HOG + 2 FC layers.

Each predicts expression and pose from the whole image with two linear heads and returns the same
:class:`PhaNetOutput` as PhaNet (no squares, scale weights or λ: those fields are NaN), so training,
evaluation and reports treat every method alike.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from phanet.config import BackboneConfig
from phanet.models.densenet import DenseNet
from phanet.models.output import PhaNetOutput


class _TwoHeadClassifier(nn.Module):
    """Shared plumbing: features (B, n) → expression and pose logits wrapped in a PhaNetOutput."""

    num_features: int
    image_size: int | None = None

    def _heads(self, num_features: int, num_expressions: int, num_poses: int) -> None:
        self.expression = nn.Linear(num_features, num_expressions)
        self.pose = nn.Linear(num_features, num_poses)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor, return_maps: bool = False, return_crops: bool = False,
                map_classes: torch.Tensor | None = None) -> PhaNetOutput:
        # Inputs larger than the network's size (model.input_size) are average-pooled to it, as
        # PhaNet's S1 does, so every method receives the same images.
        factor = images.shape[-1] // self.image_size if self.image_size else 1
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
    """DenseNet-40 on the whole face, expression and pose heads on the pooled features."""

    def __init__(self, num_expressions: int, num_poses: int, backbone: BackboneConfig | None = None) -> None:
        super().__init__()
        self.backbone = DenseNet(**dataclasses.asdict(backbone or BackboneConfig()))
        self._heads(self.backbone.num_features, num_expressions, num_poses)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(images).mean(dim=(2, 3))


#: VGG-19 (configuration "E"): 16 convolutions in five stages.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class VGG19(_TwoHeadClassifier):
    """VGG-19 with batch normalisation; global average pooling and one 512-unit layer replace the
    two 4096-unit layers so that it trains at any input size. ``width`` scales every channel count."""

    def __init__(self, num_expressions: int, num_poses: int, width: float = 1.0, hidden: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG19:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(8, int(round(item * width)))
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, hidden)
        self._heads(hidden, num_expressions, num_poses)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.features(images).mean(dim=(2, 3))
        return F.relu(self.fc(pooled))


class HOG(nn.Module):
    """Histogram of oriented gradients (Dalal & Triggs) as a fixed layer.

    Unsigned orientations in ``bins`` bins over 180° with linear vote interpolation, ``cell`` × ``cell``
    pixel cells, 2 × 2-cell blocks with L2-Hys normalisation (clip 0.2). Input: images in [-1, 1].
    """

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
        blocks = torch.cat([cells[:, :, i : cells.shape[2] - 1 + i, j : cells.shape[3] - 1 + j]
                            for i in (0, 1) for j in (0, 1)], dim=1)
        blocks = blocks.permute(0, 2, 3, 1)
        blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + 1e-6)
        blocks = blocks.clamp(max=0.2)
        blocks = blocks / torch.sqrt((blocks**2).sum(-1, keepdim=True) + 1e-6)
        return blocks.flatten(1)


class HOGClassifier(_TwoHeadClassifier):
    """HOG features and two fully connected layers (Table VII)."""

    def __init__(self, num_expressions: int, num_poses: int, image_size: int, hidden: int = 512) -> None:
        super().__init__()
        self.hog = HOG()
        self.fc = nn.Linear(self.hog.output_size(image_size), hidden)
        self._heads(hidden, num_expressions, num_poses)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.hog(images)))
