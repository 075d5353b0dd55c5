"""Head-pose labels from OpenFace 2.0 output, as the paper labelled AffectNet's yaw angles.

OpenFace writes ``pose_Rx``, ``pose_Ry``, ``pose_Rz`` (radians; ``pose_Ry`` is the yaw) per face. The
rows are joined to dataset images by name, never by order:

- a **folder of per-image CSVs**, as ``FaceLandmarkImg -fdir IMAGES -out_dir OUT`` writes them
  (``OUT/<image stem>.csv``, one row per face found; nested folders are fine): each CSV belongs to
  the image with the same path (relative to the folder) or stem;
- a **single CSV with a column naming the image** (``file``, ``filename``, ``image``, ``path``,
  ``input`` or ``name``; absolute, relative or bare stems): the usual result of concatenating the
  per-image CSVs with the file name added.

A CSV with only a ``frame`` number (``FeatureExtraction -fdir`` reads a folder as one video) does
not say which image a row belongs to and is refused: frame order is an implementation detail of
OpenFace, and a wrong guess would silently mislabel every image.

Where several rows name the same image (several faces), the one with the highest ``confidence``
among those with ``success`` 1 is used. Rows with ``success`` 0 or no number in ``pose_Ry`` give
no pose. The yaw is ``yaw_sign * degrees(pose_Ry)``, binned to the nearest class centre.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from phanet.errors import PhanetError
from phanet.files import open_regular

#: The paper's five AffectNet pose classes (Fig. 7), yaw angles in degrees.
DEFAULT_BINS = [-40, -15, 0, 15, 40]

NAME_COLUMNS = ("file", "filename", "image", "path", "input", "name")


@dataclass(frozen=True)
class HeadPose:
    """Yaw and pitch in degrees (NaN when OpenFace did not track the face)."""

    yaw: float
    pitch: float

    @property
    def tracked(self) -> bool:
        return not math.isnan(self.yaw)


def _key(name: str) -> str:
    """Join key of an image name: forward slashes, no suffix, lower case."""
    text = name.strip().replace("\\", "/")
    path = PurePath(text)
    return str(path.with_suffix("") if path.suffix else path).replace("\\", "/").lower()


def _number(text: str | None) -> float:
    try:
        return float(text) if text is not None else math.nan
    except ValueError:
        return math.nan


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open_regular(path) as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, skipinitialspace=True)
            header = [h.strip() for h in next(reader, [])]
            rows = [dict(zip(header, row)) for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PhanetError(f"{path}: not a readable OpenFace CSV ({exc})") from None
    if "pose_Ry" not in header:
        raise PhanetError(f"{path}: no pose_Ry column (expected OpenFace 2.0 output with head pose)")
    return header, rows


def _best(rows: Iterable[dict[str, str]], yaw_sign: float) -> HeadPose:
    """Pose of the most confident tracked face among ``rows``."""
    best, best_rank = HeadPose(math.nan, math.nan), (-1, -math.inf)
    for row in rows:
        yaw, pitch = _number(row.get("pose_Ry")), _number(row.get("pose_Rx"))
        success = _number(row.get("success", "1")) != 0
        if math.isnan(yaw) or not success:
            continue
        confidence = _number(row.get("confidence", "1"))
        rank = (1, -math.inf if math.isnan(confidence) else confidence)
        if rank > best_rank:
            best_rank = rank
            best = HeadPose(yaw_sign * math.degrees(yaw), math.degrees(pitch) if not math.isnan(pitch) else math.nan)
    return best


def read_openface(source: str | Path, yaw_sign: float = 1.0) -> dict[str, HeadPose]:
    """Head poses from OpenFace output (a CSV file or a folder of per-image CSVs), keyed by image name."""
    path = Path(source)
    if yaw_sign not in (1, -1):
        raise PhanetError(f"data.options.yaw_sign: expected 1 or -1, got {yaw_sign!r}")
    poses: dict[str, HeadPose] = {}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".csv" and p.is_file())
        if not files:
            raise PhanetError(f"{path}: no OpenFace CSV files in this folder")
        for file in files:
            header, rows = _read_rows(file)
            poses[_key(str(file.relative_to(path)))] = _best(rows, yaw_sign)
        return poses
    if not path.exists():
        raise PhanetError(f"data.options.openface_csv: {path} not found")
    header, rows = _read_rows(path)
    lowered = {h.lower(): h for h in header}
    column = next((lowered[c] for c in NAME_COLUMNS if c in lowered), None)
    if column is None:
        raise PhanetError(
            f"{path}: no column naming the image ({', '.join(NAME_COLUMNS)}); rows cannot be joined by "
            "'frame' order. Use FaceLandmarkImg's per-image CSVs (pass their folder) or add a 'file' column"
        )
    grouped: dict[str, list[dict[str, str]]] = {}
    for line, row in enumerate(rows, start=2):
        name = (row.get(column) or "").strip()
        if not name:
            raise PhanetError(f"{path} row {line}: empty {column!r}")
        grouped.setdefault(_key(name), []).append(row)
    return {key: _best(group, yaw_sign) for key, group in grouped.items()}


def join_poses(poses: dict[str, HeadPose], image_paths: Sequence[str], where: str) -> list[HeadPose | None]:
    """The OpenFace pose of each image (None when it has no row).

    An image matches the entry named by its path without suffix, else the single entry with the
    same stem whose name is that stem or ends with (or is the end of) the image's path. An entry
    that matches two images is an error: name the images by path instead of stem.
    """
    by_stem: dict[str, list[str]] = {}
    for key in poses:
        by_stem.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    found: list[HeadPose | None] = []
    claimed: dict[str, str] = {}
    for image in image_paths:
        path_key = _key(image)
        stem = path_key.rsplit("/", 1)[-1]
        if path_key in poses:
            key = path_key
        else:
            near = [k for k in by_stem.get(stem, []) if k == stem or k.endswith("/" + path_key) or path_key.endswith("/" + k)]
            if len(near) > 1:
                raise PhanetError(f"{where}: image {image} matches several OpenFace entries ({', '.join(near[:3])})")
            key = near[0] if near else None
        if key is not None and claimed.setdefault(key, image) != image:
            raise PhanetError(
                f"{where}: OpenFace entry {key!r} matches both {claimed[key]} and {image}; "
                "name the images by their path relative to the dataset root"
            )
        found.append(poses[key] if key is not None else None)
    return found


def nearest_bin(angle: float, centres: Sequence[float]) -> int:
    """Index of the bin centre nearest to ``angle``; a tie goes to the more frontal centre."""
    return min(range(len(centres)), key=lambda i: (abs(angle - centres[i]), abs(centres[i])))
