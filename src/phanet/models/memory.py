"""How much memory a network takes, found before it is built.

Settings that pass validation can still describe a network no machine holds: DenseNet's channels
grow by ``growth_rate`` per layer, so ``growth_rate=4096`` makes 322 billion parameters, and an
``image_size`` of 4096 makes feature maps of gigabytes per image. :func:`estimate_memory` builds the
network on PyTorch's ``meta`` device (shapes without storage, so nothing is allocated; the random
initialisation, which only fills values, is skipped), counts its parameters, and runs each
convolutional trunk there on one image to measure the feature maps it makes. The numbers are
estimates, meant to refuse what cannot fit, not to plan to the byte: training a demo network on
batches of 32 measured 0.56 GB against an estimate of 0.70 GB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from phanet.models.densenet import DenseNet

#: Bytes of a float32 value.
FLOAT = 4
#: Values kept per parameter while training: the weight, its gradient and two optimiser moments (Adam).
TRAINING_COPIES = 4
#: Feature maps kept per measured one while training: a dense layer keeps its rectified input as well
#: as its outputs for the backward pass.
TRAINING_MAPS = 2


class _ShapesOnly(TorchFunctionMode):
    """Builds modules without filling their weights: on the meta device the initialisers have nothing
    to fill, and running them there costs more than the rest of the build."""

    FILLS = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.fill_, torch.Tensor.zero_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.FILLS:
            return args[0]
        return func(*args, **(kwargs or {}))


class _SameShape(TorchFunctionMode):
    """Runs a trunk on the meta device with the operations that keep their input's shape (batch
    normalisation, ReLU, dropout) passed over: only shapes are measured, and on the meta device these
    take most of the time."""

    KEEP = frozenset({F.batch_norm, F.relu, F.dropout, torch.relu, torch.relu_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.KEEP:
            return args[0]
        return func(*args, **(kwargs or {}))


@dataclass(frozen=True)
class MemoryEstimate:
    """What a network holds: ``parameters`` (values of its weights and buffers) and ``feature_values``,
    the values of the feature maps its trunks make for one image, input included."""

    parameters: int
    feature_values: int

    def bytes(self, batch: int, training: bool) -> int:
        """Bytes to run batches of ``batch`` images (to train on them with ``training``)."""
        copies, maps = (TRAINING_COPIES, TRAINING_MAPS) if training else (1, 1)
        return FLOAT * (self.parameters * copies + batch * self.feature_values * maps)


def _trunks(network: nn.Module) -> list[nn.Module]:
    """The convolutional trunks that take an image: every DenseNet, and every sequence of layers that
    starts with a convolution of the 3 colour channels (VGG's features), outermost only."""
    found: list[nn.Module] = []
    inside: set[int] = set()
    for module in network.modules():
        if id(module) in inside:
            continue
        first = next(iter(module.children()), None) if isinstance(module, nn.Sequential) else None
        if isinstance(module, DenseNet) or (isinstance(first, nn.Conv2d) and first.in_channels == 3):
            found.append(module)
            inside.update(id(m) for m in module.modules())
    return found


def _feature_values(trunk: nn.Module, image_size: int) -> int:
    """Values of every layer's output when ``trunk`` (on the meta device) runs on one image."""
    total = 0

    def count(module: nn.Module, inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    hooks = [m.register_forward_hook(count) for m in trunk.modules() if next(m.children(), None) is None]
    try:
        image = torch.empty(1, 3, image_size, image_size, device="meta")
        with _SameShape():
            trunk.forward_features(image) if isinstance(trunk, DenseNet) else trunk(image)
    finally:
        for hook in hooks:
            hook.remove()
    return total


def on_meta(build: Callable[[], nn.Module]) -> tuple[nn.Module, int]:
    """The network ``build()`` makes, built on the meta device (nothing allocated), and the values of its
    weights and buffers."""
    with torch.device("meta"), _ShapesOnly():
        network = build()
    return network, sum(p.numel() for p in network.parameters()) + sum(b.numel() for b in network.buffers())


def estimate_memory(build: Callable[[], nn.Module], image_size: int, input_size: int | None = None) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of the network ``build()`` makes, each of its trunks seeing images of
    ``image_size`` pixels and the network receiving ``input_size`` (default ``image_size``)."""
    network, parameters = on_meta(build)
    measured: dict[tuple, int] = {}  # PhaNet's scales have one trunk each, all alike: measure one
    features = 3 * (input_size or image_size) ** 2
    for trunk in _trunks(network):
        shapes = (type(trunk), *(tuple(p.shape) for p in trunk.parameters()))
        if shapes not in measured:
            measured[shapes] = _feature_values(trunk, image_size)
        features += measured[shapes]
    return MemoryEstimate(parameters, features)
