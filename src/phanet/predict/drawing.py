"""Prediction rows drawn on their picture: the face box with its label, the S2 and S3 squares."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

from phanet.errors import PhanetError

#: Longest side of a drawing (:func:`draw_predictions`) in pixels, whatever the image's size and shape.
MAX_DRAWING_SIDE = 2048

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


def draw_predictions(
    image: np.ndarray, rows: Iterable[dict[str, Any]], min_side: int = 256, max_side: int = MAX_DRAWING_SIDE
) -> np.ndarray:
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
        raise PhanetError.about(
            "min_side", "expected 1 <= {min_side} <= {max_side}, got {low} and {high}", low=min_side, high=max_side
        )
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
    rows = list(rows)
    for row in rows:
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
