"""The one way the package runs a trained network: :class:`TrainedModel`.

A ``TrainedModel`` is a network with what is needed to feed it and read it: its
:class:`~phanet.models.info.ModelInfo` (class lists, input size and scaling, what it was trained on)
and a backend that runs batches of network inputs, PyTorch (:class:`TorchBackend`) or ONNX Runtime
(:class:`OnnxBackend`). Everything that runs a trained network goes through it: evaluation
(:meth:`TrainedModel.labelled_rows`, labelled faces in, one row per face out), prediction on photos
and videos (:class:`~phanet.predict.Predictor` adds face detection and cropping), the reports
(:meth:`TrainedModel.forward` gives the whole :class:`~phanet.models.output.PhaNetOutput`, with
attention maps, crops and features), and the ONNX export and its check (:meth:`TrainedModel.export`,
:func:`differences`). The rows are always :func:`phanet.results.face_rows` of the backend's outputs::

    model = TrainedModel.load("runs/demo/phanet/checkpoints/best.ckpt")   # or a .onnx file
    rows = model.rows(images)                      # images: float32 (B, 3, S, S), see ModelInfo
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from phanet.checkpoints import check_memory, load_network
from phanet.checks import file_path, output_file, positive, torch_device
from phanet.config import Config
from phanet.data.datasets import FaceDataset, collate
from phanet.data.records import MISSING, LabeledFaces
from phanet.data.transforms import to_network_input
from phanet.errors import PhanetError
from phanet.export import LOGITS, OPSET, TOLERANCE, check_opset, onnx_bytes, ort_session, read_metadata
from phanet.files import atomic_write_bytes, regular_file
from phanet.models.base import Network
from phanet.models.info import INPUT_NAME, OUTPUT_NAMES, ModelInfo
from phanet.models.output import PhaNetOutput
from phanet.results import face_rows
from phanet.text import plural

Backend = Callable[[np.ndarray | torch.Tensor], dict[str, np.ndarray]]


class TorchBackend:
    """Runs a PyTorch network (eager) on ``device`` (one this machine has: :func:`~phanet.checks.torch_device`);
    inputs may be arrays or tensors (on any device)."""

    def __init__(self, network: nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(torch_device(device))
        self.network = network.to(self.device).eval()

    def forward(self, images: np.ndarray | torch.Tensor, **kwargs: Any) -> PhaNetOutput:
        with torch.inference_mode():
            return self.network(torch.as_tensor(images).to(self.device), **kwargs)

    def __call__(self, images: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        output = self.forward(images)
        return {name: getattr(output, name).float().cpu().numpy() for name in OUTPUT_NAMES}


class OnnxBackend:
    """Runs an exported network (:mod:`phanet.export`) with ONNX Runtime; ``name`` names it in errors."""

    def __init__(self, session: Any, name: str = "the ONNX model") -> None:
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


class TrainedModel:
    """A trained network, what it needs to be fed and read (``info``), and the backend that runs it.

    Build one with :meth:`load` (a ``.ckpt`` of ``phanet train`` or a ``.onnx`` of ``phanet export``),
    :meth:`from_checkpoint`, :meth:`from_onnx` or :meth:`from_network`.

    Args:
        backend: a callable mapping network inputs, float32 (B, 3, S, S), to the output arrays
            :data:`~phanet.models.info.OUTPUT_NAMES`.
        info: the network's class lists, input size and scaling.
        network: the PyTorch network, when there is one (for :meth:`forward` and the export).
        config: the config it was trained with, when known (a checkpoint's).
    """

    def __init__(self, backend: Backend, info: ModelInfo, network: nn.Module | None = None, config: Config | None = None) -> None:
        self.backend = backend
        self.info = info
        self.network = network
        self.config = config

    def check_batch(self, batch_size: int, parameter: str = "batch_size") -> None:
        """Refuse with one line naming ``parameter`` a batch of ``batch_size`` images that the network of
        the config it was trained with cannot run in this machine's memory
        (:func:`~phanet.checkpoints.check_memory`); nothing is checked without a config (an ONNX file)."""
        if self.config is not None and batch_size > 1:
            check_memory(self.config, self.info.expressions, self.info.poses, batch_size, False, parameter)

    @classmethod
    def from_network(cls, network: Network, device: str | torch.device = "cpu", config: Config | None = None) -> TrainedModel:
        """A network of :func:`~phanet.models.create_model` (``network.info`` says how to feed it), run by PyTorch."""
        return cls(TorchBackend(network, device), network.info, network, config)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu", backend: str = "torch") -> TrainedModel:
        """The network of a ``.ckpt`` of ``phanet train``: run by PyTorch on ``device`` (``backend="torch"``),
        or exported in memory and run by ONNX Runtime (``backend="onnx"``)."""
        if backend not in ("torch", "onnx"):
            raise PhanetError.about("backend", "expected torch or onnx, got {value!r}", value=backend)
        torch_device(device)
        network, config = load_network(file_path(path))
        model = cls.from_network(network, device, config)
        return model.onnx() if backend == "onnx" else model

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None) -> TrainedModel:
        """A ``.onnx`` file of ``phanet export`` on ONNX Runtime, with the class lists of its metadata."""
        path = file_path(path)
        try:
            regular_file(path)
        except FileNotFoundError:
            raise PhanetError.about("path", "{value} not found", value=path) from None
        except (OSError, PhanetError) as exc:  # a pipe or a device (never opened), no permission
            raise PhanetError.about("path", "{reason}", reason=getattr(exc, "strerror", None) or exc) from None
        info = read_metadata(path)
        return cls(OnnxBackend(ort_session(path, threads), str(path)), info)

    @classmethod
    def load(
        cls, path: str | Path, device: str | torch.device = "cpu", backend: str = "torch", threads: int | None = None
    ) -> TrainedModel:
        """:meth:`from_onnx` for a ``.onnx`` file, :meth:`from_checkpoint` otherwise."""
        if Path(path).suffix.lower() == ".onnx":
            return cls.from_onnx(path, threads)
        return cls.from_checkpoint(path, device, backend)

    @property
    def expressions(self) -> list[str]:
        return self.info.expressions

    @property
    def poses(self) -> list[str]:
        return self.info.poses

    @property
    def training_config(self) -> Config:
        """The config the network was trained with; an ONNX file holds none."""
        if self.config is None:
            raise PhanetError.about(
                "checkpoint", "an exported ONNX file holds no training config; give the .ckpt written by phanet train"
            )
        return self.config

    @property
    def device(self) -> torch.device:
        """Where the inputs are best put: the PyTorch backend's device, else the CPU."""
        return self.backend.device if isinstance(self.backend, TorchBackend) else torch.device("cpu")

    def outputs(self, images: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """The backend's output arrays for network inputs ``images`` (B, 3, S, S)."""
        return self.backend(images)

    def rows(self, images: np.ndarray | torch.Tensor, regions: Any = None) -> pd.DataFrame:
        """One row per input (:func:`phanet.results.face_rows`); ``regions`` (B × (x, y, w, h)) says which
        part of its picture each input shows, for the squares in the picture's pixels."""
        return face_rows(self.backend, images, self.info, regions)

    def forward(self, images: np.ndarray | torch.Tensor, **kwargs: Any) -> PhaNetOutput:
        """The whole :class:`~phanet.models.output.PhaNetOutput` (``return_maps``, ``return_crops`` and
        ``map_classes`` as the network's ``forward`` takes them); PyTorch backends only."""
        if not isinstance(self.backend, TorchBackend):
            raise PhanetError.about(
                "model", "the whole network output needs the PyTorch network, not an ONNX file; load the checkpoint"
            )
        return self.backend.forward(images, **kwargs)

    def labelled_rows(
        self, faces: LabeledFaces, batch_size: int = 64, num_workers: int = 0, progress: bool = False
    ) -> pd.DataFrame:
        """The rows of every sample of ``faces``, in batches, with the true labels in front.

        Extra columns: ``index`` (position in ``faces``), ``path``, ``subject``, ``true_expression``,
        ``true_pose`` (class names of the data; '' when unknown). The pixel squares are NaN: the images
        come at the network's size (:class:`~phanet.data.datasets.FaceDataset`). Unreadable images are
        skipped and appear in ``faces.skipped`` afterwards; NaN or infinite scores are an error, since
        they would still count in an accuracy.
        """
        positive(batch_size, "batch_size")
        self.check_batch(batch_size)
        # collate takes the whole batch FaceDataset.__getitems__ fetched (a dict), not a list of items
        loader = DataLoader(
            FaceDataset(faces, self.info.input_size),
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=collate,  # type: ignore[arg-type]
        )
        tables = []
        skipped = 0
        for batch in tqdm(loader, desc="evaluating", unit="batch", leave=False, disable=not progress):
            skipped += int(batch["skipped"])
            if "pixels" not in batch:
                continue
            index = batch["index"].numpy()
            table = self.rows(to_network_input(batch["pixels"].to(self.device)))
            blank = table["expression"].isna().to_numpy()
            if blank.any():
                first = faces.samples[int(index[blank.argmax()])]
                raise PhanetError(
                    f"evaluate: the network gives NaN or infinite scores (first for "
                    f"{faces.image_path(first)}); the checkpoint's weights are not usable"
                )
            table.insert(0, "index", index)
            tables.append(table)
        if skipped:
            faces.skipped.append((plural(skipped, "image"), "unreadable, skipped during evaluation"))
        if not tables:
            raise PhanetError("evaluate: no readable image in the evaluated data")
        frame = pd.concat(tables, ignore_index=True)
        samples = [faces.samples[i] for i in frame["index"]]
        frame.insert(1, "path", [s.path for s in samples])
        frame.insert(2, "subject", [s.subject for s in samples])
        frame.insert(3, "true_expression", [faces.expressions[s.expression] for s in samples])
        frame.insert(4, "true_pose", [faces.poses[s.pose] if s.pose != MISSING else "" for s in samples])
        return frame

    def _torch_network(self, what: str) -> nn.Module:
        if self.network is None:
            raise PhanetError.about("model", "{what} needs the PyTorch network, not an ONNX file; load the checkpoint", what=what)
        return self.network

    def onnx_bytes(self, opset: int = OPSET) -> bytes:
        """The network as a serialised ONNX model with its metadata (:func:`phanet.export.onnx_bytes`)."""
        return onnx_bytes(self._torch_network("the export"), self.info, opset)

    def onnx(self, opset: int = OPSET) -> TrainedModel:
        """The same network exported in memory and run by ONNX Runtime."""
        return TrainedModel(OnnxBackend(ort_session(self.onnx_bytes(opset))), self.info, self.network, self.config)

    def export(
        self, out: str | Path, opset: int = OPSET, overwrite: bool = False, check: bool = True
    ) -> tuple[Path, dict[str, float] | None]:
        """Write the network to ``out`` as ONNX: (``out``, the :func:`differences` to PyTorch, or None
        without ``check``).

        The export is compared with PyTorch before it is written: a file that does not reproduce
        PyTorch's logits within :data:`~phanet.export.TOLERANCE` is never written. The file is
        written atomically (:mod:`phanet.files`), so a full disk leaves the old file or none.
        """
        out = output_file(out, "out", overwrite, suffixes=(".onnx",))
        check_opset(opset)
        data = self.onnx_bytes(opset)
        found = None
        if check:
            exported = TrainedModel(OnnxBackend(ort_session(data)), self.info)
            found = differences(self, exported)
            if any(math.isnan(found[name]) for name in LOGITS):
                raise PhanetError.about(
                    "out",
                    "the exported logits are NaN or infinite on random faces, so the export "
                    "cannot be checked against PyTorch; {out_file} was not written",
                    out_file=out,
                )
            worst = max(found[name] for name in LOGITS)
            if worst > TOLERANCE:
                raise PhanetError.about(
                    "out",
                    "the export differs from PyTorch by {worst:.2e} in the logits (more than "
                    "{tolerance:g}); it is not usable and {out_file} was not written",
                    worst=worst,
                    tolerance=TOLERANCE,
                    out_file=out,
                )
        atomic_write_bytes(out, data)
        return out, found


def differences(reference: TrainedModel, other: TrainedModel, batch: int = 4, seed: int = 0) -> dict[str, float]:
    """Largest absolute difference of every output between two runners of one network (PyTorch and ONNX
    Runtime, say), on random faces.

    NaN where both sides are NaN counts as agreement only outside the :data:`~phanet.export.LOGITS` (a
    network without squares returns NaN squares); a NaN or infinite logit on either side, or a NaN on
    one side only, makes that output's difference NaN: nothing was measured, and no tolerance accepts it.
    """
    size = reference.info.input_size
    generator = torch.Generator().manual_seed(seed)
    images = (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1).numpy()
    expected, found = reference.outputs(images), other.outputs(images)
    result = {}
    for name in OUTPUT_NAMES:
        ref = torch.from_numpy(np.asarray(expected[name], dtype=np.float32))
        out = torch.from_numpy(np.asarray(found[name], dtype=np.float32))
        if name in LOGITS and not (bool(torch.isfinite(ref).all()) and bool(torch.isfinite(out).all())):
            result[name] = math.nan
            continue
        both_nan = torch.isnan(ref) & torch.isnan(out)
        diff = (ref - out).abs().masked_fill(both_nan, 0.0)
        result[name] = float(diff.max()) if diff.numel() else 0.0
    return result


def export_onnx(
    checkpoint: str | Path, out: str | Path, opset: int = OPSET, overwrite: bool = False, check: bool = True
) -> tuple[Path, ModelInfo, dict[str, float] | None]:
    """Export the network of a phanet checkpoint to ``out``: (``out``, its :class:`ModelInfo`, the
    :func:`differences` to PyTorch, or None without ``check``). The names and the opset are checked
    before the checkpoint is loaded (which refuses non-finite weights); see :meth:`TrainedModel.export`."""
    output_file(out, "out", overwrite, suffixes=(".onnx",))
    check_opset(opset)
    model = TrainedModel.from_checkpoint(checkpoint)
    written, found = model.export(out, opset, overwrite, check)
    return written, model.info, found
