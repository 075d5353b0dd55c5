"""PhaNet: pose-adaptive hierarchical attention network for multi-view facial expression recognition.

``from phanet import PhaNet`` builds the network; heavier parts (training, prediction) are imported
on first use so that importing the package stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["PhaNet", "PhaNetOutput", "Predictor", "__version__"]


def __getattr__(name: str):
    if name in ("PhaNet", "PhaNetOutput"):
        from phanet.models import phanet as _phanet

        return getattr(_phanet, name)
    if name == "Predictor":
        from phanet.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'phanet' has no attribute {name!r}")
