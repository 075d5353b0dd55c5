"""Parameter groups: each network names its parts, for per-part learning rates, freezing and diagnostics."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn


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
