"""KDEF: the Karolinska Directed Emotional Faces (70 persons, 7 expressions, 5 yaw angles, 2 sessions).

File names code everything: ``AF01ANFL.JPG`` is session ``A``, sex ``F``, person ``01``, expression
``AN`` and angle ``FL``. The straight view has a one-letter angle code (``AF01ANS.JPG``), so names
differ in length and are parsed by position from the left. The released tree has one folder per
session and person (``KDEF/AF01/AF01ANFL.JPG``); any depth is accepted.

The subject is sex + id (``F01``): sessions A and B photograph the same person, so both land on the
same side of every split. KDEF writes fear as ``AF`` (afraid); it becomes ``FE`` so that the class
list is the BU-3DFE one. Files whose name does not parse, or that sit in another person's folder,
are skipped and counted (the public release has a few such files). A sample found twice (a copy in
another folder, ``.JPG`` beside ``.png``) counts once; the copies are skipped and named.
"""

from __future__ import annotations

import re

from phanet.data.adapters.common import (
    BASIC_EXPRESSIONS,
    angle_map,
    build_faces,
    dataset_root,
    excluded,
    is_image,
    one_per_sample,
    walk_files,
)
from phanet.data.records import LabeledFaces
from phanet.data.registry import register_dataset
from phanet.errors import PhanetError

#: KDEF angle codes as yaw angles in degrees: the "left" views are negative (see docs/guides/datasets.md, "Yaw sign convention").
KDEF_ANGLES = {"FL": -90, "HL": -45, "S": 0, "HR": 45, "FR": 90}
#: KDEF expression codes to the class list; AF (afraid) is fear.
KDEF_EXPRESSIONS = {"AF": "FE", "AN": "AN", "DI": "DI", "HA": "HA", "NE": "NE", "SA": "SA", "SU": "SU"}

NAME = re.compile(r"^(?P<session>[AB])(?P<sex>[FM])(?P<id>\d{2})(?P<expression>[A-Z]{2})(?P<angle>[A-Z]{1,2})$", re.IGNORECASE)
FOLDER = re.compile(r"^[AB][FM]\d{2}$", re.IGNORECASE)


def parse_kdef_name(stem: str) -> dict[str, str] | None:
    """The fields of a KDEF file stem (upper case), or None when it is not a KDEF name."""
    match = NAME.match(stem)
    return {k: v.upper() for k, v in match.groupdict().items()} if match else None


@register_dataset("kdef", "KDEF: AF01ANFL.JPG names (session, sex, id, expression, angle FL/HL/S/HR/FR)")
def load_kdef(root: str | None, sessions: list[str] | None = None, poses: dict[str, float] | None = None) -> LabeledFaces:
    """Load KDEF from ``root`` (any depth).

    Args:
        sessions: sessions to keep (``["A", "B"]`` by default: the paper's 4,900 images use both).
        poses: the pose classes, as angle code -> yaw angle in degrees (default :data:`KDEF_ANGLES`); codes left out of
            the map are skipped and counted, which also selects views.
    """
    base = dataset_root(root, "kdef", "KDEF/<session+person>/AF01ANFL.JPG")
    wanted = {str(s).upper() for s in (sessions or ["A", "B"])}
    if not wanted <= {"A", "B"}:
        raise PhanetError(f"data.options.sessions: expected a list of A and/or B, got {sessions!r}")
    pose_of = angle_map(poses if poses is not None else KDEF_ANGLES, "poses")
    pose_of = {code.upper(): pose for code, pose in pose_of.items()}
    found, skipped = [], []
    for rel in walk_files(base, skipped):
        fields = parse_kdef_name(rel.stem) if is_image(rel) else None
        if fields is None:
            skipped.append((str(rel), "not a KDEF name like AF01ANFL.JPG"))
        elif fields["expression"] not in KDEF_EXPRESSIONS:
            skipped.append((str(rel), f"unknown KDEF expression code {fields['expression']!r}"))
        elif fields["angle"] not in KDEF_ANGLES and fields["angle"] not in pose_of:
            skipped.append((str(rel), f"unknown KDEF angle code {fields['angle']!r}"))
        elif len(rel.parts) > 1 and FOLDER.match(rel.parent.name) and rel.parent.name.upper() != rel.stem[:4].upper():
            skipped.append((str(rel), f"file of {rel.stem[:4].upper()} in the folder of {rel.parent.name}"))
        elif fields["session"] not in wanted:
            skipped.append((str(rel), excluded(f"session {fields['session']} not selected")))
        elif fields["angle"] not in pose_of:
            skipped.append((str(rel), excluded(f"angle {fields['angle']} not in data.options.poses")))
        else:
            row = {
                "path": str(rel),
                "subject": fields["sex"] + fields["id"],
                "expression": KDEF_EXPRESSIONS[fields["expression"]],
                "pose": pose_of[fields["angle"]],
            }
            found.append((tuple(fields.values()), row))
    rows = one_per_sample(found, skipped, "session, person, expression and angle")
    poses = sorted(set(pose_of.values()), key=float)
    return build_faces("kdef", base, rows, skipped, BASIC_EXPRESSIONS, poses, where=str(base))
