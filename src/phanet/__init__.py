"""PhaNet: pose-adaptive hierarchical attention network for multi-view facial expression recognition.

``phanet.create_model("phanet", image_size=64)`` builds a network by name (:mod:`phanet.models`);
``phanet.TrainedModel.load(path)`` runs a trained one (:mod:`phanet.inference`);
``phanet.Predictor.load(path)`` finds the faces in photos and videos and predicts each
(:mod:`phanet.predict`). Heavier parts are imported on first use, so that importing the package
stays cheap.
"""

from __future__ import annotations

from typing import Any

from phanet.version import __version__

__all__ = ["PhaNet", "PhaNetOutput", "Predictor", "TrainedModel", "__version__", "create_model", "list_models"]

#: Public name -> the module that defines it.
_LAZY = {
    "PhaNet": "phanet.models.phanet",
    "PhaNetOutput": "phanet.models.output",
    "Predictor": "phanet.predict",
    "TrainedModel": "phanet.inference",
    "create_model": "phanet.models.registry",
    "list_models": "phanet.models.registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'phanet' has no attribute {name!r}")
