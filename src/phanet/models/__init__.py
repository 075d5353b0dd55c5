"""Networks: PhaNet and the paper's baselines, built from a :class:`~phanet.config.ModelConfig`."""

from __future__ import annotations

from torch import nn

from phanet.config import ModelConfig


def build_model(config: ModelConfig, num_expressions: int, num_poses: int) -> nn.Module:
    """The network named by ``config.arch``; every one returns a :class:`PhaNetOutput`."""
    from phanet.models.baselines import VGG19, DenseNetBaseline, HOGClassifier
    from phanet.models.phanet import PhaNet

    if config.arch == "phanet":
        return PhaNet.from_config(config, num_expressions, num_poses)
    if config.arch == "densenet":
        return DenseNetBaseline(num_expressions, num_poses, config.backbone)
    if config.arch == "vgg19":
        return VGG19(num_expressions, num_poses, config.width, config.head_hidden)
    if config.arch == "hog_fc":
        return HOGClassifier(num_expressions, num_poses, config.image_size, config.head_hidden)
    raise ValueError(f"unknown architecture {config.arch!r}")
