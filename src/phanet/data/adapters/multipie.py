"""CMU Multi-PIE, multi-view expression part (6 expressions, 5 yaw angles by default).

Images live at ``sessionNN/multiview/SSS/RR/CC_C/SSS_NN_RR_CCC_II.png``: subject ``SSS``, session
``NN``, recording ``RR``, camera ``CC_C`` (written ``CCC`` in the file name) and illumination ``II``.
Only the file name is parsed, so any folder layout works.

The expression follows from (session, recording) as in :data:`MULTIPIE_EXPRESSIONS`; every neutral
recording of every session (including both neutral recordings of session 4) is neutral. The camera
gives the yaw angle through a configurable map (:data:`PAPER_CAMERAS` by default, the paper's
-30..+30 in 15 degree steps); cameras outside the map and illuminations not selected are skipped and
counted as protocol exclusions.
"""

from __future__ import annotations

import re

from phanet.data.adapters.common import angle_map, build_faces, dataset_root, excluded, is_image, one_per_sample, walk_files
from phanet.data.records import LabeledFaces
from phanet.data.registry import register_dataset
from phanet.errors import PhanetError

#: The paper's class list and order (Section IV.A): neutral, disgust, surprise, smile, scream, squint.
MULTIPIE_CLASSES = ["NE", "DI", "SU", "SM", "SC", "SQ"]

#: (session, recording) -> expression.
MULTIPIE_EXPRESSIONS = {
    ("01", "01"): "NE",
    ("01", "02"): "SM",
    ("02", "01"): "NE",
    ("02", "02"): "SU",
    ("02", "03"): "SQ",
    ("03", "01"): "NE",
    ("03", "02"): "SM",
    ("03", "03"): "DI",
    ("04", "01"): "NE",
    ("04", "02"): "NE",
    ("04", "03"): "SC",
}

#: The 13 cameras of the horizontal ring, 15 degrees apart. Negative angles are the cameras Multi-PIE
#: calls the "left" side (11_0 left profile ... 13_0 left quarter profile), matching KDEF's FL/HL.
ALL_CAMERAS = {
    "11_0": -90,
    "12_0": -75,
    "09_0": -60,
    "08_0": -45,
    "13_0": -30,
    "14_0": -15,
    "05_1": 0,
    "05_0": 15,
    "04_1": 30,
    "19_0": 45,
    "20_0": 60,
    "01_0": 75,
    "24_0": 90,
}
#: The paper's five yaws (-30, -15, 0, 15, 30).
PAPER_CAMERAS = {cam: ALL_CAMERAS[cam] for cam in ("13_0", "14_0", "05_1", "05_0", "04_1")}
CAMERA_PRESETS = {"paper": PAPER_CAMERAS, "all": ALL_CAMERAS}

#: One illumination per recording by default: the paper's 1,531 images per pose are fewer than one
#: illumination of every recording, so it cannot have used all 20.
DEFAULT_ILLUMINATIONS = ["07"]

NAME = re.compile(r"^(?P<subject>\d{3})_(?P<session>\d{2})_(?P<recording>\d{2})_(?P<camera>\d{3})_(?P<illumination>\d{2})$")


def _cameras(cameras: str | dict) -> dict[str, str]:
    """The ``poses`` option as camera -> pose class name."""
    if isinstance(cameras, str):
        if cameras not in CAMERA_PRESETS:
            raise PhanetError(f"data.options.poses: expected 'paper', 'all' or a mapping like {{'05_1': 0}}, got {cameras!r}")
        cameras = CAMERA_PRESETS[cameras]
    mapping = angle_map(cameras, "poses")
    for camera in mapping:
        if not re.fullmatch(r"\d{2}_\d", camera):
            raise PhanetError(f"data.options.poses: camera {camera!r} is not written like 05_1")
    return mapping


def _illuminations(values: list) -> set[str]:
    try:
        return {f"{int(str(v)):02d}" for v in values}
    except (TypeError, ValueError):
        raise PhanetError(f"data.options.illuminations: expected a list of numbers 00-19, got {values!r}") from None


@register_dataset("multipie", "Multi-PIE multiview: SSS_NN_RR_CCC_II.png (session/recording -> expression, camera -> yaw)")
def load_multipie(
    root: str | None, poses: str | dict[str, float] = "paper", illuminations: list[str] | None = DEFAULT_ILLUMINATIONS
) -> LabeledFaces:
    """Load Multi-PIE's multiview images from ``root`` (any depth; usually the folder holding ``session01``...).

    Args:
        poses: the pose classes: ``"paper"`` (13_0, 14_0, 05_1, 05_0, 04_1 = -30..30), ``"all"`` (the 13 cameras of
            the ring, -90..90) or a mapping camera -> yaw angle in degrees, e.g. ``{"05_1": 0}``.
        illuminations: illumination numbers to keep (``["07"]`` by default); ``None`` keeps all 20.
    """
    base = dataset_root(root, "multipie", "sessionNN/multiview/SSS/RR/CC_C/SSS_NN_RR_CCC_II.png")
    pose_of = _cameras(poses)
    lights = None if illuminations is None else _illuminations(illuminations)
    found, skipped = [], []
    for rel in walk_files(base, skipped):
        match = NAME.match(rel.stem) if is_image(rel) else None
        if match is None:
            skipped.append((str(rel), "not a Multi-PIE name like 001_01_01_051_07.png"))
            continue
        camera = f"{match['camera'][:2]}_{match['camera'][2]}"
        expression = MULTIPIE_EXPRESSIONS.get((match["session"], match["recording"]))
        if expression is None:
            skipped.append((str(rel), f"session {match['session']} has no recording {match['recording']}"))
        elif camera not in pose_of:
            skipped.append((str(rel), excluded(f"camera {camera} not in data.options.poses")))
        elif lights is not None and match["illumination"] not in lights:
            skipped.append((str(rel), excluded(f"illumination {match['illumination']} not selected")))
        else:
            row = {"path": str(rel), "subject": match["subject"], "expression": expression, "pose": pose_of[camera]}
            found.append((tuple(match.groupdict().values()), row))
    rows = one_per_sample(found, skipped, "subject, session, recording, camera and illumination")
    poses = sorted(set(pose_of.values()), key=float)
    return build_faces("multipie", base, rows, skipped, MULTIPIE_CLASSES, poses, where=str(base))
