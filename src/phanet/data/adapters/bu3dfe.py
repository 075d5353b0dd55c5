"""BU-3DFE rendered to 2D views (100 persons, 7 expressions, 4 intensities, yaw angles).

BU-3DFE ships 3D scans (``F0001_AN01WH_F3D.wrl``); multi-view FER renders them at yaw angles. The
rendered files must carry subject, expression, intensity and yaw in their relative path, matched by
``pattern``, a regular expression with the named groups ``subject``, ``expression``, ``intensity``
and ``yaw``. The default accepts names like::

    F0001_AN01_+45.png      F0001_NE00_0.png      M0044_SU04WH_-90.jpg

(subject ``F0001``-``F0056``/``M0001``-``M0044``, expression AN DI FE HA NE SA SU, intensity 01-04 and
00 for neutral, an optional two-letter ethnicity code as in the raw names, then the signed yaw in
degrees). A folder layout such as ``-45/F0001_AN01.png`` is one pattern away:
``(?P<yaw>[+-]?\\d+)/(?P<subject>[FM]\\d{4})_(?P<expression>[A-Z]{2})(?P<intensity>\\d{2})\\.png$``.
A pattern naming the yaw group ``pan``, as earlier versions did, still works (with a warning).
"""

from __future__ import annotations

import re

from phanet.compat import PATTERN_GROUPS, deprecated
from phanet.data.adapters.common import (
    BASIC_EXPRESSIONS,
    build_faces,
    dataset_root,
    excluded,
    is_image,
    one_per_sample,
    walk_files,
    yaw_names,
)
from phanet.data.records import LabeledFaces
from phanet.data.registry import register_dataset
from phanet.errors import PhanetError
from phanet.text import format_angle

#: The nine yaw angles the paper renders (Section IV.A, Table II).
BU3DFE_YAWS = [-90, -60, -45, -30, 0, 30, 45, 60, 90]

DEFAULT_PATTERN = (
    r"(?:^|/)(?P<subject>[FM]\d{4})_(?P<expression>[A-Z]{2})(?P<intensity>\d{2})(?:[A-Z]{2})?"
    r"_(?P<yaw>[+-]?\d+(?:\.\d+)?)\.[A-Za-z]+$"
)
GROUPS = ("subject", "expression", "intensity", "yaw")


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise PhanetError(f"data.options.pattern: not a regular expression ({exc})") from None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled, its groups under their current names (:data:`phanet.compat.PATTERN_GROUPS`)."""
    compiled = _compile(pattern)
    for old, new in PATTERN_GROUPS["bu3dfe"].items():
        if old not in compiled.groupindex:
            continue
        if new in compiled.groupindex:
            raise PhanetError(f"data.options.pattern: the named group {old!r} is an old name of {new!r}; give only {new!r}")
        deprecated("data.options.pattern", old, new, what="named group")
        pattern = pattern.replace(f"(?P<{old}>", f"(?P<{new}>").replace(f"(?P={old})", f"(?P={new})")
        compiled = _compile(pattern)
    absent = [g for g in GROUPS if g not in compiled.groupindex]
    if absent:
        raise PhanetError(f"data.options.pattern: missing the named group {absent[0]!r} (needs {', '.join(GROUPS)})")
    return compiled


@register_dataset("bu3dfe", "BU-3DFE rendered views: F0001_AN01_+45.png (subject, expression, intensity, yaw)")
def load_bu3dfe(
    root: str | None,
    pattern: str = DEFAULT_PATTERN,
    poses: list[float] | None = BU3DFE_YAWS,
    intensities: list[int] | None = None,
) -> LabeledFaces:
    """Load rendered BU-3DFE views from ``root`` (any depth).

    Args:
        pattern: regular expression searched in each file's path relative to ``root`` (``/``
            separators) with the named groups subject, expression, intensity and yaw.
        poses: the pose classes, yaw angles in degrees (default: the paper's nine); views at other yaws are
            skipped and counted. ``None`` makes every yaw found in the tree a class.
        intensities: intensity levels to keep (e.g. ``[3, 4]``); neutral (00) is always kept.
    """
    base = dataset_root(root, "bu3dfe", "rendered views named like F0001_AN01_+45.png")
    regex = compile_pattern(pattern)
    wanted = set(yaw_names(poses, "poses")) if poses is not None else None
    keep_levels = None if intensities is None else {int(i) for i in intensities}
    samples, skipped, found = [], [], set()
    for rel in walk_files(base, skipped):
        match = regex.search(rel.as_posix()) if is_image(rel) else None
        if match is None:
            skipped.append((str(rel), "name does not match the BU-3DFE pattern (data.options.pattern)"))
            continue
        expression, level = match["expression"].upper(), match["intensity"]
        try:
            pose = format_angle(float(match["yaw"]))
            intensity = int(level)
        except ValueError:
            skipped.append((str(rel), f"yaw {match['yaw']!r} or intensity {level!r} is not a number"))
            continue
        if expression not in BASIC_EXPRESSIONS:
            skipped.append((str(rel), f"unknown BU-3DFE expression code {expression!r}"))
        elif (expression == "NE") != (intensity == 0) or not 0 <= intensity <= 4:
            skipped.append((str(rel), f"intensity {level} does not fit {expression} (NE is 00, others 01-04)"))
        elif wanted is not None and pose not in wanted:
            skipped.append((str(rel), excluded(f"yaw {pose} not among data.options.poses")))
        else:
            found.add(pose)
            if keep_levels is not None and intensity and intensity not in keep_levels:
                skipped.append((str(rel), excluded(f"intensity {intensity} not among data.options.intensities")))
            else:
                row = {
                    "path": str(rel),
                    "subject": match["subject"],
                    "expression": expression,
                    "pose": pose,
                    "intensity": intensity,
                }
                others = tuple(
                    sorted((k, v) for k, v in match.groupdict().items() if k not in ("expression", "intensity", "yaw"))
                )
                samples.append(((expression, intensity, pose, *others), row))
    rows = one_per_sample(samples, skipped, "subject, expression, intensity and yaw")
    poses = sorted(wanted if wanted is not None else found, key=float)
    return build_faces("bu3dfe", base, rows, skipped, BASIC_EXPRESSIONS, poses, where=str(base))
