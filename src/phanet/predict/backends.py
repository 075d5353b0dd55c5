"""What runs the network for prediction: PyTorch or ONNX Runtime, behind one call.

A backend maps a batch of network inputs, float32 (B, 3, S, S) named :data:`INPUT_NAME` (RGB face
crops resized to S × S and scaled as ``(value / 255 - 0.5) / 0.5``), to the arrays :data:`OUTPUT_NAMES`
of :class:`~phanet.models.output.PhaNetOutput`. :class:`ModelInfo` is what a backend's user needs to
know of the network besides its weights: a checkpoint holds it (:func:`module_info`), an exported
ONNX file carries it in its metadata (:func:`phanet.export.read_metadata`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from phanet.errors import PhanetError

INPUT_NAME = "images"
OUTPUT_NAMES = ("expression_logits", "pose_logits", "boxes", "scale_weights", "task_weights")


@dataclass
class ModelInfo:
    """What a predictor needs to know about a network besides its weights."""

    expressions: list[str]
    poses: list[str]
    input_size: int
    arch: str


def module_info(module) -> ModelInfo:
    """The :class:`ModelInfo` of a :class:`~phanet.training.module.PhaNetModule`."""
    return ModelInfo(list(module.expressions), list(module.poses), int(module.config.input_size),
                     module.config.model.arch)


class TorchBackend:
    """Runs the PyTorch network (eager) on ``device``; inputs may be arrays or tensors (on any device)."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def __call__(self, images: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            output = self.model(torch.as_tensor(images).to(self.device))
        return {name: getattr(output, name).float().cpu().numpy() for name in OUTPUT_NAMES}


class OnnxBackend:
    """Runs an exported model (:mod:`phanet.export`) with ONNX Runtime; ``name`` names it in errors."""

    def __init__(self, session, name: str = "the ONNX model") -> None:
        self.session = session
        self.name = name

    def __call__(self, images: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        if isinstance(images, torch.Tensor):
            images = images.cpu().numpy()
        try:
            outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: images})
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types for a graph it cannot run
            raise PhanetError(f"{self.name}: ONNX Runtime cannot run it ({str(exc).splitlines()[0][:200]})") from None
        return dict(zip(OUTPUT_NAMES, outputs))


def checkpoint_backend(path: str | Path, backend: str = "torch",
                       device: str = "cpu") -> tuple[TorchBackend | OnnxBackend, ModelInfo]:
    """The network of a ``.ckpt`` of ``phanet train``: run by PyTorch on ``device`` (``backend="torch"``),
    or exported in memory and run by ONNX Runtime (``backend="onnx"``)."""
    from phanet.training.run import load_module

    if backend not in ("torch", "onnx"):
        raise PhanetError.about("backend", "expected torch or onnx, got {value!r}", value=backend)
    module = load_module(path)
    info = module_info(module)
    if backend == "onnx":
        from phanet.export import onnx_bytes, ort_session

        return OnnxBackend(ort_session(onnx_bytes(module.model, info))), info
    return TorchBackend(module.model, device), info


def onnx_backend(path: str | Path, threads: int | None = None) -> tuple[OnnxBackend, ModelInfo]:
    """The network of a ``.onnx`` file of ``phanet export``, on ONNX Runtime, with the class lists of its metadata."""
    from phanet.export import ort_session, read_metadata

    path = Path(path)
    if not path.is_file():
        raise PhanetError.about("path", "{value} not found", value=path)
    info = read_metadata(path)
    return OnnxBackend(ort_session(path, threads), str(path)), info
