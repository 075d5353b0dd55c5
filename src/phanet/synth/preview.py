"""Contact sheets: one identity's expressions across the preset's yaws, and many identities.

The expression sheet uses one steady studio light and a grey background so that rows differ only by
expression and columns only by yaw; the identity sheet uses each image's own random scene, as in the
dataset.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from phanet.synth.presets import NEUTRAL, SampleSpec
from phanet.synth.render import Scene, render_head
from phanet.synth.settings import SynthSettings
from phanet.synth.synthesize import head_for, render_sample, sample_activations
from phanet.text import format_angle

MARGIN = 28
STUDIO = Scene(
    light=(-0.35, 0.35, 0.868),
    light_strength=0.8,
    fill_strength=0.2,
    ambient=0.35,
    tint=(1.0, 1.0, 1.0),
    background="flat",
    colors=((0.42, 0.44, 0.47), (0.42, 0.44, 0.47)),
    angle=0.0,
    scale=1.0,
    shift=(0.0, 0.0),
    blur=0.0,
    noise=0.0,
    texture_seed=0,
)


def _label(canvas: np.ndarray, text: str, x: int, y: int, scale: float) -> None:
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)


def _sheet(
    cells: list[list[np.ndarray]], size: int, row_labels: list[str] | None = None, col_labels: list[str] | None = None
) -> np.ndarray:
    """Tile ``cells`` (rows of images), with a margin of labels on the left and top when given."""
    rows, cols = len(cells), len(cells[0])
    margin = MARGIN if row_labels or col_labels else 0
    canvas = np.full((margin + rows * size, margin + cols * size, 3), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            canvas[margin + r * size : margin + (r + 1) * size, margin + c * size : margin + (c + 1) * size] = image
    for r, text in enumerate(row_labels or []):
        _label(canvas, text, 2, margin + r * size + size // 2 + 4, 0.4)
    for c, text in enumerate(col_labels or []):
        _label(canvas, text, margin + c * size + size // 2 - 4 * len(text), margin - 9, 0.4)
    return canvas


def expression_sheet(settings: SynthSettings, subject: int = 1) -> np.ndarray:
    """Rows: the preset's expressions at intensity 4 (neutral at 0); columns: its yaws (or pose classes)."""
    preset = settings.preset
    yaws = settings.pose_angles()
    head = head_for(settings.seed, subject, settings.size)
    cells = []
    for expression in preset.expressions:
        intensity = 0 if expression == NEUTRAL else 4
        spec = SampleSpec(subject, expression, intensity, 0, 0, 0.0, 0.0, 0)
        act = sample_activations(spec, settings.seed)
        cells.append([render_head(head, act, yaw, 0.0, STUDIO, settings.size).image for yaw in yaws])
    return _sheet(cells, settings.size, list(preset.expressions), [format_angle(y) for y in yaws])


def identity_sheet(settings: SynthSettings, rows: int = 4, cols: int = 8) -> np.ndarray:
    """``rows`` x ``cols`` different subjects (S1, S2, ... row by row), each with one expression at
    intensity 4 at one of the yaws, in its own dataset scene."""
    preset = settings.preset
    yaws = settings.pose_angles()
    expressions = list(preset.expressions)
    cells = []
    for r in range(rows):
        row = []
        for c in range(cols):
            k = r * cols + c
            expression = expressions[k % len(expressions)]
            view = (k * 5 + r) % len(yaws)
            spec = SampleSpec(k + 1, expression, 0 if expression == NEUTRAL else 4, 0, view, yaws[view], 0.0, view)
            row.append(render_sample(spec, settings.seed, settings.size))
        cells.append(row)
    return _sheet(cells, settings.size)


def write_previews(path: str | Path, settings: SynthSettings) -> list[Path]:
    """Write the expression sheet to ``path`` and the identity sheet next to it (``*_identities.png``)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    second = path.with_name(path.stem + "_identities.png")
    written = []
    for target, sheet in ((path, expression_sheet(settings)), (second, identity_sheet(settings))):
        ok, buffer = cv2.imencode(".png", sheet[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
        target.write_bytes(buffer.tobytes())
        written.append(target)
    return written
