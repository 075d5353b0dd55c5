"""Prediction rows drawn on their picture: the face box with its label, the S2 and S3 squares."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np

from phanet.checks import shorten
from phanet.data.classes import expression_word
from phanet.errors import PhanetError

#: Longest side of a drawing (:func:`draw_predictions`) in pixels, whatever the image's size and shape.
MAX_DRAWING_SIDE = 2048

_RED, _YELLOW, _GREEN = (230, 40, 40), (250, 220, 0), (40, 220, 80)


def _label(row: dict[str, Any]) -> str:
    text = f"{expression_word(str(row['expression']))} {float(row['expression_prob']):.0%}"
    pose = row.get("pose")
    if isinstance(pose, str):
        try:
            angle = float(pose)
        except ValueError:
            text += f"  {pose}"
        else:
            text += f"  {angle:+g} deg" if angle else "  0 deg"
    return text


def _picture(image: Any) -> np.ndarray:
    """``image`` as the RGB uint8 array the drawing starts from; one line naming ``image`` otherwise."""
    if not isinstance(image, np.ndarray):
        raise PhanetError.about("image", "expected an RGB image array, got {kind}", kind=type(image).__name__)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape or image.dtype != np.uint8:
        raise PhanetError.about(
            "image",
            "expected an RGB uint8 array of (H, W, 3), got {dtype} of shape {shape}",
            dtype=image.dtype,
            shape=image.shape,
        )
    return image


def _free_spot(
    placed: list[tuple[int, int, int, int]], candidates: list[tuple[int, int]], size: tuple[int, int], canvas: tuple[int, int]
) -> tuple[int, int]:
    """The first of ``candidates`` (left, top of a label of ``size`` = (width, height)) that overlaps no
    ``placed`` label; else the first one moved down, a line at a time, until it does (labels of faces
    side by side would otherwise be drawn over each other)."""
    width, height = size

    def free(x: int, y: int) -> bool:
        return all(x + width <= a or a2 <= x or y + height <= b or b2 <= y for a, b, a2, b2 in placed)

    def inside(x: int, y: int) -> tuple[int, int]:
        return min(max(0, x), max(0, canvas[1] - width)), min(max(0, y), max(0, canvas[0] - height))

    for x, y in (inside(*c) for c in candidates):
        if free(x, y):
            return x, y
    x, y = inside(*candidates[0])
    while not free(x, y) and y + height < canvas[0]:
        y += 1
    return x, y


def _draw_row(canvas: np.ndarray, row: dict[str, Any], scale: float, placed: list, thickness: int, font: float) -> None:
    for prefix, colour in (("s2", _RED), ("s3", _YELLOW)):
        corners: list[Any] = [row.get(f"{prefix}_{k}") for k in ("x0", "y0", "x1", "y1")]
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in corners):
            x0, y0, x1, y1 = (int(round(v * scale)) for v in corners)
            cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)
    x, y, w, h = (float(row[k]) * scale for k in ("face_x", "face_y", "face_w", "face_h"))
    p0, p1 = (int(round(x)), int(round(y))), (int(round(x + w)), int(round(y + h)))
    cv2.rectangle(canvas, p0, p1, _GREEN, thickness, cv2.LINE_AA)
    text = _label(row)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thickness)
    size = (tw + 2, th + base + 2)
    # Above the face box, else below it, else inside its top.
    left, top = _free_spot(placed, [(p0[0], p0[1] - size[1]), (p0[0], p1[1]), (p0[0], p0[1])], size, canvas.shape[:2])
    placed.append((left, top, left + size[0], top + size[1]))
    cv2.rectangle(canvas, (left, top), (left + size[0], top + size[1]), (0, 0, 0), -1)
    cv2.putText(canvas, text, (left + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font, _GREEN, thickness, cv2.LINE_AA)


def draw_predictions(
    image: np.ndarray, rows: Iterable[dict[str, Any]], min_side: int = 256, max_side: int = MAX_DRAWING_SIDE
) -> np.ndarray:
    """The RGB ``image`` with every face of ``rows`` drawn: the face box (green) with
    ``expression probability  pose`` (the expression spelled out: ``anger`` for ``AN``), the S2 square
    (red) and the S3 square (yellow). Labels of faces side by side are moved apart, never drawn over
    each other.

    Images whose shorter side is below ``min_side`` are enlarged by a whole factor (nearest
    neighbour) so that the text stays readable, and images whose longer side would then exceed
    ``max_side`` are scaled down to it, keeping their aspect ratio; the drawing is scaled with them.
    A picture too thin to hold its labels (a strip of 1 × 60,000 pixels) is drawn on a black canvas
    whose shorter side is ``min_side``, the picture at its top left. The drawing is thus never larger
    than ``max_side`` × ``max_side``.

    A row that cannot be drawn (not a mapping, a face box missing or not a number) is refused with
    one line naming its index in ``rows``.
    """
    if not 1 <= min_side <= max_side:
        raise PhanetError.about(
            "min_side", "expected 1 <= {min_side} <= {max_side}, got {low} and {high}", low=min_side, high=max_side
        )
    image = _picture(image)
    if rows is None or isinstance(rows, (str, bytes)) or not hasattr(rows, "__iter__"):
        raise PhanetError.about("rows", "expected a list of prediction rows (mappings), got {kind}", kind=type(rows).__name__)
    rows = list(rows)
    height, width = image.shape[:2]
    scale = min(max(1, math.ceil(min_side / max(1, min(height, width)))), max_side / max(height, width))
    if scale == 1:
        picture = image
    else:
        # Whole factors with nearest neighbour repeat pixels exactly; shrinking averages them.
        picture = cv2.resize(
            image,
            (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA,
        )
    canvas = np.zeros((max(picture.shape[0], min_side), max(picture.shape[1], min_side), 3), image.dtype)
    canvas[: picture.shape[0], : picture.shape[1]] = picture
    thickness = max(1, round(min(canvas.shape[:2]) / 250))
    font = 0.4 * thickness + 0.1
    placed: list[tuple[int, int, int, int]] = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise PhanetError.about(
                "rows", "row {index} is a {kind}, not a mapping of columns", index=index, kind=type(row).__name__
            )
        if row.get("status") != "ok":
            cv2.putText(
                canvas,
                str(row.get("status", "")).replace("_", " "),
                (6, int(22 * font + 8)),
                cv2.FONT_HERSHEY_SIMPLEX,
                font,
                _RED,
                thickness,
                cv2.LINE_AA,
            )
            continue
        try:
            _draw_row(canvas, dict(row), scale, placed, thickness, font)
        except (KeyError, TypeError, ValueError, OverflowError, cv2.error) as exc:
            reason = (
                f"no {exc}"
                if isinstance(exc, KeyError)
                else shorten(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            )
            raise PhanetError.about("rows", "row {index} cannot be drawn ({reason})", index=index, reason=reason) from None
    return canvas
