"""What the app accepts: sizes of uploads, pictures and videos, each refused with one line.

Every refusal is a :class:`Refused`: an HTTP status (4xx; 429 when the queue is full) and a
one-line reason that the page shows and the API returns. Pictures are judged from their header,
before a pixel is decoded, and decoded as ``phanet predict`` decodes them
(:func:`phanet.data.io.read_image`, which refuses decompression bombs on its own); videos from
what OpenCV reads of their header, before a frame is predicted.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
from PIL import Image

from phanet.data.io import quiet_video_decoder
from phanet.errors import PhanetError

MB = 1024 * 1024

#: The picture formats the app decodes (Pillow's names); others (EPS, PSD, ...) are refused from the header.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")


class Refused(Exception):
    """A request the app does not serve: ``status`` (4xx) and a one-line ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """The bounds of one request, and of the work waiting at once.

    Attributes:
        max_bytes: largest picture upload, in bytes.
        max_pixels: most pixels a picture (or a video frame) may declare.
        max_side: longest side of a picture or frame, in pixels (a 1 x 60,000 strip is no photograph).
        max_video_bytes: largest video upload, in bytes.
        max_video_seconds: longest video, by its header's frame count and rate.
        max_video_frames: most frames predicted in one video; longer videos are sampled evenly.
        queue: requests admitted at once, the one running included; the next ones get 429 "busy".
    """

    max_bytes: int = 20 * MB
    max_pixels: int = 24_000_000
    max_side: int = 10_000
    max_video_bytes: int = 100 * MB
    max_video_seconds: float = 60.0
    max_video_frames: int = 120
    queue: int = 8

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_side", "max_video_bytes", "max_video_frames", "queue"):
            if getattr(self, name) < 1:
                raise PhanetError.about(name, "expected 1 or more, got {value}", value=getattr(self, name))
        if not self.max_video_seconds > 0:
            raise PhanetError.about("max_video_seconds", "expected more than 0, got {value}", value=self.max_video_seconds)


def size_text(count: float) -> str:
    """Bytes in words: ``512 bytes``, ``3.2 MB``, ``2.0 GB``."""
    if count < 1024:
        return f"{count:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        count /= 1024
        if count < 1024 or unit == "GB":
            return f"{count:.1f} {unit}"
    raise AssertionError("unreachable")


def _pixels_text(pixels: int) -> str:
    return f"{pixels / 1e6:.0f} MP" if pixels >= 1e6 else f"{pixels / 1e6:.2g} MP"


def check_dimensions(width: int, height: int, limits: Limits, what: str) -> None:
    """Refuse a picture or frame of ``width`` x ``height`` past the pixel or side limits."""
    if width < 1 or height < 1:
        raise Refused(422, f"{what} declares {width}×{height} pixels, an empty picture")
    if width * height > limits.max_pixels:
        raise Refused(
            413,
            f"{what} declares {width}×{height} pixels ({_pixels_text(width * height)}); "
            f"the limit is {_pixels_text(limits.max_pixels)}",
        )
    if max(width, height) > limits.max_side:
        raise Refused(413, f"{what} is {width}×{height} pixels; its longer side may be at most {limits.max_side}")


def check_image(path: Path, limits: Limits) -> None:
    """Refuse, from its header, a file that is not a picture of :data:`IMAGE_FORMATS` or is too large."""
    with warnings.catch_warnings():
        # Past Pillow's own limit, its warning would be a log line per upload: the check below refuses them.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path, formats=IMAGE_FORMATS) as image:
                width, height = image.size
        except Image.DecompressionBombError as exc:
            # Pillow stopped at the header; its message is the only place the declared size survives.
            found = re.search(r"\((\d+) pixels\)", str(exc))
            declared = _pixels_text(int(found.group(1))) if found else "more pixels than Pillow decodes"
            raise Refused(413, f"the picture declares {declared}; the limit is {_pixels_text(limits.max_pixels)}") from None
        except Exception as exc:  # noqa: BLE001 - whatever Pillow says, the upload is not a picture it can read
            name = type(exc).__name__
            detail = "" if name == "UnidentifiedImageError" else f" ({name})"
            raise Refused(415, f"not a picture in a known format ({', '.join(IMAGE_FORMATS)}){detail}") from None
    check_dimensions(width, height, limits, "the picture")


@dataclass(frozen=True)
class VideoHeader:
    """What a video's header says: frame size, rate and count, and the step that keeps it within the limits."""

    width: int
    height: int
    fps: float
    frames: int
    every_nth_frame: int

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def check_video(path: Path, limits: Limits) -> VideoHeader:
    """Refuse a video OpenCV cannot open, or whose frames, duration or frame count are past the limits."""
    quiet_video_decoder()
    try:
        capture = cv2.VideoCapture(str(path))
    except cv2.error:
        raise Refused(415, "not a video OpenCV can open") from None
    try:
        if not capture.isOpened():
            raise Refused(415, "not a video OpenCV can open")
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps, frames = float(capture.get(cv2.CAP_PROP_FPS)), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    check_dimensions(width, height, limits, "the video's frame")
    if not (math.isfinite(fps) and fps > 0 and frames > 0):
        raise Refused(422, "the video's header gives no frame rate or frame count, so its duration is unknown")
    header = VideoHeader(width, height, fps, frames, max(1, math.ceil(frames / limits.max_video_frames)))
    if header.seconds > limits.max_video_seconds:
        raise Refused(413, f"the video lasts {header.seconds:.1f} s; the limit is {limits.max_video_seconds:g} s")
    return header
