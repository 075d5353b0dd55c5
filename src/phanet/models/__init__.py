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
        model: nn.Module = DenseNetBaseline(num_expressions, num_poses, config.backbone)
    elif config.arch == "vgg19":
        model = VGG19(num_expressions, num_poses, config.width, config.head_hidden)
    elif config.arch == "hog_fc":
        model = HOGClassifier(num_expressions, num_poses, config.image_size, config.head_hidden)
    else:
        raise ValueError(f"unknown architecture {config.arch!r}")
    model.image_size = config.image_size
    return model
