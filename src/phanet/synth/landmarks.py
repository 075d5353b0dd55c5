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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from phanet.data.records import LabeledFaces
from phanet.errors import PhanetError
from phanet.synth.head import LANDMARKS
from phanet.synth.presets import PRESETS, SampleSpec
from phanet.text import plural

__all__ = ["LANDMARKS", "LANDMARK_COLUMNS", "landmark_columns", "landmark_record", "landmark_table"]

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


def _rendered(specs: list[SampleSpec], seed: int, size: int, progress: bool) -> list[dict[str, float | int]]:
    from phanet.synth.synthesize import render_spec

    return [landmark_record(render_spec(spec, seed, size).landmarks)
            for spec in tqdm(specs, desc="landmarks", unit="img", disable=not progress, leave=False)]


def landmark_table(faces: LabeledFaces, progress: bool = False) -> pd.DataFrame:
    """One row per sample of ``faces``, in order: ``path`` and :data:`LANDMARK_COLUMNS`.

    For the streamed dataset (:class:`~phanet.synth.dataset.SynthFaces`) the landmarks are
    rendered (about as long as rendering the images); for a dataset read from a folder they are read
    from its ``manifest.csv``, or rendered from its ``synth.json`` when the manifest was written
    before it had landmark columns.
    """
    from phanet.synth.dataset import SynthFaces, read_settings, resolve_settings, streaming_faces

    paths = [s.path for s in faces.samples]
    if isinstance(faces, SynthFaces):
        rows = _rendered([faces.specs[p] for p in paths], faces.seed, faces.size, progress)
        return pd.DataFrame({"path": paths}).join(pd.DataFrame(rows, columns=list(LANDMARK_COLUMNS)))
    if faces.root is None:
        raise PhanetError(f"{faces.name}: no landmarks (neither the built-in dataset nor a folder with a manifest)")
    folder = Path(faces.root)
    manifest = folder / "manifest.csv"
    table = pd.read_csv(manifest, dtype={"path": str}) if manifest.is_file() else pd.DataFrame(columns=["path"])
    if all(c in table.columns for c in LANDMARK_COLUMNS):
        table = table.drop_duplicates("path").set_index("path")
        missing = [p for p in paths if p not in table.index]
        if missing:
            raise PhanetError(f"{manifest}: no landmarks for {missing[0]} ({plural(len(missing), 'image')})")
        out = table.loc[paths, list(LANDMARK_COLUMNS)].reset_index()
        return out.astype({c: int for c in LANDMARK_COLUMNS if c.endswith("_vis")})
    recorded = read_settings(folder)
    preset = PRESETS.get(recorded.get("preset"))
    yaw_range = recorded.get("yaw_range") if preset is not None and preset.continuous else None
    settings = resolve_settings(recorded.get("preset"), recorded.get("subjects"), recorded.get("size"),
                                recorded.get("seed"), recorded.get("poses"), yaw_range, recorded.get("pitch_range"),
                                prefix=f"{folder / 'synth.json'}: ")
    specs = streaming_faces(settings).specs
    missing = [p for p in paths if p not in specs]
    if missing:
        raise PhanetError(f"{folder}: {missing[0]} is not an image of its synth.json settings")
    rows = _rendered([specs[p] for p in paths], settings.seed, settings.size, progress)
    return pd.DataFrame({"path": paths}).join(pd.DataFrame(rows, columns=list(LANDMARK_COLUMNS)))
