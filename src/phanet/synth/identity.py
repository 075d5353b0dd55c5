"""Identities: the shape, colouring and accessories of one synthetic person.

An :class:`Identity` is drawn from ``(seed, subject)`` alone, so subject 7 of seed 0 is the same person
whatever else is generated. Shape parameters are physical measurements in millimetres (or degrees,
or unit-free scales), each drawn from a clipped normal distribution around an adult average; a
latent "masculinity" value correlates a few of them (jaw, brow ridge, nose size, beard) the way they
co-vary in people, without deciding any of them.

Identity variation is kept smaller than what the action units move at full intensity (brow height
varies by about 2 mm, a brow raise lifts the brows by 7 mm; eye openness by 0.5 mm, an upper-lid
raise opens the eye by 3.5 mm), so that a person's neutral face never reads as an expression, while
intensity 1 (a quarter of full) stays within the range of identity variation and is hard to see.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

#: Shape parameters: name -> (mean, standard deviation, meaning). Lengths in mm, angles in degrees.
SHAPE_PARAMETERS: dict[str, tuple[float, float, str]] = {
    "head_width": (74.0, 3.5, "half breadth of the cranium"),
    "head_height": (122.0, 5.0, "crown height above the eye line"),
    "head_length": (100.0, 4.5, "back of the head behind the ear line"),
    "forehead_slope": (0.0, 1.0, "backward slope of the forehead (unit-free)"),
    "face_length": (109.0, 5.0, "chin bottom below the eye line"),
    "face_width": (66.0, 3.0, "half width of the face at the cheekbones"),
    "jaw_width": (53.0, 3.5, "half width of the jaw at its angles"),
    "chin_width": (17.0, 2.5, "half width of the chin"),
    "chin_protrusion": (0.0, 3.0, "chin forward of the average"),
    "cheek_fullness": (1.0, 0.25, "size of the cheek fat pads (scale)"),
    "brow_ridge": (5.0, 1.5, "brow ridge in front of the cornea"),
    "nose_length": (48.0, 3.0, "nose base below the eye line"),
    "nose_width": (17.0, 1.8, "half width of the nose wings"),
    "nose_projection": (24.0, 2.5, "nose tip in front of the cornea"),
    "nose_bridge": (0.0, 1.5, "bridge height above the average"),
    "nose_tip": (1.0, 0.15, "size of the nose tip (scale)"),
    "eye_width": (14.5, 1.0, "half width of the eye opening"),
    "eye_spacing": (31.5, 1.6, "half distance between the pupils"),
    "eye_openness": (4.6, 0.5, "half height of the eye opening"),
    "eye_tilt": (3.0, 2.5, "outer corner above the inner corner"),
    "brow_height": (19.0, 2.0, "brow above the eye line"),
    "brow_thickness": (6.5, 1.2, "brow thickness at its inner end"),
    "brow_arch": (2.0, 1.0, "brow arch height"),
    "mouth_width": (25.0, 2.0, "half width of the mouth"),
    "lip_gap": (21.0, 2.0, "mouth line below the nose base"),
    "upper_lip": (7.5, 1.3, "upper lip (red part) height"),
    "lower_lip": (9.5, 1.5, "lower lip (red part) height"),
    "lip_protrusion": (0.0, 1.5, "lips forward of the average"),
    "ear_size": (1.0, 0.08, "ear size (scale)"),
    "ear_protrusion": (22.0, 7.0, "angle of the ear away from the head"),
    "neck_width": (1.0, 0.07, "neck thickness (scale)"),
}

#: Asymmetries: name -> standard deviation (mm). Zero for :meth:`Identity.symmetric`.
ASYMMETRIES: dict[str, float] = {"eye_dy": 0.7, "brow_dy": 0.8, "nose_dx": 0.8, "mouth_dy": 0.5}

HAIR_STYLES = ("buzz", "short", "medium", "bangs", "long", "curly", "bald")

#: (r, g, b) hair colours in linear-ish albedo units: black, dark brown, brown, auburn, blond, grey.
HAIR_COLORS = (
    (0.035, 0.03, 0.028),
    (0.09, 0.06, 0.04),
    (0.2, 0.13, 0.08),
    (0.32, 0.14, 0.07),
    (0.6, 0.47, 0.3),
    (0.55, 0.54, 0.52),
)
IRIS_COLORS = ((0.22, 0.12, 0.06), (0.12, 0.07, 0.04), (0.25, 0.35, 0.45), (0.3, 0.38, 0.22), (0.4, 0.3, 0.15))
GLASSES_COLORS = ((0.04, 0.04, 0.04), (0.25, 0.14, 0.07), (0.55, 0.55, 0.58))


@dataclass(frozen=True)
class Identity:
    """One synthetic person: shape parameters (see :data:`SHAPE_PARAMETERS`), colours and accessories."""

    shape: dict[str, float]
    asymmetry: dict[str, float]
    masculinity: float
    skin: tuple[float, float, float]
    lip_color: tuple[float, float, float]
    iris: tuple[float, float, float]
    hair_color: tuple[float, float, float]
    brow_color: tuple[float, float, float]
    hair_style: str
    hair_volume: float
    hairline: float
    beard: float
    glasses: tuple[float, float, float] | None
    texture_seed: int
    mirror_texture: bool = False

    def symmetric(self) -> Identity:
        """The same person made exactly left-right symmetric (no asymmetry, no glasses, mirrored texture)."""
        return dataclasses.replace(self, asymmetry={k: 0.0 for k in self.asymmetry}, glasses=None, mirror_texture=True)


def _skin_tone(rng: np.random.Generator) -> tuple[float, float, float]:
    # Melanin from light to dark along a curve through real skin albedos, plus a red/yellow undertone.
    m = float(rng.beta(1.4, 1.6))
    light = np.array([0.86, 0.66, 0.55])
    mid = np.array([0.62, 0.42, 0.3])
    dark = np.array([0.26, 0.16, 0.11])
    base = (1 - m) ** 2 * light + 2 * m * (1 - m) * mid + m**2 * dark
    undertone = rng.normal(0.0, 0.025)
    base = base * np.array([1.0 + undertone, 1.0, 1.0 - undertone])
    return tuple(float(v) for v in np.clip(base, 0.05, 0.95))


def sample_identity(seed: int, subject: int) -> Identity:
    """The identity of ``subject`` (1-based) under ``seed``; independent of every other subject."""
    rng = np.random.default_rng([int(seed), int(subject), 0x1D])
    masculinity = float(rng.uniform(-1.0, 1.0))
    shape = {}
    for name, (mean, sd, _) in SHAPE_PARAMETERS.items():
        shape[name] = mean + sd * float(np.clip(rng.normal(), -2.2, 2.2))
    m = masculinity
    shape["jaw_width"] += 2.5 * m
    shape["brow_ridge"] += 1.2 * m
    shape["nose_projection"] += 1.2 * m
    shape["head_width"] += 1.5 * m
    shape["face_length"] += 2.5 * m
    shape["brow_thickness"] += 1.0 * m
    # Men's brows lie low on the orbital rim and flatter, women's higher above it and more arched.
    shape["brow_height"] -= 1.5 * m
    shape["brow_arch"] -= 0.4 * m
    shape["chin_width"] += 1.5 * m
    shape["neck_width"] += 0.05 * m
    shape["lip_protrusion"] -= 0.5 * m
    asymmetry = {name: sd * float(np.clip(rng.normal(), -2.0, 2.0)) for name, sd in ASYMMETRIES.items()}

    skin = _skin_tone(rng)
    lip = np.array(skin) * np.array([0.88, 0.6, 0.6]) + np.array([0.06, 0.0, 0.0]) * rng.uniform(0.3, 1.0)
    dark_skin = skin[0] < 0.45
    hair_weights = np.array([5, 4, 3, 1, 2, 1], float)
    if dark_skin:
        hair_weights = np.array([8, 3, 1, 0.1, 0.1, 0.8])
    hair_color = np.array(HAIR_COLORS[int(rng.choice(len(HAIR_COLORS), p=hair_weights / hair_weights.sum()))])
    hair_color = np.clip(hair_color * rng.uniform(0.85, 1.15), 0.02, 0.9)
    brow_color = np.minimum(hair_color * 0.75, np.array(skin) * 0.35)
    if masculinity > 0.2:
        styles = {"buzz": 3, "short": 6, "medium": 2, "bangs": 0.5, "long": 0.3, "curly": 1.2, "bald": 1.0}
    else:
        styles = {"buzz": 0.3, "short": 1.5, "medium": 3, "bangs": 2.5, "long": 4, "curly": 1.5, "bald": 0.05}
    names = list(styles)
    weights = np.array([styles[n] for n in names])
    hair_style = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    beard = 0.0
    if masculinity > 0.3:
        roll = rng.uniform()
        beard = 0.0 if roll < 0.6 else (float(rng.uniform(0.3, 0.5)) if roll < 0.85 else float(rng.uniform(0.75, 1.0)))
    glasses = None
    if rng.uniform() < 0.15:
        glasses = tuple(float(v) for v in GLASSES_COLORS[int(rng.integers(len(GLASSES_COLORS)))])
    iris = int(rng.integers(len(IRIS_COLORS)))
    return Identity(
        shape=shape,
        asymmetry=asymmetry,
        masculinity=masculinity,
        skin=skin,
        lip_color=tuple(float(v) for v in np.clip(lip, 0.03, 0.9)),
        iris=tuple(float(v) for v in np.array(IRIS_COLORS[iris]) * rng.uniform(0.8, 1.2)),
        hair_color=tuple(float(v) for v in hair_color),
        brow_color=tuple(float(v) for v in brow_color),
        hair_style=hair_style,
        hair_volume=float(rng.uniform(0.75, 1.25)),
        hairline=float(rng.normal(0.0, 5.0) - (6.0 * max(m, 0) * rng.uniform())),
        beard=beard,
        glasses=glasses,
        texture_seed=int(rng.integers(2**31 - 1)),
    )
