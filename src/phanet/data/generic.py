"""Generic datasets: a manifest (CSV or JSON) and an image-folder tree.

Manifest columns (see :data:`phanet.data.records.MANIFEST_COLUMNS`): ``path``, ``subject``,
``expression`` are required; ``pose`` (pan angle in degrees or any class name, empty when unknown),
``intensity``, ``yaw``, ``pitch`` and a face box ``face_x, face_y, face_w, face_h`` are optional.
Relative paths are resolved against the manifest's folder.

Folder tree: ``ROOT/<expression>/<image>`` or ``ROOT/<expression>/<pose>/<image>``; the subject id
is taken from the file name with ``subject_pattern`` (a regular expression whose first group is the
subject; default: the text before the first ``_``).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from phanet.data.records import MISSING, LabeledFaces, Sample, format_angle, sort_pose_names
from phanet.data.registry import register_dataset
from phanet.errors import PhanetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


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
        raise PhanetError(f"{where}: {field} {name!r} is not in the class list [{', '.join(classes)}]") from None


def _optional_float(value: object) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    return float(value)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise PhanetError(f"{path}: manifest not found")
    try:
        if path.suffix.lower() == ".json":
            payload = json.loads(path.read_text())
            rows = payload.get("samples", payload) if isinstance(payload, dict) else payload
            if not isinstance(rows, list):
                raise PhanetError(f"{path}: expected a JSON list of samples or {{\"samples\": [...]}}")
            return pd.DataFrame(rows)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise PhanetError(f"{path}: not a readable manifest ({exc})") from None


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
    expr_names = [str(v).strip() for v in table["expression"]]
    pose_names = [canonical_pose(v) for v in table["pose"]] if "pose" in table.columns else [""] * len(table)
    expressions = list(expressions) if expressions else sorted(set(expr_names))
    poses = [canonical_pose(p) for p in poses] if poses else sort_pose_names({p for p in pose_names if p})
    samples, skipped = [], []
    for row_number, (row, expr, pose) in enumerate(zip(table.to_dict("records"), expr_names, pose_names), start=2):
        row_where = f"{where} row {row_number}"
        path = str(row["path"]).strip()
        if not path:
            raise PhanetError(f"{row_where}: empty 'path'")
        file = Path(path) if root is None or Path(path).is_absolute() else root / path
        if not file.exists():
            if missing == "error":
                raise PhanetError(f"{row_where}: image file {file} not found (set data.options.missing: skip to skip such rows)")
            skipped.append((str(file), "file not found"))
            continue
        try:
            box = None
            if all(str(row.get(k, "")).strip() for k in ("face_x", "face_y", "face_w", "face_h")):
                box = tuple(float(row[k]) for k in ("face_x", "face_y", "face_w", "face_h"))
            intensity = str(row.get("intensity", "")).strip()
            sample = Sample(
                path=path,
                subject=str(row["subject"]).strip(),
                expression=_class_index(expr, expressions, row_where, "expression"),
                pose=_class_index(pose, poses, row_where, "pose") if pose else MISSING,
                intensity=int(float(intensity)) if intensity else MISSING,
                yaw=_optional_float(row.get("yaw")),
                pitch=_optional_float(row.get("pitch")),
                box=box,
            )
        except ValueError as exc:
            raise PhanetError(f"{row_where}: {exc}") from None
        if not sample.subject:
            raise PhanetError(f"{row_where}: empty 'subject' (splits are subject-independent and need it)")
        samples.append(sample)
    return LabeledFaces(name=name, expressions=expressions, poses=poses, samples=samples, root=root, skipped=skipped)


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
    return faces_from_table(table, name=path.parent.name or "manifest", root=path.parent, where=str(path),
                            expressions=expressions, poses=poses, missing=missing)


@register_dataset("folder", "an image-folder tree ROOT/<expression>/[<pose>/]<image>, subject from the file name")
def load_folder(
    root: str | None,
    subject_pattern: str = r"^([^_]+)_",
    expressions: list[str] | None = None,
    poses: list[str] | None = None,
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
    for file in sorted(p for p in root_path.rglob("*") if p.is_file()):
        rel = file.relative_to(root_path)
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            if not file.name.startswith("."):
                skipped.append((str(rel), "not an image file name"))
            continue
        if len(rel.parts) not in (2, 3):
            skipped.append((str(rel), "not at ROOT/<expression>/[<pose>/]<image>"))
            continue
        match = pattern.search(file.name)
        if not match:
            skipped.append((str(rel), f"no subject in the file name (pattern {subject_pattern!r})"))
            continue
        rows.append({
            "path": str(rel),
            "subject": match.group(1) if match.groups() else match.group(0),
            "expression": rel.parts[0],
            "pose": rel.parts[1] if len(rel.parts) == 3 else "",
        })
    faces = faces_from_table(pd.DataFrame(rows, columns=["path", "subject", "expression", "pose"]),
                             name=root_path.name, root=root_path, where=str(root_path),
                             expressions=expressions, poses=poses)
    faces.skipped.extend(skipped)
    return faces
