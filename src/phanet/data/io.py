"""Reading images the same way everywhere (training, preparation, prediction).

Every path returns an RGB ``uint8`` array of shape (H, W, 3): EXIF orientation is applied, grayscale
and palette images are expanded, alpha is composited on black, 16-bit images are scaled to 8 bits, and
floating-point images (32-bit TIFF) are read as values from 0 to 1 (or 0 to 255 when any value exceeds 1).

A file that cannot be decoded, whatever the decoder's complaint (a truncated stream, a garbled header,
an allocation that fails), raises :class:`~phanet.errors.UnreadableImage`, so that datasets skip and
count it and prediction gives it a status row. So does a file whose header declares more than
:data:`MAX_PIXELS` pixels: a few hundred bytes of PNG can declare 30,000 × 30,000 pixels (a
"decompression bomb") and would take gigabytes to decode; such files are refused from the header,
before any pixel is decoded. Only regular files are opened (:func:`phanet.files.open_regular`): a
named pipe, a device or a socket with an image's name is unreadable, never waited on.
"""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from phanet.errors import UnreadableImage
from phanet.files import NotAFile, open_regular

#: Most pixels an image file may declare (64 megapixels: a 9,000 × 7,000 photograph). Pillow's own
#: decompression-bomb limit (about 89 MP with a warning, 179 MP with an error) lies above it, so files
#: past Pillow's limit are refused however the warning filters are set.
MAX_PIXELS = 64_000_000

#: File name endings taken for images, wherever files are found by name (dataset folders, prediction
#: inputs); :func:`read_image` decodes all of them.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm", ".jp2"})

# ``warnings.catch_warnings`` swaps the process-wide filters; concurrent readers (dataset checks
# decode in threads) take turns so that each restores what it found.
_OPEN_LOCK = threading.Lock()


def quiet_video_decoder() -> None:
    """Keep FFmpeg, under OpenCV, from printing its own lines about a broken video ("moov atom not
    found") beside the row or the one line that says the same; a level the user set is kept. OpenCV
    reads it when it first opens a video, so this is called before each open."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:,.0f} MP" if pixels >= 1e6 else f"{pixels / 1e6:.2g} MP"


def too_large(path: Path, declared: str) -> UnreadableImage:
    """The error for a file whose header declares ``declared`` (e.g. "9000×8000 pixels"), past :data:`MAX_PIXELS`."""
    return UnreadableImage(f"{path}: declares {declared}, more than the {_megapixels(MAX_PIXELS)} limit")


def _open(path: Path, handle: BinaryIO) -> Image.Image:
    """``Image.open`` of the file ``handle`` (the header only) with Pillow's decompression-bomb warning
    raised as an error."""
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(handle)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow stopped at the header; its message is the only place the declared size survives.
            found = re.search(r"\((\d+) pixels\)", str(exc))
            raise too_large(path, _megapixels(int(found.group(1))) if found else "too many pixels") from None


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any PIL image (after EXIF transposition) to an RGB uint8 array."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 or image.mode.startswith("I;16") else 255.0
        gray = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        # Floating-point images hold intensities from 0 to 1 by convention; values above 1 say 0 to 255.
        peak = 1.0 if arr.max(initial=0) <= 1 else 255.0
        gray = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        arr = np.asarray(rgba, dtype=np.float32)
        rgb = arr[:, :, :3] * (arr[:, :, 3:4] / 255.0)
        return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as upright RGB uint8 (H, W, 3).

    Raises :class:`UnreadableImage` for a file that is not a decodable image, declares more than
    :data:`MAX_PIXELS` pixels or is not a regular file, and ``FileNotFoundError`` for a path that does
    not exist.
    """
    path = Path(path)
    try:
        handle = open_regular(path)
    except NotAFile as exc:
        raise UnreadableImage(str(exc)) from None
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # permission denied, a name too long, a NUL byte in it
        raise UnreadableImage(f"{path}: cannot be opened ({getattr(exc, 'strerror', None) or exc})") from None
    with handle:
        return _decode(path, handle)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """An image file's bytes (one held in an archive, say) as upright RGB uint8 (H, W, 3), decoded and
    checked as :func:`read_image` decodes and checks a file; the errors name the file ``name``."""
    return _decode(Path(name), io.BytesIO(data))


def _decode(path: Path, handle: BinaryIO) -> np.ndarray:
    try:
        image = _open(path, handle)
    except UnreadableImage:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the file is not a usable image
        raise UnreadableImage(f"{path}: not a readable image ({type(exc).__name__})") from None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise too_large(path, f"{width}×{height} pixels ({_megapixels(width * height)})")
        if width < 1 or height < 1:
            raise UnreadableImage(f"{path}: declares {width}×{height} pixels, an empty image")
        try:
            image.load()
            return pil_to_rgb(ImageOps.exif_transpose(image))
        except Exception as exc:  # noqa: BLE001 - OSError, struct.error, MemoryError, ...: all mean unreadable
            raise UnreadableImage(f"{path}: not a readable image ({type(exc).__name__})") from None


def crop_box(image: np.ndarray, box: tuple[float, float, float, float] | None, margin: float = 0.0) -> np.ndarray:
    """Crop ``box`` = (x, y, w, h) in pixels, grown by ``margin`` of its size on each side, clipped to the image."""
    if box is None:
        return image
    x, y, w, h = box
    height, width = image.shape[:2]
    x0 = int(round(max(0.0, x - margin * w)))
    y0 = int(round(max(0.0, y - margin * h)))
    x1 = int(round(min(float(width), x + w + margin * w)))
    y1 = int(round(min(float(height), y + h + margin * h)))
    if x1 <= x0 or y1 <= y0:
        return image
    return image[y0:y1, x0:x1]
