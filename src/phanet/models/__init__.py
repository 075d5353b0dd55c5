"""Networks: PhaNet, its ablation variants and the paper's baselines, registered by name.

``create_model(name, **kwargs)`` builds one (:mod:`phanet.models.registry`; names from
:func:`list_models`); each carries its :class:`~phanet.models.info.ModelInfo` as ``model.info``.
Importing this package does not import torch: the networks' modules are imported on first use.
"""

from __future__ import annotations

from phanet.models.info import ModelInfo
from phanet.models.registry import create_model, list_models, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "register_model"]
