"""DenseNet backbone (Huang et al., CVPR 2017), the feature extractor of every PhaNet scale (Eq. 1).

``M_s = H([m_s^0, m_s^1, ..., m_s^l])``: each layer of a dense block receives the concatenation of
the feature maps of all preceding layers. DenseNet-40 (k = 12) has three dense blocks of 12
BN-ReLU-Conv3x3 layers separated by BN-ReLU-Conv1x1-AvgPool2 transitions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import nn


class _DenseLayer(nn.Module):
    """BN-ReLU-Conv3x3 producing ``growth_rate`` new feature maps."""

    def __init__(self, in_channels: int, growth_rate: int, dropout: float, memory_efficient: bool) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1, bias=False)
        self.dropout = dropout
        self.memory_efficient = memory_efficient

    def _new_features(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.conv(F.relu(self.norm(torch.cat(inputs, 1))))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return out

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and self.training and any(f.requires_grad for f in features):
            return cp.checkpoint(self._new_features, *features, use_reentrant=False)
        return self._new_features(*features)


class _DenseBlock(nn.Module):
    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, dropout: float, memory_efficient: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _DenseLayer(in_channels + i * growth_rate, growth_rate, dropout, memory_efficient) for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )


def _layers_per_block(depth: int, growth_rate: int, init_channels: int) -> int:
    """``n`` of ``depth`` = 3n + 4, the sizes checked: one line naming the first that is not usable."""
    for name, value, least in (("depth", depth, 4), ("growth_rate", growth_rate, 1), ("init_channels", init_channels, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be a whole number of at least {least}, got {value!r}")
    if (depth - 4) % 3:
        raise ValueError(f"depth must be 3n + 4, got {depth}")
    return (depth - 4) // 3


class DenseNet(nn.Module):
    """DenseNet feature extractor with an optional classifier.

    Args:
        depth (int): total depth ``L`` = 3n + 4 (n layers per dense block); 40 in the paper.
        growth_rate (int): ``k`` in the paper, feature maps added per layer; 12.
        init_channels (int): output channels of the stem convolution.
        stem (str): ``"imagenet"`` — Conv7x7 stride 2 (the paper's "7x7 first layer"), then a 3x3
            max-pool if ``stem_pool``; ``"cifar"`` — Conv3x3 stride 1 (the published DenseNet-40).
        stem_pool (bool): max-pool after the 7x7 stem.
        dropout (float): dropout after each dense layer.
        memory_efficient (bool): recompute dense layers in the backward pass (gradient checkpointing)
            instead of storing the concatenations; slower, much less memory.
        num_classes (int): size of the linear classifier on the pooled features; 0 for none.

    ``forward_features`` returns the last convolutional map ``M_s`` (after the final BN-ReLU);
    ``forward_head`` pools and classifies it.
    """

    def __init__(
        self,
        depth: int = 40,
        growth_rate: int = 12,
        init_channels: int = 16,
        stem: str = "imagenet",
        stem_pool: bool = True,
        dropout: float = 0.0,
        memory_efficient: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        layers_per_block = _layers_per_block(depth, growth_rate, init_channels)
        if stem == "imagenet":
            stem_layers: list[nn.Module] = [nn.Conv2d(3, init_channels, kernel_size=7, stride=2, padding=3, bias=False)]
            if stem_pool:
                stem_layers += [
                    nn.BatchNorm2d(init_channels),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
                ]
        elif stem == "cifar":
            stem_layers = [nn.Conv2d(3, init_channels, kernel_size=3, padding=1, bias=False)]
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.stem = nn.Sequential(*stem_layers)
        blocks: list[nn.Module] = []
        channels = init_channels
        for i in range(3):
            blocks.append(_DenseBlock(layers_per_block, channels, growth_rate, dropout, memory_efficient))
            channels += layers_per_block * growth_rate
            if i < 2:
                blocks.append(_Transition(channels, channels))
        self.blocks = nn.Sequential(*blocks)
        self.final_norm = nn.BatchNorm2d(channels)
        self.num_features = channels
        self.classifier = nn.Linear(channels, num_classes) if num_classes else None
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional feature map ``M_s`` (B, C, h, w)."""
        return F.relu(self.final_norm(self.blocks(self.stem(x))))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.mean(dim=(2, 3))
        return self.classifier(pooled) if self.classifier is not None else pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def densenet40(**kwargs) -> DenseNet:
    """DenseNet-40 with growth rate 12 (the paper's backbone)."""
    return DenseNet(depth=40, growth_rate=12, **kwargs)
