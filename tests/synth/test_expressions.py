"""Each expression at intensity 4 changes the face where its FACS action units act, and only a little elsewhere.

Regions are boxes around the neutral render's own landmarks, sized by the distance between the
pupils; the change is the mean absolute grey-level difference from the neutral render in each box
(a symmetric head, frontal, under the plain scene's frontal light).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from phanet.synth import expressions as ex
from phanet.synth.head import LANDMARKS
from phanet.synth.render import Scene, render_head
from phanet.synth.synthesize import head_for

SIZE = 112
SUBJECTS = (1, 2)

#: expression -> (regions its action units move, regions they leave nearly alone).
FACS_REGIONS = {
    # AU6 + AU12: lip corners up and back, upper lip with them; the cheeks push the lower lids up.
    "HA": (("corners", "upper_lip", "eyes"), ("brows", "nose")),
    # AU9 + AU10 + AU17: the nose root bunches, the upper lip rises; the forehead stays.
    "DI": (("nose", "upper_lip"), ("forehead",)),
    # AU4 + AU5 + AU7 + AU23/24: brows down and together, lids; the nose and cheeks stay.
    "AN": (("brows", "eyes"), ("nose", "cheeks")),
    # AU1 + AU2 + AU4 + AU5 + AU20 + AU25: brows, lids, lips stretched sideways.
    "FE": (("brows", "eyes", "corners"), ("nose", "cheeks")),
    # AU1 + AU2 + AU5 + AU26: brows, lids and the jaw drop.
    "SU": (("brows", "eyes", "upper_lip", "chin"), ("nose", "cheeks")),
    # AU1 + AU4 + AU15 + AU17: inner brows and lip corners.
    "SA": (("brows", "corners"), ("nose", "cheeks")),
}


def regions(landmarks: np.ndarray, size: int) -> dict[str, list[tuple[int, int, int, int]]]:
    """Named boxes (x0, x1, y0, y1 in pixels) around a render's landmarks."""
    p = {n: landmarks[i, :2] * size for i, n in enumerate(LANDMARKS)}
    d = abs(p["left_eye"][0] - p["right_eye"][0])
    eye_y = 0.5 * (p["left_eye"][1] + p["right_eye"][1])
    brow_y = 0.5 * (p["left_brow"][1] + p["right_brow"][1])

    def box(cx, cy, hx, hy):
        return (
            max(int(round(cx - hx * d)), 0),
            int(round(cx + hx * d)),
            max(int(round(cy - hy * d)), 0),
            int(round(cy + hy * d)),
        )

    return {
        "forehead": [box(p["nose"][0], brow_y - 0.32 * d, 0.4, 0.08)],
        "brows": [box(*p[b], 0.3, 0.15) for b in ("left_brow", "right_brow")],
        "eyes": [box(*p[e], 0.28, 0.13) for e in ("left_eye", "right_eye")],
        "nose": [box(p["nose"][0], eye_y + 0.2 * d, 0.18, 0.28)],
        "upper_lip": [box(p["mouth"][0], p["mouth"][1] - 0.15 * d, 0.25, 0.1)],
        "corners": [box(*p[c], 0.12, 0.12) for c in ("mouth_left", "mouth_right")],
        "cheeks": [box(p[e][0] + s * 0.1 * d, eye_y + 0.5 * d, 0.18, 0.15) for e, s in (("left_eye", 1.0), ("right_eye", -1.0))],
        "chin": [box(p["mouth"][0], p["mouth"][1] + 0.45 * d, 0.25, 0.12)],
    }


@cache
def changes(subject: int) -> dict[str, dict[str, float]]:
    """Mean |grey difference| from neutral per region, per expression at intensity 4."""
    head = head_for(0, subject, SIZE, symmetric=True)
    neutral = render_head(head, ex.activations("NE", 0), 0.0, 0.0, Scene.plain(), SIZE)
    grey0 = neutral.image.astype(float).mean(2)
    boxes = regions(neutral.landmarks, SIZE)
    out = {}
    for code in FACS_REGIONS:
        grey = render_head(head, ex.activations(code, 4), 0.0, 0.0, Scene.plain(), SIZE).image.astype(float).mean(2)
        diff = np.abs(grey - grey0)
        out[code] = {name: float(np.mean([diff[y0:y1, x0:x1].mean() for x0, x1, y0, y1 in bs])) for name, bs in boxes.items()}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("expression", sorted(FACS_REGIONS))
def test_expression_changes_the_regions_its_action_units_move(expression, subject):
    change = changes(subject)[expression]
    moved, still = FACS_REGIONS[expression]
    quiet = max(change[r] for r in still)
    for region in moved:
        # Visible (several grey levels on average over the box) and well above the quiet regions.
        assert change[region] > 4.0, (region, change)
        assert change[region] > 2.0 * quiet, (region, change)


def _landmarks(head, code):
    r = render_head(head, ex.activations(code, 0 if code == "NE" else 4), 0.0, 0.0, Scene.plain(), SIZE)
    return {n: r.landmarks[i, :2] * SIZE for i, n in enumerate(LANDMARKS)}


def test_landmarks_and_lids_move_as_facs_describes():
    head = head_for(0, 1, SIZE, symmetric=True)
    ne, ha, su, sa, fe = (_landmarks(head, c) for c in ("NE", "HA", "SU", "SA", "FE"))
    width = ne["mouth_left"][0] - ne["mouth_right"][0]
    # AU12: the corners rise above the mouth's middle (image y grows downwards) and the mouth widens.
    for c in ("mouth_left", "mouth_right"):
        assert ha[c][1] < ne[c][1] - 2.0 and ha[c][1] < ha["mouth"][1] - 2.0
        # AU15: corners down, below the mouth's middle.
        assert sa[c][1] > ne[c][1] + 1.0 and sa[c][1] > sa["mouth"][1]
    assert ha["mouth_left"][0] - ha["mouth_right"][0] > width + 1.0
    # AU20 stretches the lips more than AU26 alone does.
    assert fe["mouth_left"][0] - fe["mouth_right"][0] > su["mouth_left"][0] - su["mouth_right"][0] + 1.0
    # AU1 + AU2 raise the brows.
    for b in ("left_brow", "right_brow"):
        assert su[b][1] < ne[b][1] - 2.0

    def lids(code):
        return ex.lid_margins(head, ex.activations(code, 0 if code == "NE" else 4), 1)

    upper0, lower0 = lids("NE")
    # AU6 narrows the eye from below; AU5 widens it above, against anger's lowered brows (AU4), which
    # push the upper lid down; AU7 tightens anger's lower lid; AU41 droops the upper lid in sadness.
    assert lids("HA")[1] < lower0 - 2.0
    anger = lids("AN")
    without_au5 = ex.lid_margins(head, {**ex.activations("AN", 4), "5": (0.0, 0.0)}, 1)
    assert anger[0] > without_au5[0] + 1.0 and anger[1] < lower0 - 2.0
    # ... enough to end above the neutral lid: a glare under the lowered brows.
    assert anger[0] > upper0 + 0.5
    assert lids("SU")[0] > upper0 + 3.0 and lids("FE")[0] > upper0 + 2.0
    # Fear tenses the lower lid (AU7), surprise leaves it relaxed.
    assert lids("FE")[1] < lids("SU")[1] - 1.0
    assert lids("SA")[0] < upper0 - 1.0


@pytest.mark.parametrize("subject", SUBJECTS)
def test_lip_corner_puller_moves_the_cheek_without_a_step_at_the_mouth_line(subject):
    """Beyond the mouth corners the lips are not cut apart, so AU12 must move the skin just above and
    just below the mouth line alike, on both sides of the face (a step there shows as a crease
    running from the corner back to the ear)."""
    head = head_for(0, subject, SIZE)
    lay = head.layout
    skin = head.vertices[: head.skin_count]
    displacement = np.zeros_like(skin)
    for side in (0, 1):
        field = head.actions[("12", side)]
        np.add.at(displacement, field.vertices, field.displacement)
    beside = (np.abs(skin[:, 0]) > lay.mouth_width + 4.0) & (skin[:, 2] > 30.0)
    above = np.flatnonzero(beside & (skin[:, 1] > lay.mouth_y) & (skin[:, 1] < lay.mouth_y + 4.0))
    below = np.flatnonzero(beside & (skin[:, 1] <= lay.mouth_y) & (skin[:, 1] > lay.mouth_y - 4.0))
    assert len(above) > 4 and len(below) > 4
    # Each vertex above the line against the nearest one below it in its column of the skin grid.
    same_column = np.abs(skin[above, None, 0] - skin[None, below, 0]) < 0.5
    rise = np.where(same_column, skin[above, None, 1] - skin[None, below, 1], np.inf)
    paired = same_column.any(axis=1)
    upper, lower = above[paired], below[np.argmin(rise, axis=1)[paired]]
    assert len(upper) > 20
    gap = skin[upper, 1] - skin[lower, 1]
    assert gap.max() < 5.0
    # A smooth field changes by a fraction of a millimetre per millimetre here; a step across the
    # line (2.4 mm on the far side before) by more than one.
    slope = np.linalg.norm(displacement[upper] - displacement[lower], axis=1) / gap
    assert slope.max() < 0.6, slope.max()
    # The corners themselves still rise a lot.
    assert np.abs(displacement).max() > 8.0
