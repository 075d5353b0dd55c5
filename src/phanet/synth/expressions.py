"""Facial expressions as combinations of FACS action units (AUs).

Each AU is a displacement field on the neutral skin (mm at full activation), plus a darkening field for
the wrinkles and folds it creates, computed once per head from its landmarks. Lid movements (AU5,
AU6, AU7, AU41) move the lid margins of the :class:`~phanet.synth.head.EyeRig`; the jaw (AU26,
AU27) rotates the lower face, teeth and tongue about the jaw joints. Every field is split into a
right and a left half (soft across the midline) so an AU can act on one side only, as in contempt
(right AU12 + AU14).

Expressions are recipes: AU -> (peak activation, onset). At intensity level k of 4 the expression
strength is s = k / 4 and an AU's activation is ``peak * clip((s - onset) / (1 - onset), 0, 1)``, so
intensity 1 is a quarter-strength hint and some AUs (teeth showing in a smile) only join at higher
levels. Intensity 0 gives every AU activation 0: the neutral face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phanet.synth import sdf
from phanet.synth.head import CORNEA_BULGE, CORNEA_Z, EYE_RADIUS, HeadModel, cornea_bulge

#: FACS action units modelled here: number -> name.
ACTION_UNITS: dict[str, str] = {
    "1": "inner brow raiser",
    "2": "outer brow raiser",
    "4": "brow lowerer",
    "5": "upper lid raiser",
    "6": "cheek raiser",
    "7": "lid tightener",
    "9": "nose wrinkler",
    "10": "upper lip raiser",
    "12": "lip corner puller",
    "14": "dimpler",
    "15": "lip corner depressor",
    "17": "chin raiser",
    "20": "lip stretcher",
    "23": "lip tightener",
    "24": "lip presser",
    "25": "lips part",
    "26": "jaw drop",
    "27": "mouth stretch",
    "41": "lid droop",
}

#: Expression recipes: code -> {AU: (peak, onset)}; an AU name prefixed with "R" acts on the right side only.
EXPRESSIONS: dict[str, dict[str, tuple[float, float]]] = {
    "NE": {},
    "HA": {"6": (1.0, 0.0), "12": (1.0, 0.0), "25": (1.0, 0.4), "26": (0.35, 0.6)},
    "SA": {"1": (1.0, 0.0), "4": (0.7, 0.0), "15": (1.0, 0.0), "17": (0.8, 0.2), "41": (0.9, 0.2)},
    "SU": {"1": (1.0, 0.0), "2": (1.0, 0.0), "5": (0.9, 0.0), "25": (1.0, 0.15), "26": (0.85, 0.2)},
    # Fear: brows raised mostly at their inner ends (AU1 over AU2) and drawn together (AU4), so flatter
    # than surprise's arch; eyes wide, lower lids tense, lips stretched sideways and parted without a
    # jaw drop (AU25 without AU26), a flat wide mouth against surprise's dropped oval.
    "FE": {
        "1": (1.0, 0.0),
        "2": (0.2, 0.0),
        "4": (0.8, 0.0),
        "5": (1.0, 0.0),
        "7": (0.5, 0.0),
        "20": (1.0, 0.0),
        "25": (0.9, 0.25),
    },
    # Anger: brows pulled down hard over the eyes (AU4 beyond the other expressions' full brow lowering,
    # which read as a frown or worry), the upper lid raised against them into a glare (AU5 strong
    # enough to lift its margin above the neutral one despite the brows), the lower lid tightened,
    # lips pressed with the chin pushed up.
    "AN": {"4": (1.6, 0.0), "5": (0.8, 0.0), "7": (1.4, 0.0), "23": (0.8, 0.0), "24": (1.0, 0.1), "17": (1.3, 0.2)},
    # Disgust: nose wrinkled hard (AU9, its hallmark), upper lip raised, lower lip pushed up; the cheeks
    # raised push the lower lids up (not tense) and the lowered brows lower the upper lids, so the eyes
    # narrow.
    "DI": {"9": (1.4, 0.0), "10": (1.3, 0.0), "17": (1.0, 0.1), "4": (0.7, 0.0), "6": (1.0, 0.0), "15": (0.4, 0.2)},
    "CO": {"R12": (0.7, 0.0), "R14": (1.0, 0.0)},
    "SM": {"6": (0.8, 0.0), "12": (1.0, 0.0), "25": (1.0, 0.3), "26": (0.2, 0.5)},
    "SQ": {"6": (1.0, 0.0), "7": (1.0, 0.0), "4": (0.4, 0.0), "41": (0.6, 0.0), "12": (0.15, 0.0)},
    "SC": {
        "4": (0.6, 0.0),
        "6": (0.8, 0.0),
        "7": (1.0, 0.0),
        "9": (0.5, 0.0),
        "10": (0.8, 0.0),
        "20": (0.7, 0.0),
        "25": (1.0, 0.0),
        "26": (1.0, 0.0),
        "27": (1.0, 0.2),
    },
}

#: Readable names of the expression codes.
EXPRESSION_NAMES = {
    "NE": "neutral",
    "HA": "happiness",
    "SA": "sadness",
    "SU": "surprise",
    "FE": "fear",
    "AN": "anger",
    "DI": "disgust",
    "CO": "contempt",
    "SM": "smile",
    "SQ": "squint",
    "SC": "scream",
}

#: Jaw rotation (degrees) at full AU26 and AU27.
JAW_DROP_DEG = 11.0
MOUTH_STRETCH_DEG = 13.0
#: The lids and the skin around them stay at least this far (mm) outside the eyeball they slide over.
LID_THICKNESS = 0.4
#: Darkening of the eyeball just below the upper lid margin by the lid and lashes, and the distance
#: (mm) over which it fades.
LID_SHADOW = 0.55
LID_SHADOW_WIDTH = 2.5
#: Darkening of the skin by the upper lashes and their shadow along the upper lid margin, and that
#: band's width (mm).
LASH_DARKENING = 0.95
LASH_WIDTH = 3.0


@dataclass
class ActionField:
    """Sparse displacement (mm) and darkening of one AU on one side at activation 1."""

    vertices: np.ndarray
    displacement: np.ndarray
    darkening: np.ndarray


#: AU name -> (right side, left side) activation.
Activations = dict[str, tuple[float, float]]


def activations(expression: str, intensity: float, style: dict[str, float] | None = None) -> Activations:
    """AU activations (right, left) of ``expression`` at ``intensity`` in [0, 4], scaled by a personal ``style``."""
    if expression not in EXPRESSIONS:
        raise KeyError(expression)
    s = float(np.clip(intensity / 4.0, 0.0, 1.0))
    out: Activations = {}
    for name, (peak, onset) in EXPRESSIONS[expression].items():
        right_only = name.startswith("R")
        au = name[1:] if right_only else name
        value = peak * float(np.clip((s - onset) / (1.0 - onset), 0.0, 1.0))
        if style:
            value *= style.get(au, 1.0)
        right, left = out.get(au, (0.0, 0.0))
        out[au] = (right + value, left + (0.0 if right_only else value))
    return out


def personal_style(rng: np.random.Generator) -> dict[str, float]:
    """How strongly one person moves each AU (a gain around 1)."""
    return {au: float(np.clip(np.exp(rng.normal(0.0, 0.18)), 0.7, 1.4)) for au in ACTION_UNITS}


# ---------------------------------------------------------------------------------------------------
# Fields


def _gauss(x, y, cx, cy, sx, sy):
    return np.exp(-(((x - cx) / sx) ** 2) - ((y - cy) / sy) ** 2)


def _gauss_split(x, y, cx, cy, sx, sy_below, sy_above):
    sy = np.where(y < cy, sy_below, sy_above)
    return np.exp(-(((x - cx) / sx) ** 2) - ((y - cy) / sy) ** 2)


def _lines(coord, period, phase=0.0, sharp=6):
    return (0.5 + 0.5 * np.cos(2 * np.pi * (coord - phase) / period)) ** sharp


def _segment_distance(x, y, a, b):
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(x - ax - t * dx, y - ay - t * dy)


def build_action_fields(head: HeadModel) -> dict[tuple[str, int], ActionField]:
    """Fields of every AU for ``head``, keyed by (AU, side) with side 0 = right (x < 0), 1 = left."""
    lay = head.layout
    n = head.skin_count
    v = head.vertices[:n]
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    lip = head.lip_side[:n]
    front = sdf.smoothstep(15.0, 45.0, z)
    my, mw = lay.mouth_y, lay.mouth_width
    fields: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def put(au, d, dark=None):
        d = d * front[:, None]
        dk = np.zeros(n) if dark is None else dark * front
        if au in fields:
            d0, k0 = fields[au]
            d, dk = d0 + d, k0 + dk
        fields[au] = (d, dk)

    def vec(dx=0.0, dy=0.0, dz=0.0):
        return np.stack(
            np.broadcast_arrays(
                np.asarray(dx, float) * np.ones(n), np.asarray(dy, float) * np.ones(n), np.asarray(dz, float) * np.ones(n)
            ),
            -1,
        )

    brow_mid = 0.5 * (lay.brow_y[0] + lay.brow_y[1])
    for i in (0, 1):
        sg = -1.0 if i == 0 else 1.0
        ex, ey, by = abs(lay.eye_x[i]), lay.eye_y[i], lay.brow_y[i]
        # AU1: inner brow up, the inner forehead follows, horizontal wrinkles in the middle of the forehead.
        w = _gauss_split(x, y, sg * (ex - 9.0), by, 14.0, 9.0, 32.0) * (sg * x > -4.0)
        wr = _lines(y, 8.0, by + 14.0) * _gauss(x, y, sg * 10.0, by + 24.0, 16.0, 14.0)
        put("1", vec(dy=6.5 * w, dz=0.5 * w), 0.28 * wr)
        # AU2: outer brow up.
        w = _gauss_split(x, y, sg * (ex + 9.0), by + 1.0, 13.0, 8.0, 26.0)
        wr = _lines(y, 8.0, by + 14.0) * _gauss(x, y, sg * (ex + 6.0), by + 22.0, 14.0, 12.0)
        put("2", vec(dy=6.5 * w, dz=0.3 * w), 0.25 * wr)
        # AU4: brows down and together; vertical furrows and a bulge between them.
        w = _gauss_split(x, y, sg * (ex - 5.0), by, 16.0, 11.0, 18.0)
        furrow = _gauss(x, y, sg * 7.0, by - 2.0, 1.8, 8.0) * (y < by + 10.0)
        # The skin squeezed between the brows shades the glabella even where the furrows are too fine to see.
        knot = _gauss(x, y, sg * 6.0, by - 4.0, 4.5, 7.0)
        bulge = _gauss(x, y, 0.0, by - 6.0, 9.0, 9.0)
        put("4", vec(dx=-sg * 5.0 * w, dy=-7.5 * w, dz=2.0 * w + 0.8 * bulge), 0.6 * furrow + 0.2 * knot)
        # AU6: cheeks up and forward, lower-lid skin bunches into a bulge, crow's feet at the outer eye
        # corner (the lid margins narrow the eye from below in the eye rig).
        w = _gauss(x, y, sg * (ex + 3.0), ey - 17.0, 17.0, 11.0)
        bag = _gauss(x, y, sg * ex, ey - 8.5, 9.0, 3.0)
        crow = _lines(y - 0.4 * (sg * x), 3.5) * _gauss(x, y, sg * (ex + lay.eye_width + 6.0), ey - 1.0, 4.5, 8.0)
        put("6", vec(dy=4.5 * w + 1.0 * bag, dz=3.0 * w + 1.8 * bag), 0.55 * crow + 0.2 * bag)
        # AU7: lower lid skin tightens up and bulges (the margins move in the eye rig).
        w = _gauss(x, y, sg * ex, ey - 7.5, 11.0, 3.5)
        put("7", vec(dy=1.2 * w, dz=1.2 * w), 0.12 * w)
        # AU12: lip corners pulled up and back towards the cheekbone, the more the nearer the corner, so
        # the lower lip curves up; the upper lip is drawn up more evenly, baring the upper teeth when the
        # lips part; the cheek above rises and bulges; the nasolabial fold deepens.
        lateral = np.where(sg * x > mw, np.exp(-(((sg * x - mw) / 12.0) ** 2)), 1.0)
        reach = np.clip(sg * x / mw, 0.0, 1.0)
        # The even lift of the upper lip fades out towards the far corner, where the lips meet the cheek
        # (beyond it the skin above and below the mouth line moves alike, with no step between them).
        even = 0.25 * np.clip(1.0 + sg * x / mw, 0.0, 1.0)
        curve = np.where(lip > 0, even + 0.75 * reach**1.5, reach**2) * lateral * np.exp(-(((y - my) / 12.0) ** 2))
        cheek = _gauss(x, y, sg * (mw + 9.0), my + 19.0, 15.0, 12.0)
        ala = (sg * (lay.nose_width + 2.0), lay.nose_base_y + 4.0)
        fold = np.exp(-((_segment_distance(x, y, ala, (sg * (mw + 7.0), my - 8.0)) / 2.0) ** 2)) * (sg * x > 0)
        put("12", vec(dx=sg * 4.5 * curve, dy=9.5 * curve + 4.0 * cheek, dz=-2.5 * curve + 5.5 * cheek - 1.0 * fold), 0.6 * fold)
        # AU14: corner pulled back and tightened, a dimple beside it.
        w = _gauss(x, y, sg * mw, my, 9.0, 8.0)
        dimple = _gauss(x, y, sg * (mw + 5.0), my - 1.0, 2.5, 3.5)
        put("14", vec(dx=-sg * 1.0 * w, dy=1.8 * w, dz=-3.5 * w - 1.5 * dimple), 0.4 * dimple)
        # AU15: lip corners down; lines from the corners down towards the chin.
        w = _gauss(x, y, sg * mw, my - 2.0, 13.0, 11.0)
        line = _segment_distance(x, y, (sg * (mw + 3.0), my - 4.0), (sg * (mw + 6.0), my - 22.0))
        marionette = np.exp(-((line / 2.0) ** 2))
        put("15", vec(dx=sg * 1.0 * w, dy=-7.0 * w, dz=-0.5 * w), 0.35 * marionette)
        # AU20: lips stretched sideways towards the ears, flattened against the teeth; the lower lip is
        # drawn down and back towards the corners, so parted lips open into a flat rectangle rather
        # than the oval of a relaxed jaw drop.
        w = _gauss(x, y, sg * mw, my, 16.0, 12.0)
        low = np.exp(-((x / (1.1 * mw)) ** 4) - ((y - my + 3.0) / 7.0) ** 2) * (lip < 0) * sdf.smoothstep(-4.0, 4.0, sg * x)
        put("20", vec(dx=sg * 7.5 * w, dy=-2.0 * w - 1.5 * low, dz=-2.5 * w - 1.0 * low), 0.12 * w)
        # AU27: corners pulled in as the mouth is stretched open.
        w = _gauss(x, y, sg * mw, my, 12.0, 10.0)
        put("27", vec(dx=-sg * 4.0 * w, dz=1.0 * w))
        # AU9 and AU10 side parts: nose wings up and out, the skin beside the nose (the infraorbital
        # triangle) pouches up, the upper part of the nasolabial fold deepens.
        w = _gauss(x, y, sg * (lay.nose_width - 2.0), lay.nose_base_y + 4.0, 9.0, 9.0)
        pouch = _gauss(x, y, sg * (lay.nose_width + 9.0), lay.nose_base_y + 12.0, 9.0, 8.0)
        upper_fold = fold * (y > my + 4.0)
        put("9", vec(dx=sg * 1.2 * w, dy=4.0 * w + 2.5 * pouch, dz=0.5 * w + 2.0 * pouch), 0.45 * upper_fold)
        put("10", vec(dx=sg * 0.5 * w, dy=2.5 * w + 1.5 * pouch, dz=1.0 * pouch), 0.45 * upper_fold)

    # AU9: the skin over the nose root and the sides of the bridge bunches into transverse wrinkles,
    # the inner brows come down.
    root = _gauss(x, y, 0.0, 4.0, 12.0, 10.0)
    ridges = _lines(y + 0.4 * np.abs(x), 4.0, 2.0, 4)
    # They run from the root down the sides of the bridge (the oblique lines beside the nose).
    wrinkles = ridges * _gauss(x, y, 0.0, 1.0, 13.0, 11.0) * (z > CORNEA_Z - 6.0)
    brows = _gauss_split(x, y, 0.0, brow_mid, 22.0, 10.0, 15.0)
    upper_lip = _gauss(x, y, 0.0, my + 5.0, mw * 0.9, 8.0) * (lip >= 0)
    # Fine wrinkles blur away in small images; the bunched skin between the eyes still reads as shade.
    bunch = sum(_gauss(x, y, s * 9.0, 2.0, 5.0, 7.0) for s in (-1.0, 1.0)) * (z > CORNEA_Z - 10.0)
    put("9", vec(dy=2.5 * root - 3.0 * brows + 2.0 * upper_lip, dz=0.8 * root + 0.6 * wrinkles), 0.8 * wrinkles + 0.5 * bunch)
    # AU10: upper lip raised, its centre most, which bends it into an inverted U; everted.
    arch = 0.45 + 0.55 * np.exp(-((x / (0.55 * mw)) ** 2))
    raise_w = _gauss(x, y, 0.0, my + 5.0, mw * 1.05, 9.0) * (lip >= 0) * arch
    put("10", vec(dy=6.5 * raise_w, dz=1.5 * raise_w))
    lip_w = np.exp(-((np.abs(x) / (mw * 0.85)) ** 4))
    near_seam = np.exp(-(((y - my) / 9.0) ** 2))
    # AU17: chin boss up and forward, pushing the lower lip up and out.
    chin = _gauss(x, y, 0.0, lay.chin_y + 16.0, 19.0, 14.0)
    low_lip = lip_w * np.exp(-(((y - my + 0.5 * lay.lower_lip) / 7.0) ** 2)) * (lip <= 0)
    up_lip = lip_w * np.exp(-(((y - my) / 4.0) ** 2)) * (lip > 0)
    sulcus = _gauss(x, y, 0.0, my - lay.lower_lip - 4.0, 13.0, 2.0)
    put(
        "17",
        vec(dy=3.5 * chin + 2.5 * low_lip + 1.5 * up_lip, dz=2.5 * chin + 2.5 * low_lip + 0.8 * up_lip),
        0.3 * sulcus + 0.1 * chin,
    )
    # AU23 and AU24: lips narrow and roll in / press together; skin around them bulges (AU24).
    red = lip_w * np.exp(-(((y - my) / (0.5 * (lay.upper_lip + lay.lower_lip) + 2.0)) ** 2))
    put("23", vec(dx=-0.1 * x * red, dy=-0.45 * (y - my) * red, dz=-1.8 * red))
    above = np.exp(-(((y - my - lay.upper_lip - 4.0) / 3.5) ** 2))
    below = np.exp(-(((y - my + lay.lower_lip + 4.0) / 3.5) ** 2))
    ring = lip_w * (above + below)
    pressed = lip_w * np.exp(-(((y - my) / 1.5) ** 2))
    put("24", vec(dy=-0.3 * (y - my) * red, dz=-1.5 * red + 1.8 * ring), 0.1 * ring + 0.25 * pressed)
    # AU25: lips apart at the mouth line.
    part = lip_w * near_seam
    put("25", vec(dy=np.where(lip > 0, 1.8, np.where(lip < 0, -2.2, 0.0)) * part))
    # AU27 stretches the lips vertically as well.
    put("27", vec(dy=np.where(lip > 0, 1.5, np.where(lip < 0, -1.0, 0.0)) * part))

    right = sdf.smoothstep(4.0, -4.0, x)
    out: dict[tuple[str, int], ActionField] = {}
    for au, (d, dk) in fields.items():
        for side, weight in ((0, right), (1, 1.0 - right)):
            dd = d * weight[:, None]
            kk = dk * weight
            idx = np.flatnonzero((np.abs(dd).max(1) > 0.01) | (kk > 0.005))
            out[(au, side)] = ActionField(idx, dd[idx].astype(np.float32), kk[idx].astype(np.float32))
    return out


# ---------------------------------------------------------------------------------------------------
# Applying an expression


def _side_value(act: Activations, au: str, side: int) -> float:
    return float(act.get(au, (0.0, 0.0))[side])


def deform(head: HeadModel, act: Activations) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and albedo of ``head`` wearing the AU activations ``act`` (neutral when all are 0)."""
    v = head.vertices.copy()
    albedo = head.albedo.copy()
    dark = np.zeros(len(v), np.float32)
    for (au, side), f in head.actions.items():
        a = _side_value(act, au, side)
        if a != 0.0:
            v[f.vertices] += a * f.displacement
            dark[f.vertices] += a * f.darkening
    opening = JAW_DROP_DEG * np.mean(act.get("26", (0.0, 0.0))) + MOUTH_STRETCH_DEG * np.mean(act.get("27", (0.0, 0.0)))
    jaw_angle = np.radians(opening)
    if jaw_angle:
        py, pz = head.layout.jaw_pivot
        idx = np.flatnonzero(head.jaw > 0)
        w = head.jaw[idx, None].astype(float)
        yy = v[idx, 1] - py
        zz = v[idx, 2] - pz
        c, s = np.cos(jaw_angle), np.sin(jaw_angle)
        rotated = np.stack([v[idx, 0], py + yy * c - zz * s, pz + yy * s + zz * c], -1)
        v[idx] = v[idx] + w * (rotated - v[idx])
    # Lips may press together but never pass through each other.
    upper, lower = head.seam[:, 0], head.seam[:, 1]
    crossed = v[lower, 1] > v[upper, 1]
    if crossed.any():
        mid = 0.5 * (v[upper[crossed]] + v[lower[crossed]])
        v[upper[crossed]] = mid
        v[lower[crossed]] = mid
    _open_eyes(head, v, albedo, act)
    if dark.any():
        albedo *= np.clip(1.0 - dark, 0.35, 1.0)[:, None]
    return v, albedo


def lid_margins(head: HeadModel, act: Activations, side: int) -> tuple[float, float]:
    """Upper and lower lid heights (mm above / below the corner line) of eye ``side`` under ``act``."""
    rig = head.eyes[side]

    def a(au):
        return _side_value(act, au, side)

    upper = rig.upper + 3.8 * a("5") - 2.2 * a("41") - 0.6 * a("7") - 0.8 * a("6") - 0.9 * a("4") - 0.6 * a("9")
    lower = rig.lower - 2.6 * a("6") - 2.6 * a("7") - 0.4 * a("12") - 1.6 * a("9") + 0.5 * a("5")
    upper = max(upper, -lower + 0.25)
    return upper, lower


def _keep_lids_on_eyeball(head: HeadModel, v: np.ndarray, side: int, opening: np.ndarray) -> None:
    """Move the skin vertices that the action units pushed into eye ``side``'s eyeball back onto its
    surface, :data:`LID_THICKNESS` out, except those of its ``opening`` (pushed behind it on purpose):
    lids and the skin around them slide over the eye, so neither the iris nor the sclera ever shows
    through the skin."""
    lay = head.layout
    centre = np.array([lay.eye_x[side], lay.eye_y[side], CORNEA_Z - EYE_RADIUS])
    rel = v[: head.skin_count] - centre
    # Only vertices within the largest radius the surface has (at the cornea's apex) can be inside it.
    outer = EYE_RADIUS + CORNEA_BULGE + LID_THICKNESS
    near = np.flatnonzero(np.einsum("ij,ij->i", rel, rel) < outer * outer)
    near = near[~np.isin(near, opening)]
    rel = rel[near]
    dist = np.sqrt(np.einsum("ij,ij->i", rel, rel))
    polar = np.arccos(np.clip(rel[:, 2] / np.maximum(dist, 1e-9), -1.0, 1.0))
    surface = EYE_RADIUS + cornea_bulge(polar) + LID_THICKNESS
    inside = dist < surface
    v[near[inside]] = centre + rel[inside] * (surface[inside] / dist[inside])[:, None]


def _upper_lid_shape(u: np.ndarray) -> np.ndarray:
    """Height of the upper lid margin above the corner line, as a fraction of its peak, at ``u`` (0 at
    the inner corner, 1 at the outer): it peaks a little towards the nose."""
    return np.sin(np.pi * u**0.85) ** 0.9


def _open_eyes(head: HeadModel, v: np.ndarray, albedo: np.ndarray, act: Activations) -> None:
    """Push the skin inside each eye opening behind the eyeball and draw the lash line on the lid margin."""
    for side, rig in enumerate(head.eyes):
        upper, lower = lid_margins(head, act, side)
        span = rig.outer_x - rig.inner_x
        u = (rig.x - rig.inner_x) / span
        span = abs(span)
        inside_u = (u > 0.0) & (u < 1.0)
        uc = np.clip(u, 0.0, 1.0)
        chord = rig.inner_y + (rig.outer_y - rig.inner_y) * uc
        # Upper lid peaks a little towards the nose, lower lid a little towards the ear; AU7 tightens the
        # lower lid into a straighter line.
        up_shape = _upper_lid_shape(uc)
        low_shape = np.sin(np.pi * uc**1.15) ** (1.1 - 0.7 * min(_side_value(act, "7", side), 1.0))
        top = chord + upper * up_shape
        bottom = chord - lower * low_shape
        d_top = top - rig.y
        d_bottom = rig.y - bottom
        depth = np.minimum(d_top, d_bottom)
        corner = np.minimum(uc, 1.0 - uc) * span
        depth = np.where(inside_u, np.minimum(depth, corner * 0.6), -np.abs(np.where(u <= 0, u, u - 1.0)) * span)
        push = 7.0 * sdf.smoothstep(-0.25, 0.6, depth)
        idx = rig.vertices
        v[idx] += push[:, None] * rig.inward
        _keep_lids_on_eyeball(head, v, side, idx[depth >= 0.0])
        # Lashes and their shadow make a dark band along the upper margin, thinner along the lower one.
        lash = np.exp(-(((d_top + 1.0) / LASH_WIDTH) ** 2)) * inside_u * (upper > 0.3)
        lower_margin = np.exp(-(((d_bottom + 0.4) / 0.8) ** 2)) * inside_u
        # The lid crease stays where the orbit's skin folds, whatever the lid margin does.
        crease_y = chord + (rig.upper + 3.5) * up_shape
        crease = np.exp(-(((rig.y - crease_y) / 1.0) ** 2)) * inside_u
        albedo[idx] *= np.clip(1.0 - LASH_DARKENING * lash - 0.4 * lower_margin - 0.3 * crease, 0.1, 1.0)[:, None]
        # The upper lid and its lashes also shade the eyeball, in a band below the lid margin that moves
        # with the margin: a raised lid (AU5) bares lit sclera, a lowered one shades more of the iris.
        start, stop = head.eyeballs[side]
        ue = np.clip((v[start:stop, 0] - rig.inner_x) / (rig.outer_x - rig.inner_x), 0.0, 1.0)
        margin_y = rig.inner_y + (rig.outer_y - rig.inner_y) * ue + upper * _upper_lid_shape(ue)
        below = np.clip(margin_y - v[start:stop, 1], 0.0, None)
        albedo[start:stop] *= (1.0 - LID_SHADOW * np.exp(-((below / LID_SHADOW_WIDTH) ** 2)))[:, None]
