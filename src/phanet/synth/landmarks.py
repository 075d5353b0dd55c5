"""Where the facial parts are in each image of the built-in dataset: ground truth for the attended regions.

The renderer projects named points of the 3D head (:data:`LANDMARKS`) with the same camera and
crop as the pixels (:func:`~phanet.synth.render.render_head`). ``manifest.csv`` of a folder
written by ``phanet synth`` carries three columns per point, after the common manifest columns:

- ``lm_<name>_x``, ``lm_<name>_y``: the point in normalised coordinates of the saved image, x to the
  right and y down, 0 and 1 at the image borders (the convention of the attention squares
  ``s2_x, s2_y, s2_l`` of :mod:`phanet.results`, so the two compare directly);
- ``lm_<name>_vis``: 1 where the point is visible, 0 where the head itself hides it (the far eye at
  ±90°) or it lies outside the image.

Names: ``left_eye``, ``right_eye`` (pupils), ``left_brow``, ``right_brow`` (brow centres), ``nose``
(nose tip), ``mouth`` (middle of the mouth line, midway between the lips when they part),
``mouth_left``, ``mouth_right`` (mouth corners). Left and right are the **subject's own** sides: in a
frontal image the left eye is on the viewer's right (larger x), and at yaw +90° (the subject's right
cheek towards the camera) the left eye is hidden.

:func:`phanet.data.adapters.synth.landmark_table` gives them for every image of a dataset, streamed or
read from a folder.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from phanet.synth.head import LANDMARKS
from phanet.synth.presets import SampleSpec

__all__ = ["LANDMARKS", "LANDMARK_COLUMNS", "landmark_columns", "landmark_record", "rendered_landmarks"]

#: Decimals of the coordinates in the manifest (1e-5 of the image side).
DECIMALS = 5


def landmark_columns(name: str) -> tuple[str, str, str]:
    """The x, y and visibility columns of landmark ``name``."""
    return f"lm_{name}_x", f"lm_{name}_y", f"lm_{name}_vis"


#: Landmark columns of the manifest, in order.
LANDMARK_COLUMNS = tuple(column for name in LANDMARKS for column in landmark_columns(name))


def landmark_record(landmarks: np.ndarray) -> dict[str, float | int]:
    """Manifest values of one image's landmarks ((len(LANDMARKS), 3) array of x, y, visible)."""
    record: dict[str, float | int] = {}
    for name, (x, y, visible) in zip(LANDMARKS, np.asarray(landmarks, float), strict=True):
        cx, cy, cv = landmark_columns(name)
        record[cx], record[cy], record[cv] = round(float(x), DECIMALS), round(float(y), DECIMALS), int(visible > 0)
    return record


def rendered_landmarks(specs: list[SampleSpec], seed: int, size: int, progress: bool = False) -> list[dict[str, float | int]]:
    """Manifest values (:func:`landmark_record`) of the landmarks of ``specs``, rendered with ``seed`` at ``size``."""
    from phanet.synth.synthesize import render_spec

    return [
        landmark_record(render_spec(spec, seed, size).landmarks)
        for spec in tqdm(specs, desc="landmarks", unit="img", disable=not progress, leave=False)
    ]
