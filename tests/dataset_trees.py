"""Small dataset trees with the real naming conventions of the paper's datasets, for tests.

Each ``make_*_tree(root, ...)`` writes tiny images (or annotation files) under ``root`` and returns
the records the adapter must produce, one dict per usable image with the manifest columns
``path, subject, expression, pose, intensity`` (and ``face_x, face_y, face_w, face_h`` for
AffectNet's CSV release), as :meth:`LabeledFaces.to_frame` writes them. The images are coloured by
expression and carry a bright bar whose place follows the pose, so a tiny network can learn both.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

KDEF_ANGLES = {"FL": "-90", "HL": "-45", "S": "0", "HR": "45", "FR": "90"}
KDEF_EXPRESSIONS = {"AF": "FE", "AN": "AN", "DI": "DI", "HA": "HA", "NE": "NE", "SA": "SA", "SU": "SU"}
BASIC = ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
MULTIPIE_RECORDINGS = {
    "01": {"01": "NE", "02": "SM"},
    "02": {"01": "NE", "02": "SU", "03": "SQ"},
    "03": {"01": "NE", "02": "SM", "03": "DI"},
    "04": {"01": "NE", "02": "NE", "03": "SC"},
}
MULTIPIE_CAMERAS = {"13_0": "-30", "14_0": "-15", "05_1": "0", "05_0": "15", "04_1": "30"}
AFFECTNET_CLASSES = ["NE", "HA", "SA", "SU", "FE", "DI", "AN", "CO"]
SFEW_FOLDERS = {"Angry": "AN", "Disgust": "DI", "Fear": "FE", "Happy": "HA", "Neutral": "NE", "Sad": "SA", "Surprise": "SU"}
AFFECTNET_CSV_HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"


def write_image(path: Path, size: int = 32, expression: int = 0, pose: int = 0, seed: int = 0) -> Path:
    """A small image: colour from ``expression``, a bright bar at a column from ``pose``, light noise."""
    rng = np.random.default_rng(seed)
    hue = np.array([(37 * expression) % 256, (91 * expression + 40) % 256, (53 * expression + 90) % 256])
    image = np.clip(hue + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    column = (pose * 5 + 2) % max(1, size - 4)
    image[:, column : column + 3] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def write_corrupt_jpeg(path: Path) -> Path:
    """A file named like a JPEG whose data stops after the header (PIL cannot decode it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb")
    return path


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def _record(path: str, subject: str, expression: str, pose: str = "", intensity: int | str = "") -> dict:
    return {"path": path, "subject": subject, "expression": expression, "pose": pose, "intensity": intensity}


def make_kdef_tree(
    root: Path,
    subjects: Sequence[str] = ("F01", "F02", "M01", "M02"),
    sessions: str = "AB",
    expressions: Iterable[str] = tuple(KDEF_EXPRESSIONS),
    angles: Iterable[str] = tuple(KDEF_ANGLES),
    size: int = 32,
) -> list[dict]:
    """``KDEF/AF01/AF01ANFL.JPG``: one folder per session + person, as the release ships it."""
    records = []
    for session in sessions:
        for subject in subjects:
            for expression in expressions:
                for angle in angles:
                    folder = f"{session}{subject}"
                    rel = f"{folder}/{folder}{expression}{angle}.JPG"
                    label = KDEF_EXPRESSIONS[expression]
                    write_image(Path(root) / rel, size, BASIC.index(label), list(KDEF_ANGLES).index(angle), _seed(rel))
                    records.append(_record(rel, subject, label, KDEF_ANGLES[angle]))
    return records


def make_bu3dfe_tree(
    root: Path,
    subjects: Sequence[str] = ("F0001", "F0002", "M0001", "M0002"),
    expressions: Iterable[str] = tuple(BASIC),
    intensities: Iterable[int] = (1, 4),
    yaws: Iterable[int] = (-90, -60, -45, -30, 0, 30, 45, 60, 90),
    size: int = 32,
) -> list[dict]:
    """Rendered views ``<subject>/F0001_AN01_+45.png`` (neutral: ``F0001_NE00_0.png``, intensity 0)."""
    records = []
    yaws = list(yaws)
    for subject in subjects:
        for expression in expressions:
            levels = [0] if expression == "NE" else list(intensities)
            for level in levels:
                for i, yaw in enumerate(yaws):
                    rel = f"{subject}/{subject}_{expression}{level:02d}_{yaw:+d}.png".replace("_+0.", "_0.")
                    write_image(Path(root) / rel, size, BASIC.index(expression), i, _seed(rel))
                    records.append(_record(rel, subject, expression, str(yaw), level))
    return records


def make_multipie_tree(
    root: Path,
    subjects: Sequence[str] = ("001", "002", "003", "004"),
    cameras: Iterable[str] = tuple(MULTIPIE_CAMERAS),
    illuminations: Iterable[str] = ("07",),
    size: int = 32,
) -> list[dict]:
    """``sessionNN/multiview/SSS/RR/CC_C/SSS_NN_RR_CCC_II.png`` for every recording of every session.

    Cameras outside :data:`MULTIPIE_CAMERAS` and illuminations other than 07 are written but not
    returned (the default protocol leaves them out).
    """
    records = []
    classes = ["NE", "DI", "SU", "SM", "SC", "SQ"]
    for session, recordings in MULTIPIE_RECORDINGS.items():
        for subject in subjects:
            for recording, label in recordings.items():
                for camera in cameras:
                    for light in illuminations:
                        name = f"{subject}_{session}_{recording}_{camera.replace('_', '')}_{light}.png"
                        rel = f"session{session}/multiview/{subject}/{recording}/{camera}/{name}"
                        pose = MULTIPIE_CAMERAS.get(camera)
                        write_image(
                            Path(root) / rel,
                            size,
                            classes.index(label),
                            list(MULTIPIE_CAMERAS).index(camera) if pose else 0,
                            _seed(rel),
                        )
                        if pose is not None and light == "07":
                            records.append(_record(rel, subject, label, pose))
    return records


def affectnet_csv_row(path: str, code: int | str, box: Sequence[float] = (4, 4, 24, 24)) -> str:
    """One line of an AffectNet CSV file list."""
    x, y, w, h = box
    landmarks = ";".join(f"{v:.1f}" for v in np.linspace(x, x + w, 6))
    return f"{path},{x},{y},{w},{h},{landmarks},{code},0.1,-0.2"


def make_affectnet_csv_tree(
    root: Path, per_class: int = 3, codes: Iterable[int] = range(11), partition: str = "training", size: int = 32
) -> list[dict]:
    """``Manually_Annotated_file_lists/<partition>.csv`` + ``Manually_Annotated_Images/<sub>/<hash>.jpg``.

    Writes ``per_class`` images of every code in ``codes`` (8-10 included: the protocol leaves them
    out); returns the 8-class records with their face boxes.
    """
    root = Path(root)
    lines, records = [AFFECTNET_CSV_HEADER], []
    margin = min(4.0, size / 4)  # a face box inside the image, even for tiny images
    box = (margin, margin, size - 2 * margin, size - 2 * margin)
    for code in codes:
        for k in range(per_class):
            name = f"{(code * 7 + k) % 5 + 1}/{zlib.crc32(f'{partition}{code}-{k}'.encode()):08x}.jpg"
            write_image(root / "Manually_Annotated_Images" / name, size, code, 0, _seed(name))
            lines.append(affectnet_csv_row(name, code, box))
            if code < 8:
                rel = f"Manually_Annotated_Images/{name}"
                records.append(
                    {
                        **_record(rel, rel.rsplit(".", 1)[0], AFFECTNET_CLASSES[code]),
                        "face_x": box[0],
                        "face_y": box[1],
                        "face_w": box[2],
                        "face_h": box[3],
                    }
                )
    csv = root / "Manually_Annotated_file_lists" / f"{partition}.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text("\n".join(lines) + "\n")
    return records


def make_affectnet_npy_tree(
    root: Path, per_class: int = 2, codes: Iterable[int] = range(8), folder: str = "train_set", size: int = 32
) -> list[dict]:
    """The newer release: ``train_set/images/<i>.jpg`` + ``train_set/annotations/<i>_exp.npy`` (code as text)."""
    root = Path(root)
    records, index = [], 0
    for code in codes:
        for _ in range(per_class):
            rel = f"{folder}/images/{index}.jpg"
            write_image(root / rel, size, code, 0, _seed(rel))
            (root / folder / "annotations").mkdir(parents=True, exist_ok=True)
            np.save(root / folder / "annotations" / f"{index}_exp.npy", np.array(str(code)))
            np.save(root / folder / "annotations" / f"{index}_val.npy", np.array("0.25"))
            if code < 8:
                records.append(_record(rel, rel.rsplit(".", 1)[0], AFFECTNET_CLASSES[code]))
            index += 1
    return records


def make_sfew_tree(root: Path, per_class: int = 2, partitions: Sequence[str] = ("Train", "Val"), size: int = 32) -> list[dict]:
    """``Train/<Emotion>/<movie>_<frame>.png`` and ``Val/...``; no pose, each image its own subject."""
    records = []
    for partition in partitions:
        for folder, label in SFEW_FOLDERS.items():
            for k in range(per_class):
                rel = f"{partition}/{folder}/Movie{k}_{BASIC.index(label):03d}{k:05d}.png"
                write_image(Path(root) / rel, size, BASIC.index(label), 0, _seed(rel))
                records.append(_record(rel, rel.rsplit(".", 1)[0], label))
    return records


def frame_records(faces, columns: Sequence[str] = ("path", "subject", "expression", "pose", "intensity")) -> list[dict]:
    """The parsed samples as records comparable with a builder's, sorted by path."""
    table = faces.to_frame()
    rows = [{c: row[c] for c in columns} for row in table.to_dict("records")]
    return sorted(rows, key=lambda r: r["path"])


def assert_records(faces, expected: list[dict]) -> None:
    """Every parsed sample equals its expected record, file by file, and nothing else was parsed."""
    columns = list(expected[0]) if expected else ["path"]
    got = {r["path"]: r for r in frame_records(faces, columns)}
    want = {r["path"]: r for r in expected}
    assert sorted(got) == sorted(want), (sorted(set(got) ^ set(want)))[:5]
    for path, record in want.items():
        assert got[path] == record, (path, got[path], record)
