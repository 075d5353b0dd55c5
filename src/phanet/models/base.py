"""What every registered network is: :class:`Network`, an ``nn.Module`` that carries its
:class:`~phanet.models.info.ModelInfo` and names its parameter groups."""

from __future__ import annotations

from collections.abc import Mapping

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
