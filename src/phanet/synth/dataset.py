"""The built-in dataset as :class:`LabeledFaces`: streamed (rendered on demand) or read from a folder.

:class:`SynthFaces` renders sample ``i`` when :meth:`SynthFaces.load_image` is called, with exactly the
pixels ``phanet synth`` writes for the same preset, seed and size.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from phanet.data.records import LabeledFaces, Sample
from phanet.errors import PhanetError
from phanet.synth.presets import MAX_PITCH, MAX_YAW, PRESETS, Preset, SampleSpec, sample_specs

#: Written next to the images; records how they were made (and lets a run resume).
SETTINGS_FILE = "synth.json"
#: Bumped whenever the renderer changes the pixels it makes for the same settings.
GENERATOR_VERSION = 8
MIN_SIZE = 32
MAX_SIZE = 1024


@dataclass(frozen=True)
class SynthSettings:
    """Validated generation settings."""

    preset: Preset
    subjects: int
    size: int
    seed: int
    #: The pose classes (pan angles) of a continuous preset; None: the preset's pans.
    poses: tuple[float, ...] | None = None

    def pose_angles(self) -> tuple[float, ...]:
        return self.poses or self.preset.pans

    def to_json(self) -> dict[str, Any]:
        return {"generator": "phanet synth", "version": GENERATOR_VERSION, "preset": self.preset.name,
                "subjects": self.subjects, "size": self.size, "seed": self.seed,
                "poses": list(self.poses) if self.poses else None,
                "yaw_range": list(self.preset.yaw_range), "pitch_range": list(self.preset.pitch_range)}


def _angle_range(value: Sequence[float], limit: float, name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise PhanetError(f"{name}: expected two angles MIN,MAX in degrees, got {value!r}") from None
    if not -limit <= low <= high <= limit:
        raise PhanetError(f"{name}: expected MIN <= MAX within [-{limit:g}, {limit:g}] degrees, got {low:g}, {high:g}")
    return low, high


def resolve_settings(preset: str | None = None, subjects: int | None = None, size: int | None = None,
                     seed: int | None = None, poses: Sequence[float] | None = None,
                     yaw_range: Sequence[float] | None = None, pitch_range: Sequence[float] | None = None,
                     prefix: str = "data.options.") -> SynthSettings:
    """Check user-given settings (``None`` = the preset's default); errors name the option as ``prefix + name``
    (with dashes for command-line options, ``prefix="--"``).

    ``yaw_range`` (continuous presets only, within [-90, 90]) and ``pitch_range`` (within [-30, 30])
    replace the preset's ranges.
    """
    def opt(key: str) -> str:
        return prefix + (key.replace("_", "-") if prefix == "--" else key)

    name = "bu3dfe" if preset is None else str(preset)
    if name not in PRESETS:
        raise PhanetError(f"{opt('preset')}: unknown preset {name!r} (expected one of {', '.join(PRESETS)})")
    chosen = PRESETS[name]
    count = chosen.subjects if subjects is None else subjects
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise PhanetError(f"{opt('subjects')}: expected a whole number of subjects >= 1, got {subjects!r}")
    pixels = 112 if size is None else size
    if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or not MIN_SIZE <= pixels <= MAX_SIZE:
        raise PhanetError(f"{opt('size')}: expected an image size in pixels from {MIN_SIZE} to {MAX_SIZE}, "
                          f"got {size!r}")
    value = 0 if seed is None else seed
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise PhanetError(f"{opt('seed')}: expected a whole number >= 0, got {seed!r}")
    angles = None
    if poses is not None:
        if not chosen.continuous:
            raise PhanetError(f"{opt('poses')}: only continuous presets (continuous, affectnet) take pose classes; "
                              f"{name!r} has fixed pans")
        try:
            angles = tuple(sorted(float(b) for b in poses))
        except (TypeError, ValueError):
            raise PhanetError(f"{opt('poses')}: expected a list of angles in degrees, got {poses!r}") from None
        if not angles or len(set(angles)) != len(angles) or any(abs(b) > MAX_YAW for b in angles):
            raise PhanetError(f"{opt('poses')}: expected distinct angles within [-90, 90], got {poses!r}")
    if yaw_range is not None:
        if not chosen.continuous:
            raise PhanetError(f"{opt('yaw_range')}: only continuous presets (continuous, affectnet) draw yaw; "
                              f"{name!r} has fixed pans")
        chosen = dataclasses.replace(chosen, yaw_range=_angle_range(yaw_range, MAX_YAW, opt("yaw_range")))
    if pitch_range is not None:
        chosen = dataclasses.replace(chosen, pitch_range=_angle_range(pitch_range, MAX_PITCH, opt("pitch_range")))
    return SynthSettings(chosen, int(count), int(pixels), int(value), angles)


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


def to_sample(spec: SampleSpec, preset: Preset) -> Sample:
    return Sample(path=spec.path, subject=spec.subject_id, expression=preset.expressions.index(spec.expression),
                  pose=spec.pose, intensity=spec.intensity, yaw=float(spec.yaw), pitch=float(spec.pitch))


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


def read_settings(folder: Path) -> dict[str, Any]:
    path = folder / SETTINGS_FILE
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise PhanetError(f"data.root: {folder} has no {SETTINGS_FILE} "
                          "(not a folder written by `phanet synth`)") from None
    except (OSError, ValueError) as exc:
        raise PhanetError(f"{path}: not a readable settings file ({exc})") from None
    if not isinstance(values, dict) or values.get("generator") != "phanet synth":
        raise PhanetError(f"{path}: not a `phanet synth` settings file")
    if "bins" in values:  # the name of the pose classes in folders written before version 3
        values["poses"] = values.pop("bins")
    return values


def folder_faces(folder: Path, **given: Any) -> LabeledFaces:
    """The dataset ``phanet synth`` wrote to ``folder``; options given must match the recorded ones."""
    from phanet.data.manifest import load_manifest

    if not folder.is_dir():
        raise PhanetError(f"data.root: {folder} is not a folder (generate one with `phanet synth --out {folder}`, "
                          "or leave data.root empty to render on the fly)")
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
            raise PhanetError(f"data.options.{key}: {folder} was generated with {key}={have!r}, got {value!r} "
                              "(omit the option to use the folder as it is)")
    settings = resolve_settings(recorded.get("preset"), recorded.get("subjects"), recorded.get("size"),
                                recorded.get("seed"), recorded.get("poses"), prefix=f"{folder / SETTINGS_FILE}: ")
    faces = load_manifest(str(folder), expressions=list(settings.preset.expressions),
                          poses=settings.preset.pose_names(settings.poses))
    faces.name = f"synth-{settings.preset.name}"
    return faces
