"""Generation settings: checked once, recorded in ``synth.json`` next to the images.

:func:`resolve_settings` turns what a user gives (``None`` for the preset's default) into
:class:`SynthSettings`, with one-line errors that name the option; :func:`read_settings` reads them
back from a folder written by ``phanet synth``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phanet.checks import shorten
from phanet.errors import PhanetError
from phanet.files import parse_json, read_limited
from phanet.synth.presets import MAX_PITCH, MAX_YAW, PRESETS, Preset

#: Written next to the images; records how they were made (and lets a run resume).
SETTINGS_FILE = "synth.json"
#: Bumped whenever the renderer changes the pixels it makes for the same settings.
GENERATOR_VERSION = 9
MIN_SIZE = 32
MAX_SIZE = 1024


@dataclass(frozen=True)
class SynthSettings:
    """Validated generation settings."""

    preset: Preset
    subjects: int
    size: int
    seed: int
    #: The pose classes (yaw angles) of a continuous preset; None: the preset's yaws.
    poses: tuple[float, ...] | None = None

    def pose_angles(self) -> tuple[float, ...]:
        return self.poses or self.preset.yaws

    def to_json(self) -> dict[str, Any]:
        return {
            "generator": "phanet synth",
            "version": GENERATOR_VERSION,
            "preset": self.preset.name,
            "subjects": self.subjects,
            "size": self.size,
            "seed": self.seed,
            "poses": list(self.poses) if self.poses else None,
            "yaw_range": list(self.preset.yaw_range),
            "pitch_range": list(self.preset.pitch_range),
        }


def _angle_range(value: Sequence[float], limit: float, name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise PhanetError(f"{name}: expected two angles MIN,MAX in degrees, got {value!r}") from None
    if not -limit <= low <= high <= limit:
        raise PhanetError(f"{name}: expected MIN <= MAX within [-{limit:g}, {limit:g}] degrees, got {low:g}, {high:g}")
    return low, high


#: Subjects one dataset renders at most: 10,000 bu3dfe subjects are 2.25 million images.
MAX_SUBJECTS = 10_000


def resolve_settings(
    preset: str | None = None,
    subjects: int | None = None,
    size: int | None = None,
    seed: int | None = None,
    poses: Sequence[float] | None = None,
    yaw_range: Sequence[float] | None = None,
    pitch_range: Sequence[float] | None = None,
    prefix: str = "data.options.",
) -> SynthSettings:
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
        raise PhanetError(f"{opt('subjects')}: expected a whole number of subjects >= 1, got {shorten(repr(subjects))}")
    if count > MAX_SUBJECTS:
        raise PhanetError(f"{opt('subjects')}: at most {MAX_SUBJECTS:,} subjects, got {count:,}")
    pixels = 112 if size is None else size
    if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or not MIN_SIZE <= pixels <= MAX_SIZE:
        raise PhanetError(f"{opt('size')}: expected an image size in pixels from {MIN_SIZE} to {MAX_SIZE}, got {size!r}")
    value = 0 if seed is None else seed
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise PhanetError(f"{opt('seed')}: expected a whole number >= 0, got {seed!r}")
    angles = _pose_angles(poses, chosen, opt("poses")) if poses is not None else None
    if yaw_range is not None:
        if not chosen.continuous:
            raise PhanetError(
                f"{opt('yaw_range')}: only continuous presets (continuous, affectnet) draw yaw; {name!r} has fixed yaws"
            )
        chosen = dataclasses.replace(chosen, yaw_range=_angle_range(yaw_range, MAX_YAW, opt("yaw_range")))
    if pitch_range is not None:
        chosen = dataclasses.replace(chosen, pitch_range=_angle_range(pitch_range, MAX_PITCH, opt("pitch_range")))
    return SynthSettings(chosen, int(count), int(pixels), int(value), angles)


def _pose_angles(poses: Sequence[float], preset: Preset, option: str) -> tuple[float, ...]:
    """The pose classes of a continuous preset: distinct angles within [-90, 90], sorted."""
    if not preset.continuous:
        raise PhanetError(
            f"{option}: only continuous presets (continuous, affectnet) take pose classes; {preset.name!r} has fixed yaws"
        )
    try:
        angles = tuple(sorted(float(b) for b in poses))
    except (TypeError, ValueError):
        raise PhanetError(f"{option}: expected a list of angles in degrees, got {poses!r}") from None
    if not angles or len(set(angles)) != len(angles) or not all(abs(b) <= MAX_YAW for b in angles):  # NaN is in no range
        raise PhanetError(f"{option}: expected distinct angles within [-90, 90], got {shorten(repr(poses))}")
    return angles


#: Largest synth.json read (it holds a few settings).
MAX_SETTINGS_BYTES = 1_000_000


def read_settings(folder: Path) -> dict[str, Any]:
    """The settings ``phanet synth`` recorded in ``folder`` (its ``synth.json``), under their current names."""
    path = folder / SETTINGS_FILE
    try:
        values = parse_json(read_limited(path, MAX_SETTINGS_BYTES, "settings file"))
    except FileNotFoundError:
        raise PhanetError(f"data.root: {folder} has no {SETTINGS_FILE} (not a folder written by `phanet synth`)") from None
    except (OSError, ValueError, PhanetError) as exc:
        raise PhanetError(f"{path}: not a readable settings file ({shorten(exc, 200)})") from None
    if not isinstance(values, dict) or values.get("generator") != "phanet synth":
        raise PhanetError(f"{path}: not a `phanet synth` settings file")
    if "bins" in values:  # the name of the pose classes in folders written before version 3
        values["poses"] = values.pop("bins")
    return values
