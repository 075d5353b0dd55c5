"""What prediction reads: image files, videos, folders of both, and pictures already in memory.

Every input becomes a :class:`Source`; :func:`pictures` gives its RGB pictures one at a time (one
for an image, every K-th frame of a video), decoded as :func:`phanet.data.io.read_image` decodes
training images. Files are taken as images by :data:`~phanet.data.io.IMAGE_SUFFIXES` and as videos
by :data:`VIDEO_SUFFIXES` when a folder is searched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from phanet.data.io import IMAGE_SUFFIXES, MAX_PIXELS, pil_to_rgb, read_image, too_large
from phanet.errors import PhanetError, UnreadableImage

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})


@dataclass
class Source:
    """One input: an image file, a video file or an in-memory RGB image; ``name`` is its ``file`` column."""

    name: str
    kind: str  # "image", "video" or "array"
    path: Path | None = None
    rgb: np.ndarray | None = None


def array_to_rgb(array: np.ndarray, color: str = "rgb") -> np.ndarray:
    """An in-memory picture as RGB uint8 (H, W, 3), converted as :func:`phanet.data.io.read_image` converts files.

    ``array`` is (H, W) grayscale, (H, W, 1), (H, W, 3) or (H, W, 4) with alpha, uint8 or uint16;
    ``color`` names its channel order: ``"rgb"`` (PIL, scikit-image, matplotlib) or ``"bgr"`` (OpenCV's
    ``imread`` and ``VideoCapture``; BGRA alike).
    """
    if color not in ("rgb", "bgr"):
        raise PhanetError.about("color", "expected 'rgb' or 'bgr', got {color!r}", color=color)
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


def sources(inputs: Any, color: str) -> list[Source]:
    """Every input as a :class:`Source`; folders are searched recursively. Missing paths are errors,
    and so is a video named directly that cannot be opened."""
    if isinstance(inputs, (str, Path, np.ndarray, Image.Image)):
        items = list(inputs) if isinstance(inputs, np.ndarray) and inputs.ndim == 4 else [inputs]
    else:
        items = list(inputs)
    found: list[Source] = []
    arrays = 0
    for item in items:
        if isinstance(item, np.ndarray):
            found.append(Source(f"<array {arrays}>", "array", rgb=array_to_rgb(item, color)))
            arrays += 1
        elif isinstance(item, Image.Image):
            found.append(Source(f"<image {arrays}>", "array", rgb=pil_to_rgb(ImageOps.exif_transpose(item))))
            arrays += 1
        elif isinstance(item, (str, Path)):
            found.extend(_path_sources(Path(item)))
        else:
            raise PhanetError(f"input: expected a path, a numpy array or a PIL image, got {type(item).__name__}")
    if not found:
        found_in = ", ".join(map(str, items))
        raise PhanetError(f"input: no image or video found in {found_in}" if items else "input: nothing to predict")
    return found


def _path_sources(path: Path) -> list[Source]:
    if path.is_dir():
        # A link whose target is gone is kept: it gets an ``unreadable`` row instead of vanishing.
        found = sorted(
            p
            for p in path.rglob("*")
            if (p.is_file() or (p.is_symlink() and not p.exists()))
            and not p.name.startswith(".")
            and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
        )
        return [Source(str(p), "video" if p.suffix.lower() in VIDEO_SUFFIXES else "image", p) for p in found]
    if not path.exists():
        raise PhanetError(f"{path}: no such file or folder")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        _check_video(path)
        return [Source(str(path), "video", path)]
    return [Source(str(path), "image", path)]


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


def picture_count(source: Source, every: int) -> int:
    """How many pictures :func:`pictures` will give (a video's frame count as its header says; 1 when unknown)."""
    if source.kind != "video" or source.path is None:
        return 1
    try:
        capture = _open_video(source.path)
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


def pictures(source: Source, every: int = 1) -> Iterator[tuple[int, np.ndarray | None]]:
    """(frame index, RGB picture) of ``source``: -1 for a still image, every ``every``-th frame of a video.

    An unreadable image, or a video or frame that cannot be decoded, gives None as its picture.
    """
    if source.kind == "video" and source.path is not None:
        # A video named directly was checked by :func:`sources`; one found in a folder may give no frame at all.
        empty = True
        for index, rgb in _video_frames(source.path, every):
            empty = False
            yield index, rgb
        if empty:
            yield -1, None
    elif source.kind == "image" and source.path is not None:
        try:
            rgb = read_image(source.path)
        except (UnreadableImage, FileNotFoundError):  # not an image, or gone since the inputs were listed
            rgb = None
        yield -1, rgb
    else:
        yield -1, source.rgb
