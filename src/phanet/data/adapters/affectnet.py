"""AffectNet: in-the-wild faces with one expression label each (no subject ids, no pose labels).

Two releases are read:

- **CSV release**: ``Manually_Annotated_file_lists/{training,validation}.csv`` with the header
  ``subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks, expression,
  valence, arousal`` and images under ``Manually_Annotated_Images/<subDirectory_filePath>``. The
  face box of each row becomes the sample's box.
- **Newer release**: ``train_set/images/<i>.jpg`` with ``train_set/annotations/<i>_exp.npy`` (and
  ``val_set/``), already cropped faces.

Expression codes 0-10 are Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger, Contempt, None,
Uncertain, Non-Face. The 8-class protocol keeps 0-7, the 7-class one also drops Contempt; the other
codes are protocol exclusions (skipped and counted). Any other value is an error naming the row.

AffectNet has no subject ids: every image is its own subject, and the official training /
validation partition is the train / test split (``partition``). Yaw angles come from an OpenFace
CSV (:mod:`phanet.data.openface`), binned into the ``poses`` classes; images without one keep their
expression and have no pose (masked out of the pose loss).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pandas as pd

from phanet.data.adapters.common import build_faces, dataset_root, excluded, yaw_names
from phanet.data.openface import DEFAULT_BINS, join_poses, nearest_bin, read_openface
from phanet.data.records import LabeledFaces
from phanet.data.registry import register_dataset
from phanet.errors import PhanetError
from phanet.files import NotAFile, open_regular

#: AffectNet's expression codes 0-10.
AFFECTNET_NAMES = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt", "None", "Uncertain", "Non-Face"]
#: Class names of codes 0-7, written as the paper writes them (Fig. 7), in code order.
AFFECTNET_CLASSES = ["NE", "HA", "SA", "SU", "FE", "DI", "AN", "CO"]

CSV_FOLDER = "Manually_Annotated_file_lists"
CSV_NAMES = {"training": "training.csv", "validation": "validation.csv"}
NPY_FOLDERS = {"training": "train_set", "validation": "val_set"}
PARTITIONS = ("training", "validation", "both")
LAYOUT = f"{CSV_FOLDER}/training.csv + Manually_Annotated_Images/, or train_set/images + train_set/annotations"


def _code(value: object, where: str) -> int:
    text = str(value).strip()
    if not text.isdigit() or int(text) > 10:
        raise PhanetError(f"{where}: expression {text!r} is not an AffectNet code (0-10)")
    return int(text)


def _label(code: int, classes: int) -> str | None:
    """Class name of ``code`` under the ``classes``-class protocol, None when the protocol leaves it out."""
    return AFFECTNET_CLASSES[code] if code < classes else None


def _csv_rows(base: Path, partition: str, images_dir: str, classes: int, skipped: list) -> list[dict]:
    folder = base / CSV_FOLDER if (base / CSV_FOLDER).is_dir() else base
    path = folder / CSV_NAMES[partition]
    if not path.is_file():
        raise PhanetError(f"data.root: {path} not found (the affectnet dataset expects {LAYOUT})")
    try:
        with open_regular(path) as handle:
            table = pd.read_csv(handle, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise PhanetError(f"{path}: not a readable AffectNet CSV ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    for column in ("subDirectory_filePath", "expression"):
        if column not in table.columns:
            raise PhanetError(
                f"{path}: missing column {column!r} (expected the AffectNet header "
                "subDirectory_filePath, face_x, face_y, face_width, face_height, ..., expression)"
            )
    box_columns = ("face_x", "face_y", "face_width", "face_height")
    has_box = all(c in table.columns for c in box_columns)
    rows = []
    for line, row in enumerate(table.to_dict("records"), start=2):
        where = f"{path} row {line}"
        image = f"{images_dir}/{row['subDirectory_filePath'].strip()}"
        code = _code(row["expression"], where)
        label = _label(code, classes)
        if label is None:
            skipped.append((image, excluded(f"code {code} ({AFFECTNET_NAMES[code]}) not in the {classes}-class protocol")))
            continue
        entry = {"path": image, "subject": image.rsplit(".", 1)[0], "expression": label}
        if has_box and all(str(row[c]).strip() for c in box_columns):
            try:
                box = [float(row[c]) for c in box_columns]
            except ValueError:
                raise PhanetError(f"{where}: face box {[row[c] for c in box_columns]} is not four numbers") from None
            entry.update(zip(("face_x", "face_y", "face_w", "face_h"), box))
        rows.append(entry)
    return rows


def _npy_rows(base: Path, partition: str, classes: int, skipped: list) -> list[dict]:
    folder = base / NPY_FOLDERS[partition]
    annotations = folder / "annotations"
    if not annotations.is_dir():
        raise PhanetError(f"data.root: {annotations} not found (the affectnet dataset expects {LAYOUT})")
    images = {p.stem: p for p in (folder / "images").glob("*") if p.is_file() and not p.name.startswith(".")}
    ids = sorted(
        (p.name[: -len("_exp.npy")] for p in annotations.glob("*_exp.npy")),
        key=lambda i: (not i.isdigit(), int(i) if i.isdigit() else 0, i),
    )
    rows = []
    for ident in ids:
        label_file = annotations / f"{ident}_exp.npy"
        rel_label = str(label_file.relative_to(base))
        try:
            with open_regular(label_file) as handle:
                value = np.load(handle, allow_pickle=False).reshape(-1)[0]
        except NotAFile as exc:
            skipped.append((rel_label, str(exc).rsplit(": ", 1)[-1]))
            continue
        except (OSError, ValueError, IndexError, EOFError) as exc:
            skipped.append((rel_label, f"unreadable annotation ({type(exc).__name__})"))
            continue
        code = _code(value, str(label_file))
        image = images.pop(ident, None)
        rel_image = str(image.relative_to(base)) if image else f"{NPY_FOLDERS[partition]}/images/{ident}.jpg"
        label = _label(code, classes)
        if label is None:
            skipped.append((rel_image, excluded(f"code {code} ({AFFECTNET_NAMES[code]}) not in the {classes}-class protocol")))
            continue
        rows.append({"path": rel_image, "subject": rel_image.rsplit(".", 1)[0], "expression": label})
    skipped.extend((str(p.relative_to(base)), "no annotations/<id>_exp.npy for this image") for p in images.values())
    return rows


def _cap_per_class(rows: list[dict], limit: int, skipped: list) -> list[dict]:
    """At most ``limit`` rows per class, chosen by a fixed-seed shuffle (the same rows on every run)."""
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    taken: dict[str, int] = {}
    keep = set()
    for i in order:
        label = rows[i]["expression"]
        if taken.get(label, 0) < limit:
            taken[label] = taken.get(label, 0) + 1
            keep.add(i)
    skipped.extend((r["path"], excluded(f"over max_per_class={limit}")) for i, r in enumerate(rows) if i not in keep)
    return [r for i, r in enumerate(rows) if i in keep]


def _check_options(base: Path, partition: str, classes: int, release: str, missing: str, max_per_class: int | None) -> str:
    """The options of :func:`load_affectnet` checked; the release to read (``auto`` resolved)."""
    if partition not in PARTITIONS:
        raise PhanetError(f"data.options.partition: expected one of {', '.join(PARTITIONS)}, got {partition!r}")
    if classes not in (7, 8):
        raise PhanetError(f"data.options.classes: expected 7 or 8, got {classes!r}")
    if release == "auto":
        release = "csv" if (base / CSV_FOLDER).is_dir() or (base / "training.csv").is_file() else "npy"
    if release not in ("csv", "npy"):
        raise PhanetError(f"data.options.release: expected auto, csv or npy, got {release!r}")
    if missing not in ("skip", "error"):
        raise PhanetError(f"data.options.missing: expected 'skip' or 'error', got {missing!r}")
    if max_per_class is not None and (isinstance(max_per_class, bool) or not isinstance(max_per_class, int) or max_per_class < 1):
        raise PhanetError(f"data.options.max_per_class: expected a positive whole number, got {max_per_class!r}")
    return release


def _label_poses(rows: list[dict], base: Path, openface_csv: str, poses: list[float], yaw_sign: int) -> list[str]:
    """Give each row tracked by OpenFace its yaw class (nearest centre of ``poses``), yaw and pitch; the
    pose class names."""
    pose_names = yaw_names(poses, "poses")
    centres = [float(p) for p in pose_names]
    head_poses = join_poses(read_openface(openface_csv, yaw_sign), [r["path"] for r in rows], str(openface_csv))
    if rows and not any(head_poses):
        raise PhanetError(
            f"data.options.openface_csv: none of its entries matches an image of {base} "
            "(entries are joined on the image path or file stem)"
        )
    for row, head in zip(rows, head_poses):
        if head is not None and head.tracked:
            row.update(
                pose=pose_names[nearest_bin(head.yaw, centres)], yaw=head.yaw, pitch="" if math.isnan(head.pitch) else head.pitch
            )
    return pose_names


@register_dataset("affectnet", "AffectNet: CSV release with face boxes or train_set/annotations/*_exp.npy; 7/8 classes")
def load_affectnet(
    root: str | None,
    partition: str = "training",
    classes: int = 8,
    release: str = "auto",
    images_dir: str = "Manually_Annotated_Images",
    openface_csv: str | None = None,
    poses: list[float] = DEFAULT_BINS,
    yaw_sign: int = 1,
    box_margin: float = 0.0,
    max_per_class: int | None = None,
    missing: str = "skip",
) -> LabeledFaces:
    """Load AffectNet from ``root``.

    Args:
        partition: ``training``, ``validation`` (the usual test set) or ``both``.
        classes: 8 (codes 0-7) or 7 (drops Contempt).
        release: ``csv``, ``npy`` or ``auto`` (the CSV release when its file lists exist).
        images_dir: folder of the CSV release's images, relative to ``root``.
        openface_csv: OpenFace output (CSV file or folder of per-image CSVs) giving each image's yaw.
        poses: the pose classes, yaw centres in degrees; each yaw goes to the nearest one.
        yaw_sign: 1 or -1; the yaw is ``yaw_sign * degrees(pose_Ry)``.
        box_margin: margin around the CSV face box when images are loaded, as a fraction of its size.
        max_per_class: keep at most this many images per class (fixed-seed choice), e.g. for a
            training set of the paper's size.
        missing: ``skip`` (count) or ``error`` for rows whose image file is not there.
    """
    base = dataset_root(root, "affectnet", LAYOUT)
    release = _check_options(base, partition, classes, release, missing, max_per_class)
    skipped: list[tuple[str, str]] = []
    rows: list[dict] = []
    for part in ("training", "validation") if partition == "both" else (partition,):
        if release == "csv":
            rows += _csv_rows(base, part, images_dir, classes, skipped)
        else:
            rows += _npy_rows(base, part, classes, skipped)
    if max_per_class is not None:
        rows = _cap_per_class(rows, max_per_class, skipped)
    pose_names = _label_poses(rows, base, openface_csv, poses, yaw_sign) if openface_csv is not None else []
    faces = build_faces("affectnet", base, rows, skipped, AFFECTNET_CLASSES[:classes], pose_names, where=str(base))
    absent = next((path for path, reason in faces.skipped if reason == "file not found"), None)
    if missing == "error" and absent is not None:
        raise PhanetError(f"{absent}: image file not found (set data.options.missing: skip to skip such rows)")
    faces.box_margin = float(box_margin)
    return faces
