"""A tiny learnable image dataset written as a manifest, for fast tests of the training machinery.

Expression = the orientation of a bright bar (0°, 45°, 90°, 135°); pose = where the bar sits
(left, centre, right for yaws -30, 0, 30); subject = background colour and bar thickness.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

EXPRESSIONS = ["AN", "HA", "NE", "SU"]
POSES = ["-30", "0", "30"]


def draw(expression: int, pose: int, subject: int, size: int = 32, variant: int = 0) -> np.ndarray:
    rng = np.random.default_rng((subject, expression, pose, variant))
    background = np.array([40 + 30 * (subject % 4), 60 + 25 * (subject % 3), 90], dtype=np.uint8)
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = background
    image = np.clip(image.astype(int) + rng.integers(-12, 12, image.shape), 0, 255).astype(np.uint8)
    cx = int(size * (0.3 + 0.2 * pose))
    cy = size // 2
    angle = np.deg2rad(45 * expression)
    half = size * 0.22
    dx, dy = half * np.cos(angle), half * np.sin(angle)
    thickness = 2 + subject % 2
    cv2.line(image, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), (250, 240, 200), thickness)
    return image


def make_tiny_dataset(root: Path, subjects: int = 6, size: int = 32, variants: int = 1) -> Path:
    """Write images and ``manifest.csv`` under ``root``; returns the manifest path."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(subjects):
        for e, expression in enumerate(EXPRESSIONS):
            for p, pose in enumerate(POSES):
                for v in range(variants):
                    name = f"s{s:02d}_{expression}_{pose}_{v}.png"
                    cv2.imwrite(str(root / name), cv2.cvtColor(draw(e, p, s, size, v), cv2.COLOR_RGB2BGR))
                    rows.append({"path": name, "subject": f"s{s:02d}", "expression": expression, "pose": pose})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest
