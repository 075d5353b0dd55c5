"""ONNX export of a trained network, self-contained for ONNX Runtime.

The exported graph takes the preprocessed faces and returns the tensors of :class:`PhaNetOutput`
that prediction needs, as a tuple (ONNX has no dataclasses):

- input ``images``: float32 (batch, 3, S, S), RGB, resized to S × S and scaled as
  ``(value / 255 - 0.5) / 0.5`` (:func:`phanet.data.transforms.preprocess`); the batch axis is dynamic;
- outputs ``expression_logits`` (batch, E), ``pose_logits`` (batch, P), ``boxes`` (batch, 2, 3),
  ``scale_weights`` (batch, 3), ``task_weights`` (batch, 2).

The file's ``metadata_props`` hold what is needed to use it without the checkpoint, the network's
:class:`~phanet.models.info.ModelInfo`: ``phanet.expressions`` and ``phanet.poses`` (JSON lists of class
names), ``phanet.input_size``, ``phanet.arch``, ``phanet.mean`` and ``phanet.std`` (the input scaling),
``phanet.trained_on``, ``phanet.version`` and ``phanet.input`` (the preprocessing in words).
:func:`read_metadata` reads them back, and :meth:`phanet.inference.TrainedModel.from_onnx` runs the file
alone. A file whose metadata do not describe its graph (edited class lists, a wrong input size) or
whose weights hold NaN or infinite values is refused when it loads, with one line naming the file and
the key. Exporting a checkpoint, with the check against PyTorch, is
:meth:`phanet.inference.TrainedModel.export`.

Opset 20 is the default: the TorchScript exporter writes the crop-and-zoom's ``affine_grid`` as
ONNX ``AffineGrid``, which appeared in opset 20 (``GridSample`` needs 16). :func:`supported_opsets`
gives the range the installed exporter can write.
"""

from __future__ import annotations

import copy
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from phanet.checks import shorten
from phanet.errors import PhanetError
from phanet.files import parse_json, regular_file
from phanet.models.info import INPUT_NAME, MEAN, OUTPUT_NAMES, STD, ModelInfo

OPSET = 20
#: The outputs that are never NaN; the squares, scale and task weights are NaN in networks without them.
LOGITS = ("expression_logits", "pose_logits")
#: Largest difference to PyTorch (in the logits) at which an export counts as faithful.
TOLERANCE = 1e-3


class _StaticAdaptivePool(nn.Module):
    """``AdaptiveAvgPool2d`` for one fixed input size, as two averaging matrices.

    The ONNX exporters only translate adaptive pooling when the output size divides the input size
    and the input size is known; PhaNet's PANs pool maps of any size (and the ones after a
    crop-and-zoom have no static size in the traced graph). The input size is fixed by the model's
    image size, so the pooling is the same linear map for every input.
    """

    rows: torch.Tensor
    cols: torch.Tensor

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
    hooks = [
        module.register_forward_pre_hook(lambda _m, inputs, name=name: sizes.__setitem__(name, tuple(inputs[0].shape[-2:])))
        for name, module in model.named_modules()
        if isinstance(module, nn.AdaptiveAvgPool2d)
    ]
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


def supported_opsets() -> range:
    """The opsets :func:`onnx_bytes` can write: from :data:`OPSET` (AffineGrid) to the newest that both
    the installed TorchScript exporter and the installed ``onnx`` package know."""
    import onnx
    from torch.onnx import _constants

    return range(OPSET, min(_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET, onnx.defs.onnx_opset_version()) + 1)


def check_opset(opset: int) -> int:
    """``opset`` when :func:`onnx_bytes` can write it; a one-line error with the supported range otherwise."""
    supported = supported_opsets()
    if opset not in supported:
        expected = f"{supported[0]}" if len(supported) == 1 else f"{supported[0]} to {supported[-1]}"
        raise PhanetError.about(
            "opset",
            "expected {expected} (PhaNet's crop-and-zoom needs AffineGrid, opset {least}; "
            "the installed torch exporter writes up to {most}), got {opset}",
            expected=expected,
            least=OPSET,
            most=supported[-1],
            opset=opset,
        )
    return opset


def onnx_bytes(model: nn.Module, info: ModelInfo, opset: int = OPSET) -> bytes:
    """The serialised ONNX model of ``model`` (an ``nn.Module`` returning :class:`PhaNetOutput`) with metadata."""
    import onnx

    from phanet.version import __version__

    check_opset(opset)
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
                wrapper,
                (example,),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to a file object too
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
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
        "phanet.mean": repr(info.mean),
        "phanet.std": repr(info.std),
        "phanet.trained_on": info.trained_on,
        "phanet.version": __version__,
        "phanet.input": info.input_description,
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "phanet"
    proto.doc_string = (
        f"PhaNet ({info.arch}) expression and pose classifier. Input {info.input_description}. "
        f"Outputs: {', '.join(OUTPUT_NAMES)}."
    )
    return proto.SerializeToString()


def _class_names(props: dict[str, str], key: str, name: str, allow_empty: bool) -> list[str]:
    text = props[key]
    try:
        value = parse_json(text)
    except ValueError:
        value = None
    if not (
        isinstance(value, list)
        and all(isinstance(v, str) and v.strip() for v in value)
        and len(set(value)) == len(value)
        and (value or allow_empty)
    ):
        raise PhanetError(f"{name}: metadata {key} is not a JSON list of distinct class names (it reads {shorten(text)!r})")
    return value


def _number(props: dict[str, str], key: str, default: float, name: str) -> float:
    """A finite number of the metadata (``default`` in files written before it was stored)."""
    if key not in props:
        return default
    try:
        value = float(props[key])
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (key == "phanet.std" and value <= 0):
        raise PhanetError(
            f"{name}: metadata {key} is not a {'positive' if key == 'phanet.std' else 'finite'} number "
            f"(it reads {shorten(props[key])!r})"
        )
    return value


def _static_dims(value_info) -> list[int | None]:
    """The dimensions of a graph input or output; None where the size is dynamic."""
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _check_graph(proto, info: ModelInfo, name: str) -> None:
    """Refuse metadata that do not describe the graph: the predictor would mislabel every class."""
    inputs = {i.name: i for i in proto.graph.input}
    outputs = {o.name: o for o in proto.graph.output}
    absent = [n for n in (INPUT_NAME, *OUTPUT_NAMES) if n not in (inputs if n == INPUT_NAME else outputs)]
    if absent:
        raise PhanetError(f"{name}: not exported by phanet export (graph has no {absent[0]!r})")
    dims = _static_dims(inputs[INPUT_NAME])
    if len(dims) != 4 or any(d not in (None, info.input_size) for d in dims[2:]):
        raise PhanetError(
            f"{name}: metadata phanet.input_size says {info.input_size}, the graph takes images of "
            f"{' x '.join('?' if d is None else str(d) for d in dims[1:])}"
        )
    for key, output, classes in (
        ("phanet.expressions", "expression_logits", info.expressions),
        ("phanet.poses", "pose_logits", info.poses),
    ):
        dims = _static_dims(outputs[output])
        if len(dims) == 2 and dims[1] is not None and dims[1] != len(classes):
            raise PhanetError(f"{name}: metadata {key} lists {len(classes)} classes, the graph's {output} has {dims[1]}")


def _check_finite_initializers(proto, name: str) -> None:
    """Refuse weights (graph initializers) holding NaN or infinite values: the model gives no usable scores."""
    from onnx import TensorProto, numpy_helper

    floating = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}
    for tensor in proto.graph.initializer:
        if (
            tensor.data_type in floating
            and tensor.data_location != TensorProto.EXTERNAL
            and not np.isfinite(numpy_helper.to_array(tensor).astype(np.float32)).all()
        ):
            raise PhanetError(
                f"{name}: the model's weights hold NaN or infinite values "
                f"(initializer {shorten(tensor.name)!r}); it cannot be used"
            )


def read_metadata(source: str | Path | bytes) -> ModelInfo:
    """The class lists, image size and architecture stored in an ONNX file written by :func:`export_onnx`.

    The metadata are checked against the graph (the number of classes of each output, the input
    size), and the weights for NaN or infinite values; a file that fails raises
    :class:`~phanet.errors.PhanetError` naming it and the metadata key.
    """
    import onnx

    name = "the ONNX model" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        regular_file(source)  # a pipe or a device is refused, never opened
    try:
        proto = (
            onnx.load_model_from_string(source) if isinstance(source, bytes) else onnx.load(str(source), load_external_data=False)
        )
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not an ONNX file"
        raise PhanetError(f"{name}: not a readable ONNX model ({type(exc).__name__})") from None
    if not proto.HasField("graph"):  # protobuf reads an empty file, and many short ones, as a model with nothing in it
        empty = "an empty file" if proto.ByteSize() == 0 else "no graph"
        raise PhanetError(f"{name}: not a readable ONNX model ({empty})")
    props = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in ("phanet.expressions", "phanet.poses", "phanet.input_size") if k not in props]
    if missing:
        raise PhanetError(f"{name}: not exported by phanet export (metadata {', '.join(missing)} missing)")
    expressions = _class_names(props, "phanet.expressions", name, allow_empty=False)
    poses = _class_names(props, "phanet.poses", name, allow_empty=True)
    size = props["phanet.input_size"]
    if not (size.isdigit() and int(size) > 0):
        raise PhanetError(f"{name}: metadata phanet.input_size is not a positive whole number (it reads {shorten(size)!r})")
    info = ModelInfo(
        expressions,
        poses,
        int(size),
        props.get("phanet.arch", "phanet"),
        _number(props, "phanet.mean", MEAN, name),
        _number(props, "phanet.std", STD, name),
        props.get("phanet.trained_on", ""),
    )
    _check_graph(proto, info, name)
    _check_finite_initializers(proto, name)
    return info


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
