"""Dataset presets (class lists, yaw angles, intensities, counts) and the list of samples each one makes.

=============  ===================================  ==========================================  ========
preset         expressions                          poses                                       subjects
=============  ===================================  ==========================================  ========
``bu3dfe``     AN DI FE HA NE SA SU, 4 intensities  yaws -90 -60 -45 -30 0 30 45 60 90          100
``kdef``       AN DI FE HA NE SA SU, 2 takes        yaws -90 -45 0 45 90                        70
``multipie``   DI NE SC SM SQ SU                    yaws -30 -15 0 15 30                        270
``continuous`` as bu3dfe                            yaw uniform in [-90, 90], pitch in [-15, 15] 100
``affectnet``  AN CO DI FE HA NE SA SU              yaw uniform in [-45, 45], pitch in [-20, 20] 100
=============  ===================================  ==========================================  ========

Neutral is always intensity 0 and rendered once per pose; the other expressions once per intensity.
The continuous presets draw yaw and pitch for every image and give it the nearest
pose class (``poses``, default the preset's yaws); the manifest keeps the exact angles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phanet.synth.expressions import EXPRESSIONS
from phanet.text import format_angle

#: Stable numbering of expression codes for random streams (never reorder; append new codes).
EXPRESSION_IDS = {code: i for i, code in enumerate(EXPRESSIONS)}
NEUTRAL = "NE"
#: Largest yaw and pitch (degrees) the renderer accepts.
MAX_YAW = 90.0
MAX_PITCH = 30.0


@dataclass(frozen=True)
class Preset:
    """What a preset generates. Angles in degrees; see the module table."""

    name: str
    description: str
    expressions: tuple[str, ...]
    yaws: tuple[float, ...]
    intensities: tuple[int, ...]
    subjects: int
    takes: int = 1
    views: int = 0
    yaw_range: tuple[float, float] = (-90.0, 90.0)
    pitch_range: tuple[float, float] = (-5.0, 5.0)

    @property
    def continuous(self) -> bool:
        """True when yaw is drawn per image (``views`` images per expression and intensity)."""
        return self.views > 0

    def pose_names(self, bins: tuple[float, ...] | None = None) -> list[str]:
        return [format_angle(p) for p in (bins or self.yaws)]


BU3DFE_YAWS = (-90.0, -60.0, -45.0, -30.0, 0.0, 30.0, 45.0, 60.0, 90.0)
BASIC = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")

PRESETS: dict[str, Preset] = {
    "bu3dfe": Preset(
        "bu3dfe", "BU-3DFE-like: 7 expressions x 4 intensities, 9 yaws", BASIC, BU3DFE_YAWS, (1, 2, 3, 4), subjects=100
    ),
    "kdef": Preset(
        "kdef",
        "KDEF-like: 7 expressions at full intensity, 2 takes, 5 yaws",
        BASIC,
        (-90.0, -45.0, 0.0, 45.0, 90.0),
        (4,),
        subjects=70,
        takes=2,
    ),
    "multipie": Preset(
        "multipie",
        "Multi-PIE-like: 6 expressions, 5 yaws from -30 to 30",
        ("DI", "NE", "SC", "SM", "SQ", "SU"),
        (-30.0, -15.0, 0.0, 15.0, 30.0),
        (4,),
        subjects=270,
    ),
    "continuous": Preset(
        "continuous",
        "continuous pose: bu3dfe classes, yaw in [-90, 90], pitch in [-15, 15]",
        BASIC,
        BU3DFE_YAWS,
        (1, 2, 3, 4),
        subjects=100,
        views=9,
        pitch_range=(-15.0, 15.0),
    ),
    "affectnet": Preset(
        "affectnet",
        "AffectNet classes with contempt, yaw in [-45, 45], pitch in [-20, 20]",
        ("AN", "CO", "DI", "FE", "HA", "NE", "SA", "SU"),
        (-45.0, -30.0, -15.0, 0.0, 15.0, 30.0, 45.0),
        (1, 2, 3, 4),
        subjects=100,
        views=3,
        yaw_range=(-45.0, 45.0),
        pitch_range=(-20.0, 20.0),
    ),
}


@dataclass(frozen=True)
class SampleSpec:
    """One image to render: everything that decides its pixels, given the dataset seed and size."""

    subject: int
    expression: str
    intensity: int
    take: int
    view: int
    yaw: float
    pitch: float
    pose: int
    continuous: bool = False

    @property
    def subject_id(self) -> str:
        return subject_id(self.subject)

    @property
    def path(self) -> str:
        """File path relative to the dataset folder."""
        tag = f"v{self.view + 1:02d}" if self.continuous else "y" + ("+" if self.yaw > 0 else "") + format_angle(self.yaw)
        take = f"_t{self.take + 1}" if self.take else ""
        return f"{self.subject_id}/{self.subject_id}_{self.expression}{self.intensity}_{tag}{take}.png"

    def key(self, seed: int) -> list[int]:
        """Entropy for this image's random choices: from the seed and the sample alone, never from order."""
        return [
            int(seed),
            self.subject,
            EXPRESSION_IDS[self.expression],
            self.intensity,
            self.take,
            self.view,
            int(self.continuous),
        ]


def subject_id(subject: int) -> str:
    return f"S{subject:04d}"


def nearest_bin(angle: float, bins: tuple[float, ...]) -> int:
    return int(np.argmin([abs(angle - b) for b in bins]))


def sample_specs(preset: Preset, subjects: int, seed: int, bins: tuple[float, ...] | None = None) -> list[SampleSpec]:
    """Every image of ``preset`` for subjects 1..``subjects``, in manifest order."""
    bins = tuple(bins) if bins else preset.yaws
    specs = []
    for subject in range(1, subjects + 1):
        for expression in preset.expressions:
            levels = (0,) if expression == NEUTRAL else preset.intensities
            for intensity in levels:
                for take in range(preset.takes):
                    if preset.continuous:
                        for view in range(preset.views):
                            probe = SampleSpec(subject, expression, intensity, take, view, 0.0, 0.0, 0, True)
                            rng = np.random.default_rng(probe.key(seed) + [0xA0])
                            yaw = round(float(rng.uniform(*preset.yaw_range)), 2)
                            pitch = round(float(rng.uniform(*preset.pitch_range)), 2)
                            specs.append(
                                SampleSpec(
                                    subject,
                                    expression,
                                    intensity,
                                    take,
                                    view,
                                    yaw,
                                    pitch,
                                    nearest_bin(yaw, bins),
                                    continuous=True,
                                )
                            )
                    else:
                        for view, yaw in enumerate(preset.yaws):
                            probe = SampleSpec(subject, expression, intensity, take, view, yaw, 0.0, view)
                            rng = np.random.default_rng(probe.key(seed) + [0xA0])
                            pitch = round(float(rng.uniform(*preset.pitch_range)), 2)
                            specs.append(SampleSpec(subject, expression, intensity, take, view, yaw, pitch, view))
    return specs
