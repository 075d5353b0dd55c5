"""Prediction on photos, folders and videos: one table row per face.

::

    from phanet import Predictor

    predictor = Predictor.from_checkpoint("runs/demo/phanet/checkpoints/best.ckpt")
    table = predictor.predict(["photo.jpg", "folder/", "clip.mp4"])   # a pandas DataFrame
    table = predictor.predict(frame_from_cv2, color="bgr")             # OpenCV frames are BGR
    table.to_csv("predictions.csv", index=False)

Every face goes through the same steps as the training data: the image is read upright as RGB
(:func:`phanet.data.io.read_image`), faces are found with the frontal and profile cascades of
``phanet prepare`` (:func:`phanet.data.faces.detect_faces`), cut out as a square with the same
margin (:func:`phanet.data.faces.crop_face`), and turned into the network input by
:func:`phanet.data.transforms.preprocess`, the one path training and evaluation use.

Columns of the table (the same in the DataFrame, the CSV and the JSON; ``prob_<class>`` and
``pose_prob_<class>`` for every class of the model):

==========================  =======================================================================
``file``                    the image or video path; ``<array N>`` / ``<image N>`` for in-memory inputs
``frame``                   frame index in a video (0-based); -1 for a still image
``face``                    index of the face in its image, largest first; -1 on a row without a face
``status``                  ``ok``, ``no_face`` (no face found), ``unreadable`` (not a decodable image,
                            an image declaring more than :data:`phanet.data.io.MAX_PIXELS` pixels, or a
                            video or video frame that cannot be decoded) or ``non_finite`` (the network
                            gave NaN or infinite scores for this face: the model is broken); only
                            ``ok`` rows carry the columns below, ``non_finite`` rows the face box
``face_x, face_y,``         the face box in pixels of the (upright) image: top-left corner, width,
``face_w, face_h``          height; the whole image with ``detect=False``
``face_source``             the cascade that found it (``frontal``, ``profile``, ``profile_mirrored``)
                            or ``whole_image`` with ``detect=False``
``expression``              predicted expression class
``expression_prob``         its probability
``prob_<class>``            probability of every expression class
``pose``                    predicted pose (pan angle) class
``pose_prob``               its probability
``pose_prob_<class>``       probability of every pose class
``s2_x0, s2_y0,``           the attended S2 square in image pixels: left, top, right, bottom
``s2_x1, s2_y1``            (NaN for a model without attention, e.g. the baselines)
``s3_x0 … s3_y1``           the attended S3 square, likewise
``c1, c2, c3``              SAL scale weights (NaN for a scale the model does not use)
``lambda_e, lambda_p``      DCML task weights
==========================  =======================================================================

The squares are mapped from the network input back to the image through the face crop, so they
can be drawn on the original picture (:func:`draw_predictions`). With ``detect=False`` the whole
image is the input (resized to a square as in training), and a square becomes a rectangle when the
image is not square.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageOps

from phanet.data.faces import FaceBox, crop_face, detect_faces
from phanet.data.io import MAX_PIXELS, pil_to_rgb, read_image, too_large
from phanet.data.transforms import preprocess
from phanet.errors import PhanetError, UnreadableImage
from phanet.export import INPUT_NAME, OUTPUT_NAMES, ModelInfo
from phanet.files import atomic_write_text
from phanet.models.output import PhaNetOutput
from phanet.results import output_table

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm",
                              ".pnm", ".jp2"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})

SQUARE_COLUMNS = ("s2_x0", "s2_y0", "s2_x1", "s2_y1", "s3_x0", "s3_y0", "s3_x1", "s3_y1")
FACE_COLUMNS = ("face_x", "face_y", "face_w", "face_h", "face_source")

#: Default margin around a detected face, as a fraction of its side: the default of ``phanet prepare``.
MARGIN = 0.2

#: Longest side of a drawing (:func:`draw_predictions`) in pixels, whatever the image's size and shape.
MAX_DRAWING_SIDE = 2048


def columns(expressions: Sequence[str], poses: Sequence[str]) -> list[str]:
    """The prediction table's columns, in order, for a model with these class lists."""
    names = ["file", "frame", "face", "status", *FACE_COLUMNS, "expression", "expression_prob",
             *(f"prob_{e}" for e in expressions)]
    if poses:
        names += ["pose", "pose_prob", *(f"pose_prob_{p}" for p in poses)]
    return names + [*SQUARE_COLUMNS, "c1", "c2", "c3", "lambda_e", "lambda_p"]


# --------------------------------------------------------------------------------------------- backends


class TorchBackend:
    """Runs the PyTorch network (eager) on batches of preprocessed faces."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            output = self.model(torch.from_numpy(images).to(self.device))
        return {name: getattr(output, name).float().cpu().numpy() for name in OUTPUT_NAMES}


class OnnxBackend:
    """Runs an exported model (:mod:`phanet.export`) with ONNX Runtime; ``name`` names it in errors."""

    def __init__(self, session, name: str = "the ONNX model") -> None:
        self.session = session
        self.name = name

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        try:
            outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: images})
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types for a graph it cannot run
            raise PhanetError(f"{self.name}: ONNX Runtime cannot run it ({str(exc).splitlines()[0][:200]})") from None
        return dict(zip(OUTPUT_NAMES, outputs))


# ------------------------------------------------------------------------------------------------ inputs


@dataclass
class _Source:
    """One input: an image file, a video file or an in-memory RGB image."""

    name: str
    kind: str  # "image", "video" or "array"
    path: Path | None = None
    rgb: np.ndarray | None = None


@dataclass
class FrameResult:
    """One image or video frame after prediction: its rows and, when kept, the RGB image."""

    file: str
    frame: int
    status: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    image: np.ndarray | None = None


@dataclass
class _Pending:
    result: FrameResult
    regions: list[tuple[float, float, float, float]]
    inputs: list[torch.Tensor]


def array_to_rgb(array: np.ndarray, color: str = "rgb") -> np.ndarray:
    """An in-memory picture as RGB uint8 (H, W, 3), converted as :func:`phanet.data.io.read_image` converts files.

    ``array`` is (H, W) grayscale, (H, W, 1), (H, W, 3) or (H, W, 4) with alpha, uint8 or uint16;
    ``color`` names its channel order: ``"rgb"`` (PIL, scikit-image, matplotlib) or ``"bgr"`` (OpenCV's
    ``imread`` and ``VideoCapture``; BGRA alike).
    """
    if color not in ("rgb", "bgr"):
        raise PhanetError(f"color: expected 'rgb' or 'bgr', got {color!r}")
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))) or 0 in array.shape[:2]:
        raise PhanetError(f"image array: expected (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if array.dtype == np.uint16:
        array = np.clip(np.round(array.astype(np.float64) * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise PhanetError(f"image array: expected uint8 or uint16 values, got {array.dtype}")
    if color == "bgr" and array.ndim == 3:
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    return pil_to_rgb(Image.fromarray(np.ascontiguousarray(array)))


def _sources(inputs: Any, color: str) -> list[_Source]:
    """Every input as a :class:`_Source`; folders are searched recursively. Missing paths are errors."""
    if isinstance(inputs, (str, Path, np.ndarray, Image.Image)):
        items = list(inputs) if isinstance(inputs, np.ndarray) and inputs.ndim == 4 else [inputs]
    else:
        items = list(inputs)
    sources: list[_Source] = []
    arrays = 0
    for item in items:
        if isinstance(item, np.ndarray):
            sources.append(_Source(f"<array {arrays}>", "array", rgb=array_to_rgb(item, color)))
            arrays += 1
        elif isinstance(item, Image.Image):
            sources.append(_Source(f"<image {arrays}>", "array", rgb=pil_to_rgb(ImageOps.exif_transpose(item))))
            arrays += 1
        elif isinstance(item, (str, Path)):
            sources.extend(_path_sources(Path(item)))
        else:
            raise PhanetError(f"input: expected a path, a numpy array or a PIL image, got {type(item).__name__}")
    if not sources:
        found_in = ", ".join(map(str, items))
        raise PhanetError(f"input: no image or video found in {found_in}" if items else "input: nothing to predict")
    return sources


def _path_sources(path: Path) -> list[_Source]:
    if path.is_dir():
        # A link whose target is gone is kept: it gets an ``unreadable`` row instead of vanishing.
        found = sorted(p for p in path.rglob("*") if (p.is_file() or (p.is_symlink() and not p.exists()))
                       and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)
        return [_Source(str(p), "video" if p.suffix.lower() in VIDEO_EXTENSIONS else "image", p) for p in found]
    if not path.exists():
        raise PhanetError(f"{path}: no such file or folder")
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        _check_video(path)
        return [_Source(str(path), "video", path)]
    return [_Source(str(path), "image", path)]


def _open_video(path: Path) -> cv2.VideoCapture:
    """An opened capture; :class:`UnreadableImage` when OpenCV cannot open the file or its frames
    declare more than :data:`~phanet.data.io.MAX_PIXELS` pixels."""
    try:
        capture = cv2.VideoCapture(str(path))
    except cv2.error:
        raise UnreadableImage(f"{path}: cannot be opened as a video (OpenCV could not read it)") from None
    if not capture.isOpened():
        capture.release()
        raise UnreadableImage(f"{path}: cannot be opened as a video (OpenCV could not decode a frame)")
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > MAX_PIXELS:
        capture.release()
        raise too_large(path, f"{width}×{height} pixels per frame")
    return capture


def _check_video(path: Path) -> None:
    try:
        capture = _open_video(path)
    except UnreadableImage as exc:
        raise PhanetError(str(exc)) from None
    try:
        ok = capture.grab()
    except cv2.error:
        ok = False
    finally:
        capture.release()
    if not ok:
        raise PhanetError(f"{path}: cannot be opened as a video (OpenCV could not decode a frame)")


def _video_length(path: Path, every: int) -> int:
    try:
        capture = _open_video(path)
    except UnreadableImage:
        return 1
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return max(1, -(-count // every)) if count > 0 else 1


def _video_frames(path: Path, every: int) -> Iterator[tuple[int, np.ndarray | None]]:
    """(index, RGB frame) of every ``every``-th frame; skipped frames are grabbed, not decoded.

    A video that cannot be opened gives (-1, None); a frame that cannot be decoded gives
    (index, None) and ends the video, since the decoder cannot be trusted past it.
    """
    try:
        capture = _open_video(path)
    except UnreadableImage:
        yield -1, None
        return
    try:
        index = 0
        while capture.grab():
            if index % every == 0:
                try:
                    ok, frame = capture.retrieve()
                    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None
                except cv2.error:
                    rgb = None
                yield index, rgb
                if rgb is None:
                    return
            index += 1
    except cv2.error:
        yield index, None
    finally:
        capture.release()


# ------------------------------------------------------------------------------------------- geometry


def crop_square(box: Sequence[float], margin: float) -> tuple[float, float, float, float]:
    """The square :func:`phanet.data.faces.crop_face` cuts around ``box`` = (x, y, w, h): (x0, y0, side, side)."""
    x, y, w, h = box
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    return (float(round(x + w / 2 - side / 2)), float(round(y + h / 2 - side / 2)), float(side), float(side))


def _square_corners(square: Sequence[float], region: Sequence[float]) -> list[float]:
    """(x, y, l) in [0, 1] coordinates of the network input → (x0, y0, x1, y1) in image pixels."""
    cx, cy, half = square
    rx, ry, rw, rh = region
    return [rx + (cx - half) * rw, ry + (cy - half) * rh, rx + (cx + half) * rw, ry + (cy + half) * rh]


# ------------------------------------------------------------------------------------------ predictor


class Predictor:
    """Expression, head pose and attended regions for every face in pictures and videos.

    Build one with :meth:`from_checkpoint` (PyTorch, or ONNX Runtime with ``backend="onnx"``) or
    :meth:`from_onnx` (an exported ``.onnx`` file alone), then call :meth:`predict`.

    Args:
        backend: a callable mapping preprocessed faces (B, 3, S, S) float32 to the output arrays
            (:class:`TorchBackend` or :class:`OnnxBackend`).
        info: class lists, input size and architecture of the network.
        detect: find faces (True) or take every input as one face crop (False); :meth:`predict` may
            override it per call.
        margin: margin around a detected face on each side, as a fraction of its side; use the
            ``--margin`` the training data was prepared with (``phanet prepare`` default 0.2).
        min_face: smallest face side in pixels that the detector reports.
        batch_size: faces per forward pass.
    """

    def __init__(self, backend: Callable[[np.ndarray], dict[str, np.ndarray]], info: ModelInfo, detect: bool = True,
                 margin: float = MARGIN, min_face: int = 24, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise PhanetError(f"--batch-size: expected 1 or more, got {batch_size}")
        if margin < 0:
            raise PhanetError(f"--margin: expected 0 or more, got {margin}")
        if min_face < 1:
            raise PhanetError(f"--min-face: expected 1 or more pixels, got {min_face}")
        self.backend = backend
        self.info = info
        self.detect = detect
        self.margin = margin
        self.min_face = min_face
        self.batch_size = batch_size

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
    def from_checkpoint(cls, path: str | Path, backend: str = "torch", device: str = "cpu", **kwargs: Any) -> "Predictor":
        """A predictor for a ``.ckpt`` of ``phanet train``.

        ``backend="torch"`` runs the network in PyTorch on ``device``; ``backend="onnx"`` exports it
        in memory and runs it with ONNX Runtime. Other keyword arguments go to :class:`Predictor`.
        """
        from phanet.export import module_info, onnx_bytes, ort_session
        from phanet.training.run import load_module

        if backend not in ("torch", "onnx"):
            raise PhanetError(f"--backend: expected torch or onnx, got {backend!r}")
        module = load_module(path)
        info = module_info(module)
        if backend == "onnx":
            return cls(OnnxBackend(ort_session(onnx_bytes(module.model, info))), info, **kwargs)
        return cls(TorchBackend(module.model, device), info, **kwargs)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None, **kwargs: Any) -> "Predictor":
        """A predictor on ONNX Runtime for a file written by ``phanet export`` (class lists from its metadata)."""
        from phanet.export import ort_session, read_metadata

        path = Path(path)
        if not path.is_file():
            raise PhanetError(f"--checkpoint: {path} not found")
        info = read_metadata(path)
        return cls(OnnxBackend(ort_session(path, threads), str(path)), info, **kwargs)

    @classmethod
    def load(cls, path: str | Path, backend: str = "torch", device: str = "cpu", **kwargs: Any) -> "Predictor":
        """:meth:`from_onnx` for a ``.onnx`` file, :meth:`from_checkpoint` otherwise."""
        if Path(path).suffix.lower() == ".onnx":
            return cls.from_onnx(path, **kwargs)
        return cls.from_checkpoint(path, backend, device, **kwargs)

    # ---------------------------------------------------------------------------------------- api

    def predict(self, inputs: Any, detect: bool | None = None, color: str = "rgb", every_nth_frame: int = 1,
                progress: bool = False) -> pd.DataFrame:
        """One row per face (see the module docstring for the columns) as a pandas DataFrame.

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
        rows = [row for result in self.iter_predict(inputs, detect, color, every_nth_frame, progress=progress)
                for row in result.rows]
        return self.table(rows)

    def table(self, rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
        """Rows (dicts) as the prediction DataFrame, with every column in order."""
        frame = pd.DataFrame(list(rows), columns=self.columns)
        return frame.astype({"frame": "int64", "face": "int64"})

    def iter_predict(self, inputs: Any, detect: bool | None = None, color: str = "rgb", every_nth_frame: int = 1,
                     keep_images: bool = False, progress: bool = False) -> Iterator[FrameResult]:
        """:meth:`predict` one image or frame at a time, in input order (faces are still batched).

        With ``keep_images`` every :class:`FrameResult` carries its RGB image (for drawing).
        """
        if every_nth_frame < 1:
            raise PhanetError(f"--every-nth-frame: expected 1 or more, got {every_nth_frame}")
        detect = self.detect if detect is None else detect
        sources = _sources(inputs, color)
        total = sum(_video_length(s.path, every_nth_frame) if s.kind == "video" else 1 for s in sources)
        from tqdm import tqdm

        with tqdm(total=total, desc="predict", unit="img", disable=not progress, leave=False) as bar:
            pending: list[_Pending] = []
            count = 0
            for source in sources:
                for item in self._analyse(source, detect, every_nth_frame, keep_images):
                    pending.append(item)
                    count += len(item.inputs)
                    bar.update()
                    if count >= self.batch_size:
                        yield from self._flush(pending)
                        pending, count = [], 0
            yield from self._flush(pending)

    # ---------------------------------------------------------------------------------- internals

    def _analyse(self, source: _Source, detect: bool, every: int, keep: bool) -> Iterator[_Pending]:
        if source.kind == "video":
            # Explicit videos were checked before; one found in a folder may give no frame at all.
            empty = True
            for index, rgb in _video_frames(source.path, every):
                empty = False
                if rgb is None:
                    yield _Pending(FrameResult(source.name, index, "unreadable"), [], [])
                else:
                    yield self._faces(source.name, index, rgb, detect, keep)
            if empty:
                yield _Pending(FrameResult(source.name, -1, "unreadable"), [], [])
            return
        if source.kind == "image":
            try:
                rgb = read_image(source.path)
            except (UnreadableImage, FileNotFoundError):  # not an image, or gone since the inputs were listed
                yield _Pending(FrameResult(source.name, -1, "unreadable"), [], [])
                return
        else:
            rgb = source.rgb
        yield self._faces(source.name, -1, rgb, detect, keep)

    def _faces(self, name: str, frame: int, rgb: np.ndarray, detect: bool, keep: bool) -> _Pending:
        size = self.info.input_size
        height, width = rgb.shape[:2]
        if detect:
            boxes = detect_faces(rgb, min_size=self.min_face)
            crops = [crop_face(rgb, box, self.margin, None) for box in boxes]
            regions = [crop_square(box.as_tuple(), self.margin) for box in boxes]
        else:
            boxes = [FaceBox(0.0, 0.0, float(width), float(height), source="whole_image")]
            crops = [rgb]
            regions = [(0.0, 0.0, float(width), float(height))]
        result = FrameResult(name, frame, "ok" if boxes else "no_face", image=rgb if keep else None)
        result.rows = [{"file": name, "frame": frame, "face": i, "status": "ok", "face_x": b.x, "face_y": b.y,
                        "face_w": b.w, "face_h": b.h, "face_source": b.source} for i, b in enumerate(boxes)]
        return _Pending(result, regions, [preprocess(crop, size) for crop in crops])

    def _flush(self, pending: list[_Pending]) -> Iterator[FrameResult]:
        inputs = [tensor for item in pending for tensor in item.inputs]
        predictions: list[dict[str, Any]] = []
        for start in range(0, len(inputs), self.batch_size):
            batch = torch.stack(inputs[start:start + self.batch_size]).numpy()
            predictions.extend(self._table(self.backend(batch)).to_dict("records"))
        position = 0
        for item in pending:
            result = item.result
            if not item.inputs:
                result.rows = [{"file": result.file, "frame": result.frame, "face": -1, "status": result.status}]
            for row, region in zip(result.rows, item.regions):
                predicted = predictions[position]
                position += 1
                if not _finite_scores(predicted, self.expressions, self.poses):
                    row["status"] = "non_finite"
                    continue
                for scale in (2, 3):
                    square = [predicted.pop(f"s{scale}_{k}") for k in ("x", "y", "l")]
                    corners = _square_corners(square, region)
                    row.update(zip((f"s{scale}_x0", f"s{scale}_y0", f"s{scale}_x1", f"s{scale}_y1"), corners))
                row.update(predicted)
            yield result

    def _table(self, outputs: dict[str, np.ndarray]) -> pd.DataFrame:
        tensors = {name: torch.from_numpy(np.asarray(outputs[name])) for name in OUTPUT_NAMES}
        output = PhaNetOutput(scale_logits=[None, None, None], local_boxes=tensors["boxes"],
                              features=torch.empty(0), **tensors)
        return output_table(output, self.expressions, self.poses)


def _finite_scores(predicted: dict[str, Any], expressions: Sequence[str], poses: Sequence[str]) -> bool:
    """Whether every class probability of one face is a number (NaN or infinite logits give none)."""
    names = [f"prob_{e}" for e in expressions] + [f"pose_prob_{p}" for p in poses]
    return all(math.isfinite(predicted[name]) for name in names)


# ------------------------------------------------------------------------------------------- drawing

_RED, _YELLOW, _GREEN = (230, 40, 40), (250, 220, 0), (40, 220, 80)


def _label(row: dict[str, Any]) -> str:
    text = f"{row['expression']} {row['expression_prob']:.0%}"
    pose = row.get("pose")
    if isinstance(pose, str):
        try:
            angle = float(pose)
        except ValueError:
            text += f"  {pose}"
        else:
            text += f"  {angle:+g} deg" if angle else "  0 deg"
    return text


def draw_predictions(image: np.ndarray, rows: Iterable[dict[str, Any]], min_side: int = 256,
                     max_side: int = MAX_DRAWING_SIDE) -> np.ndarray:
    """The RGB ``image`` with every face of ``rows`` drawn: the face box (green) with
    ``expression probability  pose``, the S2 square (red) and the S3 square (yellow).

    Images whose shorter side is below ``min_side`` are enlarged by a whole factor (nearest
    neighbour) so that the text stays readable, and images whose longer side would then exceed
    ``max_side`` are scaled down to it, keeping their aspect ratio; the drawing is scaled with them.
    A picture too thin to hold its labels (a strip of 1 × 60,000 pixels) is drawn on a black canvas
    whose shorter side is ``min_side``, the picture at its top left. The drawing is thus never larger
    than ``max_side`` × ``max_side``.
    """
    if not 1 <= min_side <= max_side:
        raise PhanetError(f"draw_predictions: expected 1 <= min_side <= max_side, got {min_side} and {max_side}")
    height, width = image.shape[:2]
    scale = min(max(1, math.ceil(min_side / max(1, min(height, width)))), max_side / max(height, width))
    if scale == 1:
        picture = image
    else:
        # Whole factors with nearest neighbour repeat pixels exactly; shrinking averages them.
        picture = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA)
    canvas = np.zeros((max(picture.shape[0], min_side), max(picture.shape[1], min_side), 3), image.dtype)
    canvas[:picture.shape[0], :picture.shape[1]] = picture
    thickness = max(1, round(min(canvas.shape[:2]) / 250))
    font = 0.4 * thickness + 0.1
    rows = list(rows)
    for row in rows:
        if row.get("status") != "ok":
            cv2.putText(canvas, str(row.get("status", "")).replace("_", " "), (6, int(22 * font + 8)),
                        cv2.FONT_HERSHEY_SIMPLEX, font, _RED, thickness, cv2.LINE_AA)
            continue
        for prefix, colour in (("s2", _RED), ("s3", _YELLOW)):
            corners = [row.get(f"{prefix}_{k}") for k in ("x0", "y0", "x1", "y1")]
            if all(isinstance(v, (int, float)) and math.isfinite(v) for v in corners):
                x0, y0, x1, y1 = (int(round(v * scale)) for v in corners)
                cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)
        x, y, w, h = (row[k] * scale for k in ("face_x", "face_y", "face_w", "face_h"))
        p0, p1 = (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h)))
        cv2.rectangle(canvas, p0, p1, _GREEN, thickness, cv2.LINE_AA)
        text = _label(row)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thickness)
        ty = p0[1] - base - 2 if p0[1] - th - base - 4 >= 0 else min(canvas.shape[0] - base - 2, p1[1] + th + 4)
        tx = min(max(0, p0[0]), max(0, canvas.shape[1] - tw))
        cv2.rectangle(canvas, (tx, ty - th - 2), (tx + tw + 2, ty + base), (0, 0, 0), -1)
        cv2.putText(canvas, text, (tx + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, font, _GREEN, thickness, cv2.LINE_AA)
    return canvas


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """``.csv`` (empty cells for missing values) or ``.json`` (a list of row objects, NaN as null).

    The file is written atomically (:mod:`phanet.files`): a full disk leaves the old file or none.
    """
    path = Path(path)
    text = table.to_json(orient="records", indent=1) if path.suffix.lower() == ".json" else table.to_csv(index=False)
    atomic_write_text(path, text)
    return path
