"""Face detection and cropping, shared by dataset preparation and prediction.

Detection uses OpenCV's Haar cascades: the frontal one, and the profile one on the image and on
its mirror (the profile cascade only knows one side of the face). Overlapping detections from the
three passes are merged, and faces come back largest first::

    faces = detect_faces(image)
    crop = crop_face(image, faces[0], margin=0.2, size=224) if faces else None

Images are RGB ``uint8`` arrays (H, W, 3), as :func:`phanet.data.io.read_image` returns them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np

from phanet.errors import PhanetError

#: Where a detection came from.
SOURCES = ("frontal", "profile", "profile_mirrored")

_CASCADES = {"frontal": "haarcascade_frontalface_default.xml", "profile": "haarcascade_profileface.xml"}


@dataclass(frozen=True)
class FaceBox:
    """A face box in pixels of the image it was found in; ``score`` is the cascade's neighbour count."""

    x: float
    y: float
    w: float
    h: float
    score: float = 0.0
    source: str = "frontal"

    @property
    def area(self) -> float:
        return self.w * self.h

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)


def match_box(x: float, y: float, boxes: Sequence[tuple[float, float, float, float]]) -> int | None:
    """The index of the largest (x, y, w, h) box holding the point (``x``, ``y``), or None when none holds it:
    which of a detector's boxes is a face whose centre is known."""
    holding = [i for i, (bx, by, bw, bh) in enumerate(boxes) if bx <= x <= bx + bw and by <= y <= by + bh]
    return max(holding, key=lambda i: boxes[i][2] * boxes[i][3], default=None)


@cache
def _cascade(kind: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + _CASCADES[kind])
    if cascade.empty():
        raise PhanetError(
            f"OpenCV's {_CASCADES[kind]} could not be loaded from {cv2.data.haarcascades} "
            "(an OpenCV build without its data files)"
        )
    return cascade


def _run_cascade(gray: np.ndarray, kind: str, min_size: int, min_neighbors: int, scale_factor: float) -> list[tuple]:
    rects, neighbours = _cascade(kind).detectMultiScale2(
        gray, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_size, min_size)
    )
    return [(*map(float, r), float(n)) for r, n in zip(rects, np.ravel(neighbours))]


def overlap(a: FaceBox, b: FaceBox) -> float:
    """The larger of intersection-over-union and intersection over the smaller box (nested boxes count)."""
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    if inter == 0:
        return 0.0
    return max(inter / (a.area + b.area - inter), inter / min(a.area, b.area))


def merge_boxes(boxes: Sequence[FaceBox], threshold: float = 0.5) -> list[FaceBox]:
    """Non-maximum suppression: the best-scored box of each overlapping group, largest first."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: (b.score, b.source == "frontal", b.area), reverse=True):
        if all(overlap(box, k) < threshold for k in kept):
            kept.append(box)
    return sorted(kept, key=lambda b: b.area, reverse=True)


def detect_faces(
    image: np.ndarray,
    min_size: int = 24,
    profile: bool = True,
    max_side: int | None = 640,
    min_neighbors: int = 5,
    scale_factor: float = 1.1,
    merge_threshold: float = 0.5,
) -> list[FaceBox]:
    """Faces in an RGB image, largest first (empty when there is none).

    Args:
        min_size: smallest face side in pixels of ``image``.
        profile: also run the profile cascade on the image and its mirror.
        max_side: detect on a copy scaled down to this longest side (boxes are mapped back); None
            detects at full resolution.
        min_neighbors, scale_factor: the cascades' ``detectMultiScale`` settings.
        merge_threshold: detections overlapping more than this (see :func:`overlap`) are merged.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    height, width = image.shape[:2]
    scale = 1.0
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    side = max(1, round(min_size * scale))
    found = [FaceBox(*r, source="frontal") for r in _run_cascade(gray, "frontal", side, min_neighbors, scale_factor)]
    if profile:
        found += [FaceBox(*r, source="profile") for r in _run_cascade(gray, "profile", side, min_neighbors, scale_factor)]
        mirrored_width = gray.shape[1]
        for x, y, w, h, score in _run_cascade(np.ascontiguousarray(gray[:, ::-1]), "profile", side, min_neighbors, scale_factor):
            found.append(FaceBox(mirrored_width - x - w, y, w, h, score, "profile_mirrored"))
    boxes = [FaceBox(b.x / scale, b.y / scale, b.w / scale, b.h / scale, b.score, b.source) for b in found]
    return merge_boxes(boxes, merge_threshold)


def center_box(shape: Sequence[int]) -> tuple[float, float, float, float]:
    """The largest centred square of an image of ``shape`` (H, W, ...), as (x, y, w, h)."""
    height, width = shape[:2]
    side = min(height, width)
    return ((width - side) / 2, (height - side) / 2, float(side), float(side))


def crop_square(box: FaceBox | Sequence[float], margin: float) -> tuple[int, int, int, int]:
    """The square :func:`crop_face` cuts around ``box`` = (x, y, w, h), as (x0, y0, side, side) in pixels
    of the image (it may reach outside it).

    Prediction maps the network's squares back to the picture through it, so the two agree to the pixel.
    """
    x, y, w, h = box.as_tuple() if isinstance(box, FaceBox) else box
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    return round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), side, side


def crop_face(image: np.ndarray, box: FaceBox | Sequence[float], margin: float = 0.2, size: int | None = 224) -> np.ndarray:
    """Square crop around ``box`` grown by ``margin`` of its side on every side, resized to ``size``.

    The square is centred on the box and its side is ``max(w, h) * (1 + 2 * margin)``; parts outside
    the image are filled with black, so the face stays centred at the borders.
    """
    x, y, w, h = box.as_tuple() if isinstance(box, FaceBox) else box
    if w <= 0 or h <= 0:
        raise ValueError(f"face box needs a positive size, got {w} x {h}")
    x0, y0, side, _ = crop_square(box, margin)
    height, width = image.shape[:2]
    crop = np.zeros((side, side, image.shape[2]), dtype=image.dtype)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(width, x0 + side), min(height, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    if size is None or size == side:
        return crop
    interpolation = cv2.INTER_AREA if size < side else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)
