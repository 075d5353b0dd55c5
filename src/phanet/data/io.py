"""Reading images the same way everywhere (training, preparation, prediction).

Every path returns an RGB ``uint8`` array of shape (H, W, 3): EXIF orientation is applied, grayscale
and palette images are expanded, alpha is composited on black, and 16-bit images are scaled to 8 bits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from phanet.errors import UnreadableImage


def pil_to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any PIL image (after EXIF transposition) to an RGB uint8 array."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 or image.mode.startswith("I;16") else 255.0
        gray = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        arr = np.asarray(rgba, dtype=np.float32)
        rgb = arr[:, :, :3] * (arr[:, :, 3:4] / 255.0)
        return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as upright RGB uint8 (H, W, 3); raise :class:`UnreadableImage` if it is not one."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return pil_to_rgb(image)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
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
