"""What every registered network is: :class:`Network`, an ``nn.Module`` that carries its
:class:`~phanet.models.info.ModelInfo` and names its parameter groups."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from phanet.models.info import ModelInfo
from phanet.models.output import PhaNetOutput


class Network(nn.Module):
    """A network of :func:`~phanet.models.create_model`: ``forward(images)`` gives a
    :class:`~phanet.models.output.PhaNetOutput`, ``info`` says how to feed and read it, and
    :meth:`parameter_groups` names its parts (for per-part learning rates, freezing and diagnostics)."""

    info: ModelInfo

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The trainable parameters by part, in the network's order."""
        raise NotImplementedError

    def forward(
        self, images: torch.Tensor, return_maps: bool = False, return_crops: bool = False, map_classes: torch.Tensor | None = None
    ) -> PhaNetOutput:
        raise NotImplementedError


def parameter_groups(model: nn.Module, labels: Mapping[str, str]) -> dict[str, list[nn.Parameter]]:
    """The trainable parameters of ``model`` by part, in the model's order: a parameter whose name
    starts with a key of ``labels`` (a module path such as ``backbones.0``) belongs to that label's
    part, any other to the part named after its top-level module."""
    groups: dict[str, list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        key = next((label for prefix, label in labels.items() if name.startswith(prefix + ".")), name.split(".")[0])
        groups.setdefault(key, []).append(parameter)
    return groups


def _names(value: object, argument: str, empty: bool) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{argument} must be a list of class names, got {type(value).__name__}")
    names = list(value)
    wrong = next((name for name in names if not isinstance(name, str) or not name), None)
    if wrong is not None or (not names and not empty):
        got = f"the name {wrong!r}" if names else "none"
        raise ValueError(f"{argument} must be a list of non-empty class names, got {got}")
    if len(set(names)) < len(names):
        raise ValueError(f"{argument} names a class twice: {sorted(n for n in set(names) if names.count(n) > 1)[0]!r}")
    return names


def _side(value: object, argument: str) -> int:
    try:
        side = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        side = 0
    if isinstance(value, bool) or side < 1:
        raise ValueError(f"{argument} must be a positive whole number of pixels, got {value!r}")
    return side


def network_info(arch: str, expressions: object, poses: object, image_size: object, input_size: object | None) -> ModelInfo:
    """The :class:`ModelInfo` of a network built with these arguments, each checked: one line naming the
    argument when a class list is not a list of distinct names (``expressions`` may not be empty), or a
    side is not a positive whole number, or ``input_size`` (default ``image_size``) is not a multiple of
    ``image_size``."""
    image = _side(image_size, "image_size")
    side = image if input_size is None else _side(input_size, "input_size")
    if side % image:
        raise ValueError(f"input_size {side} must be a multiple of image_size {image}")
    return ModelInfo(_names(expressions, "expressions", False), _names(poses, "poses", True), side, arch)
