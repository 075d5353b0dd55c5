"""ONNX export of a trained network, self-contained for ONNX Runtime.

The exported graph takes the preprocessed faces and returns the tensors of :class:`PhaNetOutput`
that prediction needs, as a tuple (ONNX has no dataclasses):

- input ``images``: float32 (batch, 3, S, S), RGB, resized to S × S and scaled as
  ``(value / 255 - 0.5) / 0.5`` (:func:`phanet.data.transforms.preprocess`); the batch axis is dynamic;
- outputs ``expression_logits`` (batch, E), ``pose_logits`` (batch, P), ``boxes`` (batch, 2, 3),
  ``scale_weights`` (batch, 3), ``task_weights`` (batch, 2).

The file's ``metadata_props`` hold what is needed to use it without the checkpoint: ``phanet.expressions``
and ``phanet.poses`` (JSON lists of class names), ``phanet.input_size``, ``phanet.arch``,
``phanet.version`` and ``phanet.input`` (the preprocessing in words). :func:`read_metadata` reads them
back, and :meth:`phanet.predict.Predictor.from_onnx` builds a predictor from the file alone.

Opset 20 is the default: the TorchScript exporter writes the crop-and-zoom's ``affine_grid`` as
ONNX ``AffineGrid``, which appeared in opset 20 (``GridSample`` needs 16).
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from phanet.errors import PhanetError

OPSET = 20
INPUT_NAME = "images"
OUTPUT_NAMES = ("expression_logits", "pose_logits", "boxes", "scale_weights", "task_weights")
INPUT_DESCRIPTION = ("images: float32 (batch, 3, S, S), RGB face crops resized to S x S, "
                     "scaled as (value / 255 - 0.5) / 0.5")


@dataclass
class ModelInfo:
    """What a predictor needs to know about a network besides its weights."""

    expressions: list[str]
    poses: list[str]
    input_size: int
    arch: str


class _StaticAdaptivePool(nn.Module):
    """``AdaptiveAvgPool2d`` for one fixed input size, as two averaging matrices.

    The ONNX exporters only translate adaptive pooling when the output size divides the input size
    and the input size is known; PhaNet's PANs pool maps of any size (and the ones after a
    crop-and-zoom have no static size in the traced graph). The input size is fixed by the model's
    image size, so the pooling is the same linear map for every input.
    """

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("rows", self._matrix(in_size[0], out_size[0]))
        self.register_buffer("cols", self._matrix(in_size[1], out_size[1]).t().contiguous())

    @staticmethod
    def _matrix(n: int, bins: int) -> torch.Tensor:
        # torch's bins: [floor(i n / bins), ceil((i + 1) n / bins))
        matrix = torch.zeros(bins, n)
        for i in range(bins):
            start, end = (i * n) // bins, -(-((i + 1) * n) // bins)
            matrix[i, start:end] = 1.0 / (end - start)
        return matrix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.rows, x), self.cols)


def _with_static_pools(model: nn.Module, input_size: int) -> nn.Module:
    """A copy of ``model`` whose adaptive average pools are replaced by :class:`_StaticAdaptivePool`."""
    sizes: dict[str, tuple[int, int]] = {}
    hooks = [module.register_forward_pre_hook(lambda _m, inputs, name=name: sizes.__setitem__(
                 name, tuple(inputs[0].shape[-2:])))
             for name, module in model.named_modules() if isinstance(module, nn.AdaptiveAvgPool2d)]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, input_size, input_size, device=_device_of(model)))
    finally:
        for hook in hooks:
            hook.remove()
    model = copy.deepcopy(model)
    for name, in_size in sizes.items():
        parent_name, _, attribute = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        out = getattr(parent, attribute).output_size
        out = (out, out) if isinstance(out, int) else tuple(in_size[i] if o is None else o for i, o in enumerate(out))
        setattr(parent, attribute, _StaticAdaptivePool(in_size, out).to(_device_of(model)))
    return model


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


class OnnxWrapper(nn.Module):
    """The network with a forward that returns the prediction tensors as a tuple (see module docstring)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.model(images)
        return tuple(getattr(output, name) for name in OUTPUT_NAMES)


def module_info(module) -> ModelInfo:
    """The :class:`ModelInfo` of a :class:`~phanet.training.module.PhaNetModule`."""
    return ModelInfo(list(module.expressions), list(module.poses), int(module.config.input_size),
                     module.config.model.arch)


def onnx_bytes(model: nn.Module, info: ModelInfo, opset: int = OPSET) -> bytes:
    """The serialised ONNX model of ``model`` (an ``nn.Module`` returning :class:`PhaNetOutput`) with metadata."""
    import onnx

    from phanet import __version__

    if opset < OPSET:
        raise PhanetError(f"--opset: PhaNet's crop-and-zoom needs ONNX AffineGrid (opset {OPSET} or later), got {opset}")
    was_training = model.training
    model.eval()
    try:
        wrapper = OnnxWrapper(_with_static_pools(model, info.input_size)).eval().cpu()
        example = torch.zeros(2, 3, info.input_size, info.input_size)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            # The TorchScript exporter announces its deprecation and comments on traced shapes.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, (example,), buffer, dynamo=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
            )
    finally:
        model.train(was_training)
    proto = onnx.load_model_from_string(buffer.getvalue())
    metadata = {
        "phanet.expressions": json.dumps(info.expressions),
        "phanet.poses": json.dumps(info.poses),
        "phanet.input_size": str(info.input_size),
        "phanet.arch": info.arch,
        "phanet.version": __version__,
        "phanet.input": INPUT_DESCRIPTION,
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "phanet"
    proto.doc_string = (f"PhaNet ({info.arch}) expression and pose classifier. Input {INPUT_DESCRIPTION}. "
                        f"Outputs: {', '.join(OUTPUT_NAMES)}.")
    return proto.SerializeToString()


def read_metadata(source: str | Path | bytes) -> ModelInfo:
    """The class lists, image size and architecture stored in an ONNX file written by :func:`export_onnx`."""
    import onnx

    name = "the ONNX model" if isinstance(source, bytes) else str(source)
    try:
        proto = onnx.load_model_from_string(source) if isinstance(source, bytes) else \
            onnx.load(str(source), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not an ONNX file"
        raise PhanetError(f"{name}: not a readable ONNX model ({type(exc).__name__})") from None
    props = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in ("phanet.expressions", "phanet.poses", "phanet.input_size") if k not in props]
    if missing:
        raise PhanetError(f"{name}: not exported by phanet export (metadata {', '.join(missing)} missing)")
    return ModelInfo(json.loads(props["phanet.expressions"]), json.loads(props["phanet.poses"]),
                     int(props["phanet.input_size"]), props.get("phanet.arch", "phanet"))


def max_difference(model: nn.Module, session, input_size: int, batch: int = 4, seed: int = 0) -> dict[str, float]:
    """Largest absolute difference of every output between PyTorch and an ONNX Runtime session, on random faces."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, input_size, input_size, generator=generator) * 2 - 1
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        reference = OnnxWrapper(model)(images.to(_device_of(model)))
    model.train(was_training)
    outputs = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.numpy()})
    result = {}
    for name, ref, out in zip(OUTPUT_NAMES, reference, outputs):
        ref = ref.float().cpu()
        out = torch.from_numpy(out)
        both_nan = torch.isnan(ref) & torch.isnan(out)
        diff = (ref - out).abs().masked_fill(both_nan, 0.0)
        result[name] = float(diff.max()) if diff.numel() else 0.0
    return result


def ort_session(model: str | Path | bytes, threads: int | None = None):
    """An ONNX Runtime session on the available providers (CPU last)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=ort.get_available_providers())
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for unreadable models
        name = "the ONNX model" if isinstance(model, bytes) else str(model)
        raise PhanetError(f"{name}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:200]})") from None


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = OPSET, overwrite: bool = False) -> Path:
    """Export the network of a phanet checkpoint to ``out`` (written atomically); returns ``out``."""
    from phanet.training.run import load_module

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise PhanetError(f"--onnx: expected a file name ending in .onnx, got {out}")
    if out.exists() and not overwrite:
        raise PhanetError(f"--onnx: {out} already exists; choose another name or pass --overwrite")
    module = load_module(checkpoint)
    data = onnx_bytes(module.model, module_info(module), opset)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, out)
    return out
