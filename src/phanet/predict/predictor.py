"""The predictor: pictures in, one row per face out, faces batched through a backend."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from phanet.checks import file_path, positive
from phanet.checks import margin as check_margin
from phanet.data.detectors import DEFAULT_DETECTOR, DETECTORS, find_faces
from phanet.data.faces import FaceBox, crop_face, crop_square
from phanet.data.transforms import preprocess
from phanet.errors import PhanetError
from phanet.inference import TrainedModel
from phanet.models.info import ModelInfo
from phanet.predict.sources import picture_count, pictures, sources
from phanet.results import prediction_columns

FACE_COLUMNS = ("face_x", "face_y", "face_w", "face_h", "face_source")

#: Default margin around a detected face, as a fraction of its side: the default of ``phanet prepare``.
MARGIN = 0.2


def columns(expressions: Sequence[str], poses: Sequence[str]) -> list[str]:
    """The prediction table's columns, in order, for a model with these class lists."""
    return ["file", "frame", "face", "status", *FACE_COLUMNS, *prediction_columns(expressions, poses)]


@dataclass
class FrameResult:
    """One image or video frame after prediction: its rows, when kept the RGB image, and why it gave
    no picture (an ``unreadable`` one: a corrupt file, a named pipe, a folder that cannot be listed)."""

    file: str
    frame: int
    status: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    image: np.ndarray | None = None
    reason: str = ""


@dataclass
class _Pending:
    """A picture whose faces wait for their batch: the network inputs and where each lies in the picture."""

    result: FrameResult
    regions: list[tuple[float, float, float, float]]
    inputs: list[torch.Tensor]


class Predictor:
    """Expression, head pose and attended regions for every face in pictures and videos.

    Build one with :meth:`load` (a ``.ckpt`` of ``phanet train`` or a ``.onnx`` of ``phanet export``),
    :meth:`from_checkpoint` or :meth:`from_onnx`, or around a :class:`~phanet.inference.TrainedModel`;
    then call :meth:`predict`. The faces are run by the model's :meth:`~phanet.inference.TrainedModel.rows`,
    the step that evaluation takes too.

    Args:
        model: the trained network and its :class:`~phanet.models.info.ModelInfo`.
        detect: find faces (True) or take every input as one face crop (False); :meth:`predict` may
            override it per call.
        margin: margin around a detected face on each side, as a fraction of its side; use the
            margin the training data was prepared with (``phanet prepare`` default 0.2).
        min_face: smallest face side in pixels that the detector reports.
        batch_size: faces per forward pass.
        detector: the face detector, ``"yunet"`` or ``"haar"`` (:mod:`phanet.data.detectors`); use the
            one the training data was prepared with.
    """

    def __init__(
        self,
        model: TrainedModel,
        detect: bool = True,
        margin: float = MARGIN,
        min_face: int = 24,
        batch_size: int = 32,
        detector: str = DEFAULT_DETECTOR,
    ) -> None:
        positive(batch_size, "batch_size")
        check_margin(margin, "margin")
        if min_face < 1:
            raise PhanetError.about("min_face", "expected 1 or more pixels, got {value}", value=min_face)
        if detector not in DETECTORS:
            raise PhanetError.about(
                "detector", "expected one of {choices}, got {value!r}", choices=", ".join(DETECTORS), value=detector
            )
        self.detector = detector
        model.check_batch(batch_size)
        self.model = model
        self.detect = detect
        self.margin = margin
        self.min_face = min_face
        self.batch_size = batch_size

    @property
    def info(self) -> ModelInfo:
        return self.model.info

    @property
    def expressions(self) -> list[str]:
        return self.info.expressions

    @property
    def poses(self) -> list[str]:
        return self.info.poses

    @property
    def columns(self) -> list[str]:
        """The columns of :meth:`predict`'s table, in order."""
        return columns(self.expressions, self.poses)

    @classmethod
    def from_checkpoint(cls, path: str | Path, backend: str = "torch", device: str = "cpu", **kwargs: Any) -> Predictor:
        """A predictor for a ``.ckpt`` of ``phanet train``.

        ``backend="torch"`` runs the network in PyTorch on ``device``; ``backend="onnx"`` exports it
        in memory and runs it with ONNX Runtime. Other keyword arguments go to :class:`Predictor`.
        """
        return cls(TrainedModel.from_checkpoint(path, device, backend), **kwargs)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None, **kwargs: Any) -> Predictor:
        """A predictor on ONNX Runtime for a file written by ``phanet export`` (class lists from its metadata)."""
        return cls(TrainedModel.from_onnx(path, threads), **kwargs)

    @classmethod
    def load(cls, path: str | Path, backend: str = "torch", device: str = "cpu", **kwargs: Any) -> Predictor:
        """:meth:`from_onnx` for a ``.onnx`` file, :meth:`from_checkpoint` otherwise."""
        if file_path(path).suffix.lower() == ".onnx":
            return cls.from_onnx(path, **kwargs)
        return cls.from_checkpoint(path, backend, device, **kwargs)

    # ---------------------------------------------------------------------------------------- api

    def predict(
        self, inputs: Any, detect: bool | None = None, color: str = "rgb", every_nth_frame: int = 1, progress: bool = False
    ) -> pd.DataFrame:
        """One row per face (columns: :mod:`phanet.predict`) as a pandas DataFrame.

        Args:
            inputs: a path (image file, video file or folder searched recursively), an image array,
                a PIL image, or a list of these. A 4-D array is a stack of frames. Arrays are RGB
                unless ``color="bgr"``.
            detect: find faces (default: the predictor's setting); False takes every input as a
                face crop.
            color: channel order of array inputs: ``"rgb"`` or ``"bgr"`` (frames from OpenCV). Files
                are always decoded as RGB, whatever this says.
            every_nth_frame: in videos, predict frames 0, K, 2K, ...
            progress: show a progress bar over images and frames.

        A missing path or a video that cannot be opened raises :class:`~phanet.errors.PhanetError`
        before any work starts; an unreadable image (or a broken video found in a folder) gives an
        ``unreadable`` row, and the run goes on.
        """
        rows = [
            row for result in self.iter_predict(inputs, detect, color, every_nth_frame, progress=progress) for row in result.rows
        ]
        return self.table(rows)

    def table(self, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
        """Rows (dicts) as the prediction DataFrame, with every column in order."""
        frame = pd.DataFrame(list(rows), columns=self.columns)
        return frame.astype({"frame": "int64", "face": "int64"})

    def iter_predict(
        self,
        inputs: Any,
        detect: bool | None = None,
        color: str = "rgb",
        every_nth_frame: int = 1,
        keep_images: bool = False,
        progress: bool = False,
        done: Collection[tuple[str, int]] = (),
    ) -> Iterator[FrameResult]:
        """:meth:`predict` one image or frame at a time, in input order (faces are still batched).

        With ``keep_images`` every :class:`FrameResult` carries its RGB image (for drawing). The
        pictures ``done`` names, as (``file``, ``frame``) pairs of earlier rows, are left out (a
        stopped run continued).
        """
        positive(every_nth_frame, "every_nth_frame")
        detect = self.detect if detect is None else detect
        found = sources(inputs, color)
        done_frames: dict[str, set[int]] = {}
        for name, frame in done:
            done_frames.setdefault(name, set()).add(frame)
        total = sum(picture_count(source, every_nth_frame) for source in found) - len(done)
        with tqdm(total=max(0, total), desc="predict", unit="img", disable=not progress, leave=False) as bar:
            pending: list[_Pending] = []
            count = 0
            for source in found:
                for frame, rgb, reason in pictures(source, every_nth_frame, done_frames.get(source.name, ())):
                    if rgb is None:
                        item = _Pending(FrameResult(source.name, frame, "unreadable", reason=reason), [], [])
                    else:
                        item = self._faces(source.name, frame, rgb, detect, keep_images)
                    pending.append(item)
                    count += len(item.inputs)
                    bar.update()
                    # A batch of faces, or of pictures: pictures without a face would otherwise wait, with
                    # their images, for faces that may never come, and their rows would not be written.
                    if count >= self.batch_size or len(pending) >= self.batch_size:
                        yield from self._flush(pending)
                        pending, count = [], 0
            yield from self._flush(pending)

    # ---------------------------------------------------------------------------------- internals

    def _faces(self, name: str, frame: int, rgb: np.ndarray, detect: bool, keep: bool) -> _Pending:
        height, width = rgb.shape[:2]
        if detect:
            boxes = find_faces(rgb, self.detector, min_size=self.min_face)
            crops = [crop_face(rgb, box, self.margin, None) for box in boxes]
            regions: list[tuple[float, float, float, float]] = [crop_square(box, self.margin) for box in boxes]
        else:
            boxes = [FaceBox(0.0, 0.0, float(width), float(height), source="whole_image")]
            crops = [rgb]
            regions = [(0.0, 0.0, float(width), float(height))]
        result = FrameResult(name, frame, "ok" if boxes else "no_face", image=rgb if keep else None)
        result.rows = [
            {
                "file": name,
                "frame": frame,
                "face": i,
                "status": "ok",
                "face_x": b.x,
                "face_y": b.y,
                "face_w": b.w,
                "face_h": b.h,
                "face_source": b.source,
            }
            for i, b in enumerate(boxes)
        ]
        return _Pending(result, regions, [preprocess(crop, self.info.input_size) for crop in crops])

    def _flush(self, pending: list[_Pending]) -> Iterator[FrameResult]:
        inputs = [tensor for item in pending for tensor in item.inputs]
        regions = [region for item in pending for region in item.regions]
        predictions: list[dict[str, Any]] = []
        for start in range(0, len(inputs), self.batch_size):
            batch = torch.stack(inputs[start : start + self.batch_size]).numpy()
            rows = self.model.rows(batch, regions[start : start + self.batch_size])
            predictions.extend(rows.to_dict("records"))
        position = 0
        for item in pending:
            result = item.result
            if not item.inputs:
                result.rows = [{"file": result.file, "frame": result.frame, "face": -1, "status": result.status}]
            for row in result.rows[: len(item.inputs)]:
                predicted = predictions[position]
                position += 1
                if pd.isna(predicted["expression"]):  # face_rows leaves non-finite scores blank
                    row["status"] = "non_finite"
                else:
                    row.update(predicted)
            yield result
