"""What prediction reads: image files, videos, folders of both, and pictures already in memory.

Every input becomes a :class:`Source`; :func:`pictures` gives its RGB pictures one at a time (one
for an image, every K-th frame of a video), decoded as :func:`phanet.data.io.read_image` decodes
training images. Files are taken as images by :data:`~phanet.data.io.IMAGE_SUFFIXES` and as videos
by :data:`VIDEO_SUFFIXES` when a folder is searched.

A folder is searched in path order, links to folders followed (each real folder once). Whatever
it holds under an image's or a video's name becomes a source, so that it gets a row: a named pipe,
a link to a device or to nothing, a file that may not be read; a sub-folder that cannot be listed
is a source of its own. Such sources give no picture, and the reason why. Only regular files are
ever opened. A file name that is not valid UTF-8 is shown with ``\\xNN`` for its undecodable bytes
(:func:`phanet.text.printable`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from phanet.checks import SHOWN_PATH, shorten
from phanet.data.io import IMAGE_SUFFIXES, MAX_PIXELS, pil_to_rgb, quiet_video_decoder, read_image, too_large
from phanet.errors import PhanetError, UnreadableImage
from phanet.files import NotAFile, regular_file
from phanet.text import printable

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})

#: What :func:`sources` takes, as its messages say.
EXPECTED = "a path, an image array, a PIL image, or a list of these"


@dataclass
class Source:
    """One input: an image file, a video file, an in-memory RGB image, or an entry of a folder that
    gives no picture (``unreadable``, with the ``reason``); ``name`` is its ``file`` column."""

    name: str
    kind: str  # "image", "video", "array" or "unreadable"
    path: Path | None = None
    rgb: np.ndarray | None = None
    reason: str = ""


def array_to_rgb(array: np.ndarray, color: str = "rgb") -> np.ndarray:
    """An in-memory picture as RGB uint8 (H, W, 3), converted as :func:`phanet.data.io.read_image` converts files.

    ``array`` is (H, W) grayscale, (H, W, 1), (H, W, 3) or (H, W, 4) with alpha: uint8, uint16, or
    floating point from 0 to 1 (from 0 to 255 when a value exceeds 1); ``color`` names its channel
    order: ``"rgb"`` (PIL, scikit-image, matplotlib) or ``"bgr"`` (OpenCV's ``imread`` and
    ``VideoCapture``; BGRA alike). Like a file, it holds at most :data:`~phanet.data.io.MAX_PIXELS` pixels.
    """
    if color not in ("rgb", "bgr"):
        raise PhanetError.about("color", "expected 'rgb' or 'bgr', got {color!r}", color=shorten(color))
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))) or 0 in array.shape[:2]:
        raise PhanetError(f"image array: expected (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    height, width = array.shape[:2]
    if height * width > MAX_PIXELS:  # before any copy: a view may hold far more pixels than memory
        raise PhanetError(f"image array: {width}×{height} pixels, more than the {MAX_PIXELS // 1_000_000} MP limit of a picture")
    if array.dtype == np.uint16:
        array = np.clip(np.round(array.astype(np.float64) * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
    elif array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise PhanetError("image array: holds NaN or infinite values")
        peak = 1.0 if array.max(initial=0) <= 1 else 255.0
        array = np.clip(np.round(array.astype(np.float64) * (255.0 / peak)), 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise PhanetError(f"image array: expected uint8, uint16 or floating-point values, got {array.dtype}")
    if color == "bgr" and array.ndim == 3:
        array = array[:, :, [2, 1, 0, 3][: array.shape[2]]]
    return pil_to_rgb(Image.fromarray(np.ascontiguousarray(array)))


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    width, height = image.size
    if width < 1 or height < 1:
        raise PhanetError.about("inputs", "a PIL image of {width}×{height} pixels, an empty image", width=width, height=height)
    if width * height > MAX_PIXELS:
        raise PhanetError.about(
            "inputs", "a PIL image of {width}×{height} pixels, more than {most:,}", width=width, height=height, most=MAX_PIXELS
        )
    try:
        return pil_to_rgb(ImageOps.exif_transpose(image))
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises, the image cannot be converted
        raise PhanetError.about("inputs", "a PIL image that cannot be read ({kind})", kind=type(exc).__name__) from None


def _items(inputs: Any) -> list[Any]:
    if isinstance(inputs, (str, bytes, os.PathLike, Image.Image)):
        return [inputs]
    if isinstance(inputs, np.ndarray):
        return list(inputs) if inputs.ndim == 4 else [inputs]
    if inputs is None or isinstance(inputs, dict) or not hasattr(inputs, "__iter__"):
        raise PhanetError.about("inputs", "expected {expected}, got {kind}", expected=EXPECTED, kind=_kind(inputs))
    return list(inputs)


def _kind(value: Any) -> str:
    return "None" if value is None else f"{type(value).__name__} {shorten(repr(value))}"


def sources(inputs: Any, color: str) -> list[Source]:
    """Every input as a :class:`Source`; folders are searched recursively. Missing paths are errors,
    and so is a video named directly that cannot be opened; every error names the parameter ``inputs``."""
    items = _items(inputs)
    found: list[Source] = []
    arrays = 0
    for item in items:
        if isinstance(item, np.ndarray):
            found.append(Source(f"<array {arrays}>", "array", rgb=array_to_rgb(item, color)))
            arrays += 1
        elif isinstance(item, Image.Image):
            found.append(Source(f"<image {arrays}>", "array", rgb=_pil_to_rgb(item)))
            arrays += 1
        elif isinstance(item, (str, bytes, os.PathLike)):
            path = os.fsdecode(item)
            if not path:
                raise PhanetError.about("inputs", "an empty path; give a file or folder name (. for this folder)")
            found.extend(_path_sources(Path(path)))
        else:
            raise PhanetError.about("inputs", "expected {expected}, got {kind}", expected=EXPECTED, kind=_kind(item))
    if not found:
        if not items:
            raise PhanetError.about("inputs", "nothing to predict")
        found_in = ", ".join(printable(shorten(item, SHOWN_PATH)) for item in items)
        raise PhanetError.about("inputs", "no image or video found in {found_in}", found_in=found_in)
    return found


def _path_sources(path: Path) -> list[Source]:
    shown = printable(shorten(path, SHOWN_PATH))
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise PhanetError.about("inputs", "{path}: no such file or folder", path=shown) from None
    except (OSError, ValueError) as exc:  # no permission, a name too long, a link loop, a NUL byte
        raise PhanetError.about("inputs", "{path}: {reason}", path=shown, reason=getattr(exc, "strerror", None) or exc) from None
    if stat.S_ISDIR(status.st_mode):
        return _folder_sources(path, shown)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        _check_video(path)
        return [Source(printable(str(path)), "video", path)]
    return [Source(printable(str(path)), "image", path)]


def _listing(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of ``folder`` that are not hidden, last name first (the walk pops from the end)."""
    with os.scandir(folder) as entries:
        return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name, reverse=True)


def _folder_sources(root: Path, shown: str) -> list[Source]:
    """The images and videos under ``root`` in path order, and a source for every sub-folder that
    cannot be listed. The walk keeps its own stack, so that no depth of folders is too deep."""
    try:
        stack = [_listing(root)]
    except OSError as exc:
        raise PhanetError.about("inputs", "{path}: folder cannot be listed ({reason})", path=shown, reason=exc.strerror) from None
    searched = {os.path.realpath(root)}
    found: list[Source] = []
    while stack:
        if not stack[-1]:
            stack.pop()
            continue
        entry = stack[-1].pop()
        path = Path(entry.path)
        try:
            folder = entry.is_dir()
        except OSError:  # a link whose target may not be looked at: reading it says why
            folder = False
        if folder:
            real = os.path.realpath(path)
            if real in searched:
                continue
            searched.add(real)
            try:
                stack.append(_listing(path))
            except OSError as exc:
                found.append(Source(printable(str(path)), "unreadable", path, reason=f"folder cannot be listed ({exc.strerror})"))
            continue
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES or suffix in IMAGE_SUFFIXES:
            found.append(Source(printable(str(path)), "video" if suffix in VIDEO_SUFFIXES else "image", path))
    return found


def _open_video(path: Path) -> cv2.VideoCapture:
    """An opened capture; :class:`UnreadableImage` when ``path`` is not a regular file, OpenCV cannot
    open it, or its frames declare more than :data:`~phanet.data.io.MAX_PIXELS` pixels."""
    shown = printable(str(path))
    try:
        regular_file(path)
    except NotAFile as exc:
        raise UnreadableImage(printable(str(exc))) from None
    except (OSError, ValueError) as exc:
        raise UnreadableImage(f"{shown}: cannot be opened ({getattr(exc, 'strerror', None) or exc})") from None
    quiet_video_decoder()
    try:
        capture = cv2.VideoCapture(str(path))
    except cv2.error:
        raise UnreadableImage(f"{shown}: cannot be opened as a video (OpenCV could not read it)") from None
    if not capture.isOpened():
        capture.release()
        raise UnreadableImage(f"{shown}: cannot be opened as a video (OpenCV could not decode a frame)")
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > MAX_PIXELS:
        capture.release()
        raise too_large(Path(shown), f"{width}×{height} pixels per frame")
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
        raise PhanetError(f"{printable(str(path))}: cannot be opened as a video (OpenCV could not decode a frame)")


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


Picture = tuple[int, "np.ndarray | None", str]


def _video_frames(path: Path, every: int, skip: Container[int]) -> Iterator[Picture]:
    """(index, RGB frame, '') of every ``every``-th frame not in ``skip``; other frames are grabbed,
    not decoded.

    A video that cannot be opened or holds no frame gives (-1, None, reason); a frame that cannot be
    decoded gives (index, None, reason) and ends the video, since the decoder cannot be trusted past it.
    """
    try:
        capture = _open_video(path)
    except UnreadableImage as exc:
        yield -1, None, str(exc)
        return
    broken = f"{printable(str(path))}: frame cannot be decoded"
    try:
        index = 0
        while capture.grab():
            if index % every == 0 and index not in skip:
                try:
                    ok, frame = capture.retrieve()
                    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None
                except cv2.error:
                    rgb = None
                yield index, rgb, "" if rgb is not None else broken
                if rgb is None:
                    return
            index += 1
    except cv2.error:
        yield index, None, broken
        return
    finally:
        capture.release()
    if index == 0:
        yield -1, None, f"{printable(str(path))}: no frame can be decoded"


def pictures(source: Source, every: int = 1, skip: Container[int] = ()) -> Iterator[Picture]:
    """(frame index, RGB picture, reason) of ``source``: -1 for a still image, every ``every``-th
    frame of a video; the frames (or -1) in ``skip`` are left out.

    An unreadable image, or a video or frame that cannot be decoded, gives None as its picture and
    the reason as one line.
    """
    if source.kind == "video" and source.path is not None:
        # A video named directly was checked by :func:`sources`; one found in a folder may give no frame at all.
        yield from (picture for picture in _video_frames(source.path, every, skip) if picture[0] not in skip)
        return
    if -1 in skip:
        return
    if source.kind == "image" and source.path is not None:
        try:
            yield -1, read_image(source.path), ""
        except UnreadableImage as exc:
            yield -1, None, printable(str(exc))
        except FileNotFoundError:  # gone since the inputs were listed, or a link to nothing
            yield -1, None, f"{source.name}: not found (a link to nothing, or removed)"
    elif source.kind == "unreadable":
        yield -1, None, f"{source.name}: {source.reason}"
    else:
        yield -1, source.rgb, ""
