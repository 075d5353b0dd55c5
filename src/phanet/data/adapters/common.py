"""Pieces shared by the dataset adapters.

Adapters that read labels from file names walk the tree, parse each name into a row of the common
manifest (``path``, ``subject``, ``expression``, ``pose``, ...) or a reason for skipping it, and hand
the rows to :func:`phanet.data.manifest.faces_from_table`. A file a protocol leaves out (a camera
outside the map, an AffectNet "None" label) is recorded in ``LabeledFaces.skipped`` with a reason
that starts with :data:`EXCLUDED`, so reports can tell such exclusions from files that are broken.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from phanet.data.manifest import IMAGE_SUFFIXES, faces_from_table
from phanet.data.records import LabeledFaces
from phanet.errors import PhanetError
from phanet.text import format_angle

#: The seven basic expressions as BU-3DFE writes them. KDEF and SFEW use the same class list so that
#: a model trained on one evaluates on another class by class.
BASIC_EXPRESSIONS = ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]

#: Start of the skip reason of a file that a protocol leaves out on purpose (not an error).
EXCLUDED = "excluded"

ROW_COLUMNS = ["path", "subject", "expression", "pose", "intensity", "yaw", "pitch", "face_x", "face_y", "face_w", "face_h"]


def excluded(reason: str) -> str:
    """Skip reason of a file left out by the protocol."""
    return f"{EXCLUDED}: {reason}"


def is_excluded(reason: str) -> bool:
    return reason.startswith(EXCLUDED)


def dataset_root(root: str | Path | None, dataset: str, layout: str) -> Path:
    """``root`` as a folder, or a one-line error saying what the dataset's tree looks like."""
    if root is None or not Path(root).is_dir():
        raise PhanetError(f"data.root: {root} is not a folder (the {dataset} dataset expects {layout})")
    return Path(root)


def walk_files(root: Path, skipped: list[tuple[str, str]]) -> Iterator[Path]:
    """Files under ``root`` at any depth, relative to it, in sorted order; hidden files and folders left
    out. A folder that cannot be listed goes to ``skipped`` with the reason, instead of vanishing."""

    def unlistable(error: OSError) -> None:
        skipped.append((str(Path(error.filename).relative_to(root)), f"folder cannot be listed ({error.strerror})"))

    for folder, dirs, files in os.walk(root, onerror=unlistable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(folder).relative_to(root)
        for name in sorted(files):
            if not name.startswith("."):
                yield base / name


def one_per_sample(found: list[tuple[tuple, dict[str, Any]]], skipped: list[tuple[str, str]], what: str) -> list[dict[str, Any]]:
    """The rows of ``found`` (each with the identity its file name gives: ``what`` says of what) with one
    row per identity: a tree that holds a sample twice (a copy in another folder, the same name as
    ``.jpg`` and ``.png``) would weigh it twice. The copy nearest the root (then first in path order)
    is kept; the others go to ``skipped``, naming the one kept."""
    kept: dict[tuple, dict[str, Any]] = {}
    for identity, row in sorted(found, key=lambda item: (len(Path(item[1]["path"]).parts), item[1]["path"])):
        if identity in kept:
            skipped.append((row["path"], f"duplicate of {kept[identity]['path']} (the same {what})"))
        else:
            kept[identity] = row
    chosen = {id(row) for row in kept.values()}
    return [row for _, row in found if id(row) in chosen]


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def yaw_names(angles: Any, field: str) -> list[str]:
    """Yaw angles (numbers or numeric text) as pose class names in angle order; one-line error otherwise."""
    try:
        values = sorted({float(a) for a in angles})
    except (TypeError, ValueError):
        raise PhanetError(f"data.options.{field}: expected a list of yaw angles in degrees, got {angles!r}") from None
    return [format_angle(a) for a in values]


def angle_map(mapping: Any, field: str) -> dict[str, str]:
    """A {code: yaw angle} option as {code: pose class name}; one-line error when it is not one."""
    if not isinstance(mapping, dict) or not mapping:
        raise PhanetError(f"data.options.{field}: expected a mapping of codes to yaw angles, got {mapping!r}")
    try:
        return {str(code): format_angle(float(angle)) for code, angle in mapping.items()}
    except (TypeError, ValueError):
        raise PhanetError(f"data.options.{field}: expected numeric yaw angles, got {mapping!r}") from None


def build_faces(
    name: str,
    root: Path,
    rows: list[dict[str, Any]],
    skipped: list[tuple[str, str]],
    expressions: list[str],
    poses: list[str],
    where: str,
) -> LabeledFaces:
    """The common record from parsed rows (class lists fixed by the adapter, not by what was found)."""
    table = pd.DataFrame(rows, columns=ROW_COLUMNS, dtype=object).fillna("")
    faces = faces_from_table(
        table.astype(str), name=name, root=root, where=where, expressions=expressions, poses=poses, missing="skip"
    )
    faces.skipped[:0] = skipped
    if not faces.samples:
        reasons = Counter(reason for _, reason in faces.skipped)
        summary = "; ".join(f"{count} {reason}" for reason, count in reasons.most_common(3))
        raise PhanetError(
            f"data.root: no usable {name} images under {root}" + (f" ({summary})" if summary else " (no files found)")
        )
    return faces
