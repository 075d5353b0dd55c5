"""``synth``: the built-in rendered dataset (:mod:`phanet.synth`) as :class:`LabeledFaces`.

``load_dataset("synth", DIR)`` reads a folder written by ``phanet synth``; ``load_dataset("synth", None,
preset=...)`` is a :class:`SynthFaces`, which renders sample ``i`` when :meth:`SynthFaces.load_image`
is called, with exactly the pixels ``phanet synth`` writes for the same preset, seed and size.
:func:`landmark_table` gives where the eyes, brows, nose tip and mouth are in every image of either,
the ground truth for the regions the attention squares pick (:mod:`phanet.reports.coverage`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phanet.data.manifest import load_manifest
from phanet.data.records import LabeledFaces
from phanet.data.registry import register_dataset
from phanet.errors import PhanetError
from phanet.synth.generate import to_sample
from phanet.synth.landmarks import LANDMARK_COLUMNS, rendered_landmarks
from phanet.synth.presets import PRESETS, SampleSpec, sample_specs
from phanet.synth.settings import GENERATOR_VERSION, SETTINGS_FILE, SynthSettings, read_settings, resolve_settings
from phanet.text import plural


@dataclass
class SynthFaces(LabeledFaces):
    """Streaming :class:`LabeledFaces`: :meth:`load_image` renders the sample instead of reading a file."""

    seed: int = 0
    size: int = 112
    specs: dict[str, SampleSpec] = field(default_factory=dict, repr=False)

    def load_image(self, index: int) -> np.ndarray:
        from phanet.synth.synthesize import render_sample

        return render_sample(self.specs[self.samples[index].path], self.seed, self.size)

    def source(self, index: int) -> tuple[str, str | None]:
        """Rendered pixels depend on the generator version, the seed, the size and the sample only."""
        return f"synth-v{GENERATOR_VERSION}-seed{self.seed}-{self.size}px/{self.samples[index].path}", None

    def spec(self, index: int) -> SampleSpec:
        return self.specs[self.samples[index].path]


def streaming_faces(settings: SynthSettings) -> SynthFaces:
    """All samples of ``settings`` as a :class:`SynthFaces` that renders on demand."""
    preset = settings.preset
    specs = sample_specs(preset, settings.subjects, settings.seed, settings.poses)
    return SynthFaces(
        name=f"synth-{preset.name}",
        expressions=list(preset.expressions),
        poses=preset.pose_names(settings.poses),
        samples=[to_sample(s, preset) for s in specs],
        root=None,
        seed=settings.seed,
        size=settings.size,
        specs={s.path: s for s in specs},
    )


def folder_faces(folder: Path, **given: Any) -> LabeledFaces:
    """The dataset ``phanet synth`` wrote to ``folder``; options given must match the recorded ones."""
    if not folder.is_dir():
        raise PhanetError(
            f"data.root: {folder} is not a folder (generate one with `phanet synth --out {folder}`, "
            "or leave data.root empty to render on the fly)"
        )
    if not (folder / "manifest.csv").is_file():
        raise PhanetError(f"data.root: {folder} has no manifest.csv (generate one with `phanet synth --out {folder}`)")
    recorded = read_settings(folder)
    for key, value in given.items():
        if value is None:
            continue
        have = recorded.get(key)
        want = value
        if key == "poses":
            want = sorted(float(b) for b in value)
        elif key.endswith("_range"):
            want = [float(v) for v in value]
        if want != have:
            raise PhanetError(
                f"data.options.{key}: {folder} was generated with {key}={have!r}, got {value!r} "
                "(omit the option to use the folder as it is)"
            )
    settings = resolve_settings(
        recorded.get("preset"),
        recorded.get("subjects"),
        recorded.get("size"),
        recorded.get("seed"),
        recorded.get("poses"),
        prefix=f"{folder / SETTINGS_FILE}: ",
    )
    faces = load_manifest(
        str(folder), expressions=list(settings.preset.expressions), poses=settings.preset.pose_names(settings.poses)
    )
    faces.name = f"synth-{settings.preset.name}"
    return faces


@register_dataset("synth", "built-in rendered multi-view faces: streamed (no root) or a `phanet synth` folder")
def load_synth(
    root: str | None,
    preset: str | None = None,
    subjects: int | None = None,
    size: int | None = None,
    seed: int | None = None,
    poses: Sequence[float] | None = None,
    yaw_range: Sequence[float] | None = None,
    pitch_range: Sequence[float] | None = None,
) -> LabeledFaces:
    """The synthetic dataset.

    With ``root`` a folder written by ``phanet synth``, its files (options, when given, must match how
    it was generated). With ``root`` None, a :class:`SynthFaces` that renders each image when it is
    loaded: ``preset`` (default ``bu3dfe``; see :data:`~phanet.synth.presets.PRESETS`), the first ``subjects`` subjects
    (default: the preset's count), ``size`` pixels (default 112), ``seed`` (default 0), and for the
    continuous presets the pose classes ``poses`` (angles; default the preset's yaws) and ``yaw_range`` (MIN, MAX
    degrees within [-90, 90]); ``pitch_range`` (within [-30, 30]) for any preset.
    """
    if root:
        return folder_faces(
            Path(root),
            preset=preset,
            subjects=subjects,
            size=size,
            seed=seed,
            poses=poses,
            yaw_range=yaw_range,
            pitch_range=pitch_range,
        )
    return streaming_faces(resolve_settings(preset, subjects, size, seed, poses, yaw_range, pitch_range))


def landmark_table(faces: LabeledFaces, progress: bool = False) -> pd.DataFrame:
    """One row per sample of ``faces``, in order: ``path`` and :data:`~phanet.synth.landmarks.LANDMARK_COLUMNS`.

    For the streamed dataset (:class:`SynthFaces`) the landmarks are rendered (about as long as
    rendering the images); for a dataset read from a folder they are read from its ``manifest.csv``,
    or rendered from its ``synth.json`` when the manifest was written before it had landmark columns.
    """
    paths = [s.path for s in faces.samples]
    if isinstance(faces, SynthFaces):
        rows = rendered_landmarks([faces.specs[p] for p in paths], faces.seed, faces.size, progress)
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
    settings = resolve_settings(
        recorded.get("preset"),
        recorded.get("subjects"),
        recorded.get("size"),
        recorded.get("seed"),
        recorded.get("poses"),
        yaw_range,
        recorded.get("pitch_range"),
        prefix=f"{folder / SETTINGS_FILE}: ",
    )
    specs = streaming_faces(settings).specs
    missing = [p for p in paths if p not in specs]
    if missing:
        raise PhanetError(f"{folder}: {missing[0]} is not an image of its {SETTINGS_FILE} settings")
    rows = rendered_landmarks([specs[p] for p in paths], settings.seed, settings.size, progress)
    return pd.DataFrame({"path": paths}).join(pd.DataFrame(rows, columns=list(LANDMARK_COLUMNS)))
