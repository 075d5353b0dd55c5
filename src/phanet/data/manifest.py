"""Generic datasets: a manifest (CSV or JSON) and an image-folder tree.

Manifest columns (see :data:`phanet.data.records.MANIFEST_COLUMNS`): ``path``, ``subject``,
``expression`` are required; ``pose`` (yaw angle in degrees or any class name, empty when unknown),
``intensity``, ``yaw``, ``pitch`` and a face box ``face_x, face_y, face_w, face_h`` are optional.
Relative paths are resolved against the manifest's folder.

A manifest is checked row by row, and a row that cannot be taken as it stands is refused with one
line naming the row and the column: an empty path, subject or expression; an expression or pose that
is a missing-value marker (``nan``, ``None``, ``null``, ``N/A``) or a non-finite number rather than
a class (leave the pose cell empty when it is unknown); a number column that does not hold a number;
a yaw or pitch beyond ±180 degrees; a face box with only some of its four values; an intensity that
is not a whole number from 0 to :data:`MAX_INTENSITY`; a subject, expression or pose holding a
control character (a NUL byte: a file of another encoding) or half of a UTF-16 pair. A row whose
face box has no positive size, or lies beyond any image phanet reads, is skipped and counted, and so
is a row whose path no file can have (longer than the system allows, or holding a NUL byte) and a
file of a tree whose name is not valid UTF-8. A sample is a file and its face box: a row repeating
an earlier one exactly is skipped and counted (reason ``duplicate of row N``), since it would only
weigh that image twice; a row giving the same file and box other labels is an error naming both
rows, since only the user knows which one is right.

Folder tree: ``ROOT/<expression>/<image>`` or ``ROOT/<expression>/<pose>/<image>``; the subject id
is taken from the file name with ``subject_pattern`` (a regular expression whose first group is the
subject; default: the text before the first ``_``). Links to folders are followed (each folder is
searched once). Nothing in the tree vanishes unreported: hidden files (``.DS_Store``), hidden folders
(``.git``, not searched), links whose target is gone and files that are not images are skipped and
counted with the reason.
"""

from __future__ import annotations

import errno
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from phanet.checks import SHOWN_PATH, class_names, shorten
from phanet.data.io import IMAGE_SUFFIXES, MAX_PIXELS
from phanet.data.records import MISSING, LabeledFaces, Sample, sort_pose_names
from phanet.data.registry import register_dataset
from phanet.errors import PhanetError
from phanet.files import open_regular, parse_json
from phanet.text import format_angle

#: Largest intensity: an expression's strength is a level from 0 (neutral) upwards, 1-4 in BU-3DFE.
MAX_INTENSITY = 9
#: Largest face box coordinate or side, in pixels: no image phanet reads has a longer side.
MAX_BOX = float(MAX_PIXELS)

#: Cell texts that mark a missing value (as pandas and spreadsheets write it), never a class name.
MISSING_MARKERS = frozenset({"nan", "-nan", "none", "null", "n/a", "#n/a"})

BOX_COLUMNS = ("face_x", "face_y", "face_w", "face_h")


def canonical_pose(value: object) -> str:
    """Pose label as a class name: numbers become canonical angle text ("45.0" -> "45"), blanks ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value).strip()
    if not text:
        return ""
    try:
        return format_angle(float(text))
    except ValueError:
        return text


def _class_index(name: str, classes: list[str], where: str, field: str) -> int:
    try:
        return classes.index(name)
    except ValueError:
        raise PhanetError(
            f"{where}: {field} {shorten(name)!r} is not in the class list [{shorten(', '.join(classes), 200)}]"
        ) from None


def _is_non_finite_number(text: str) -> bool:
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def _no_control(text: str, where: str, column: str) -> str:
    """``text`` when it holds no control character; a one-line error naming the first one otherwise."""
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise PhanetError(
            f"{where}: {column} {shorten(repr(text))} holds the control character {bad!r}; is the manifest saved as UTF-8 text?"
        )
    if not _is_utf8(text):  # JSON's "\udce9": no manifest, report or terminal could write it
        raise PhanetError(f"{where}: {column} {shorten(repr(text))} is not text (it holds half of a UTF-16 pair)")
    return text


def _label(text: str, where: str, column: str, required: bool) -> str:
    """A class name from a cell; '' for an empty optional cell; one-line error for a missing-value marker."""
    _no_control(text, where, column)
    if not text:
        if required:
            raise PhanetError(f"{where}: empty {column!r}")
        return ""
    if text.lower() in MISSING_MARKERS or _is_non_finite_number(text):
        hint = "" if required else "; leave the cell empty when it is unknown"
        raise PhanetError(f"{where}: {column} {shorten(text)!r} is a missing or infinite value, not a class{hint}")
    return text


def _number(row: dict[str, Any], column: str, where: str) -> float:
    """A finite number from a cell; NaN for an empty cell or a missing-value marker."""
    text = str(row.get(column, "")).strip()
    if not text or text.lower() in MISSING_MARKERS:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise PhanetError(f"{where}: {column} {shorten(text)!r} is not a number")
    return value


def _angle(row: dict[str, Any], column: str, where: str) -> float:
    """A head angle in degrees from a cell, within a turn either way; NaN for an empty cell."""
    value = _number(row, column, where)
    if abs(value) > 180:
        raise PhanetError(f"{where}: {column} {value:g} is not an angle in degrees from -180 to 180")
    return value


def _box(row: dict[str, Any], where: str) -> tuple[float, float, float, float] | None:
    values = [_number(row, column, where) for column in BOX_COLUMNS]
    given = [not math.isnan(v) for v in values]
    if not any(given):
        return None
    if not all(given):
        absent = [c for c, g in zip(BOX_COLUMNS, given) if not g]
        raise PhanetError(f"{where}: the face box needs all of {', '.join(BOX_COLUMNS)} ({', '.join(absent)} empty)")
    return tuple(values)


def _empty_box(box: tuple[float, float, float, float] | None) -> str:
    """Why a row's face box holds no pixels ("" when it does, or when there is none): such a row is
    skipped and counted, like an unreadable image, since a large annotation file may hold a few."""
    if box is not None and (box[2] <= 0 or box[3] <= 0):
        return f"face box of {box[2]:g} x {box[3]:g} pixels, nothing to crop"
    if box is not None and any(abs(v) > MAX_BOX for v in box):
        return f"face box ({', '.join(f'{v:g}' for v in box)}) lies beyond any image phanet reads"
    return ""


def _intensity(row: dict[str, Any], where: str) -> int:
    value = _number(row, "intensity", where)
    if math.isnan(value):
        return MISSING
    if not value.is_integer() or not 0 <= value <= MAX_INTENSITY:
        raise PhanetError(
            f"{where}: intensity {value:g} is not a whole number from 0 to {MAX_INTENSITY} "
            "(an expression's strength: 0 for neutral, 1-4 in BU-3DFE)"
        )
    return int(value)


#: Skip reason of a file whose name is not valid UTF-8 (bytes of another encoding).
NOT_UTF8 = "file name is not valid UTF-8 (a manifest cannot name it; rename the file)"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _file_problem(file: Path, where: str, missing: str) -> str:
    """Why a row's image is skipped ("" when it is there): no file can have its name (a NUL byte, longer
    than the system allows), or it is not there and ``missing`` is ``skip`` (with ``error``, an error)."""
    if "\0" in str(file):
        return "file name holds a NUL byte"
    try:
        os.stat(file)
    except FileNotFoundError:
        if missing == "error":
            raise PhanetError(
                f"{where}: image file {shorten(file, SHOWN_PATH)} not found (set data.options.missing: skip to skip such rows)"
            ) from None
        return "file not found"
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return f"file name of {len(os.fsencode(str(file))):,} bytes, longer than the system allows"
    return ""


def _class_lists(
    expressions: list[str] | None, poses: list[str] | None, expr_names: list[str], pose_names: list[str]
) -> tuple[list[str], list[str]]:
    """The class lists given (each name once), or those the rows name, sorted."""
    if expressions:
        expressions = class_names(expressions, "data.options.expressions")
    if poses:
        names = class_names([str(p) for p in poses], "data.options.poses")
        poses = [canonical_pose(p) for p in names]
        if len(set(poses)) < len(poses):
            twice = next(p for i, p in enumerate(poses) if p in poses[:i])
            raise PhanetError(
                f"data.options.poses: {twice!r} is listed twice in {shorten(repr(names))} (as angles, 45 and 45.0 are one)"
            )
    return expressions or sorted(set(expr_names)), poses or sort_pose_names({p for p in pose_names if p})


def _read_table(path: Path) -> pd.DataFrame:
    """The rows of a manifest file (a regular file only: a pipe or a device is refused unread)."""
    if not path.exists():
        raise PhanetError(f"{path}: manifest not found")
    try:
        with open_regular(path) as handle:
            if path.suffix.lower() != ".json":
                return pd.read_csv(handle, dtype=str, keep_default_na=False)
            payload = parse_json(handle.read())
    except (ValueError, pd.errors.ParserError, OSError) as exc:
        raise PhanetError(f"{path}: not a readable manifest ({shorten(exc, 200)})") from None
    rows = payload.get("samples", payload) if isinstance(payload, dict) else payload
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise PhanetError(f'{path}: expected a JSON list of samples (objects) or {{"samples": [...]}}')
    return pd.DataFrame(rows)


def faces_from_table(
    table: pd.DataFrame,
    name: str,
    root: Path | None,
    where: str,
    expressions: list[str] | None = None,
    poses: list[str] | None = None,
    missing: str = "error",
) -> LabeledFaces:
    """Build :class:`LabeledFaces` from a manifest table; ``where`` names the source in errors."""
    for column in ("path", "subject", "expression"):
        if column not in table.columns:
            raise PhanetError(f"{where}: missing column {column!r} (required: path, subject, expression)")
    if missing not in ("error", "skip"):
        raise PhanetError(f"data.options.missing: expected 'error' or 'skip', got {missing!r}")
    table = table.fillna("")
    numbered = list(enumerate(table.to_dict("records"), start=2))
    # A tree's file name that is not UTF-8 (its folder gives the class) is skipped before the class lists
    # are made: no manifest, report or class list could name it.
    skipped = [(str(row["path"]).strip(), NOT_UTF8) for _, row in numbered if not _is_utf8(str(row["path"]))]
    numbered = [(n, row) for n, row in numbered if _is_utf8(str(row["path"]))]
    has_pose = "pose" in table.columns
    expr_names = [_label(str(row["expression"]).strip(), f"{where} row {n}", "expression", required=True) for n, row in numbered]
    pose_names = [
        canonical_pose(_label(str(row["pose"]).strip(), f"{where} row {n}", "pose", required=False)) if has_pose else ""
        for n, row in numbered
    ]
    expressions, poses = _class_lists(expressions, poses, expr_names, pose_names)
    samples = []
    first_rows: dict[tuple, tuple[int, tuple]] = {}  # (file, box) -> (row number, labels) of its first row
    for (row_number, row), expr, pose in zip(numbered, expr_names, pose_names):
        row_where = f"{where} row {row_number}"
        path = str(row["path"]).strip()
        if not path:
            raise PhanetError(f"{row_where}: empty 'path'")
        file = Path(path) if root is None or Path(path).is_absolute() else root / path
        if problem := _file_problem(file, row_where, missing):
            skipped.append((str(file) if problem == "file not found" else shorten(path, SHOWN_PATH), problem))
            continue
        sample = Sample(
            path=path,
            subject=_no_control(str(row["subject"]).strip(), row_where, "subject"),
            expression=_class_index(expr, expressions, row_where, "expression"),
            pose=_class_index(pose, poses, row_where, "pose") if pose else MISSING,
            intensity=_intensity(row, row_where),
            yaw=_angle(row, "yaw", row_where),
            pitch=_angle(row, "pitch", row_where),
            box=_box(row, row_where),
        )
        if not sample.subject:
            raise PhanetError(f"{row_where}: empty 'subject' (splits are subject-independent and need it)")
        if reason := _empty_box(sample.box):
            skipped.append((path, reason))
            continue
        key = (os.path.normpath(file), sample.box)
        labels = _labels(sample, expressions, poses)
        if key in first_rows:
            first, first_labels = first_rows[key]
            if labels != first_labels:
                column, a, b = next((c, x, y) for c, x, y in zip(_LABEL_COLUMNS, first_labels, labels) if x != y)
                raise PhanetError(
                    f"{where} rows {first} and {row_number}: {shorten(path, SHOWN_PATH)} is listed "
                    f"twice with different labels ({column} {shorten(a)!r} and {shorten(b)!r})"
                )
            skipped.append((path, f"duplicate of row {first}"))
            continue
        first_rows[key] = (row_number, labels)
        samples.append(sample)
    return LabeledFaces(name=name, expressions=expressions, poses=poses, samples=samples, root=root, skipped=skipped)


_LABEL_COLUMNS = ("subject", "expression", "pose", "intensity", "yaw", "pitch")


def _labels(sample: Sample, expressions: list[str], poses: list[str]) -> tuple:
    """What a row says about its sample, as text (so that an unknown yaw equals an unknown yaw)."""
    return (
        sample.subject,
        expressions[sample.expression],
        poses[sample.pose] if sample.pose != MISSING else "",
        "" if sample.intensity == MISSING else str(sample.intensity),
        "" if math.isnan(sample.yaw) else f"{sample.yaw:g}",
        "" if math.isnan(sample.pitch) else f"{sample.pitch:g}",
    )


@register_dataset("manifest", "a CSV or JSON manifest (path, subject, expression[, pose, intensity, yaw, pitch, face box])")
def load_manifest(
    root: str | None,
    manifest: str | None = None,
    expressions: list[str] | None = None,
    poses: list[str] | None = None,
    missing: str = "error",
) -> LabeledFaces:
    """Load a manifest file; ``root`` may be the manifest itself or the folder holding ``manifest.csv``."""
    if root is None and manifest is None:
        raise PhanetError("data.root: the manifest dataset needs a manifest file or a folder holding manifest.csv")
    path = Path(manifest) if manifest else Path(root)
    if path.is_dir():
        path = path / "manifest.csv"
    table = _read_table(path)
    return faces_from_table(
        table,
        name=path.parent.name or "manifest",
        root=path.parent,
        where=str(path),
        expressions=expressions,
        poses=poses,
        missing=missing,
    )


def _walk(root: Path) -> list[tuple[Path, str | None]]:
    """Every file under ``root``, relative to it, in path order, with the reason it is skipped (None
    for a file to look at): hidden files and folders, links whose target is gone, folders that cannot
    be listed, and links to a folder searched already (each real folder is searched once, so a link
    loop ends)."""
    found: list[tuple[Path, str | None]] = []

    def unlistable(error: OSError) -> None:
        found.append((Path(error.filename).relative_to(root), f"folder cannot be listed ({error.strerror})"))

    searched: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root, onerror=unlistable, followlinks=True):
        base = Path(folder).relative_to(root)
        real = os.path.realpath(folder)
        if real in searched:
            dirs[:] = []
            found.append((base, f"the same folder as {searched[real]}, searched once"))
            continue
        searched[real] = base
        dirs.sort()  # links to one folder: the first in path order is searched, the others reported
        found += [(base / name, "hidden folder, not searched") for name in dirs if name.startswith(".")]
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            if name.startswith("."):
                found.append((base / name, "hidden file"))
            elif not os.path.exists(os.path.join(folder, name)):
                found.append((base / name, "broken link (its target does not exist)"))
            else:
                found.append((base / name, None))
    return sorted(found, key=lambda item: item[0].parts)


@register_dataset("folder", "an image-folder tree ROOT/<expression>/[<pose>/]<image>, subject from the file name")
def load_folder(
    root: str | None, subject_pattern: str = r"^([^_]+)_", expressions: list[str] | None = None, poses: list[str] | None = None
) -> LabeledFaces:
    """Load ``ROOT/<expression>/[<pose>/]<image>``; files whose name gives no subject are skipped and counted."""
    if root is None or not Path(root).is_dir():
        raise PhanetError(f"data.root: {root} is not a folder (expected ROOT/<expression>/[<pose>/]<image>)")
    root_path = Path(root)
    try:
        pattern = re.compile(subject_pattern)
    except re.error as exc:
        raise PhanetError(f"data.options.subject_pattern: not a regular expression ({exc})") from None
    rows, skipped = [], []
    for rel, problem in _walk(root_path):
        if problem is not None:
            skipped.append((str(rel), problem))
            continue
        file = root_path / rel
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((str(rel), "not an image file name"))
            continue
        if len(rel.parts) not in (2, 3):
            skipped.append((str(rel), "not at ROOT/<expression>/[<pose>/]<image>"))
            continue
        match = pattern.search(file.name)
        if not match:
            skipped.append((str(rel), f"no subject in the file name (pattern {subject_pattern!r})"))
            continue
        rows.append(
            {
                "path": str(rel),
                "subject": match.group(1) if match.groups() else match.group(0),
                "expression": rel.parts[0],
                "pose": rel.parts[1] if len(rel.parts) == 3 else "",
            }
        )
    faces = faces_from_table(
        pd.DataFrame(rows, columns=["path", "subject", "expression", "pose"]),
        name=root_path.name,
        root=root_path,
        where=str(root_path),
        expressions=expressions,
        poses=poses,
    )
    faces.skipped.extend(skipped)
    return faces
