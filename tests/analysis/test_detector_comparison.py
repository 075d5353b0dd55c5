"""The detector comparison: matching detections to faces, the photographs shipped in packages, the summaries."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from phanet.analysis import detectors as comparison
from phanet.analysis.detectors import PHOTOS, Photo, iou, match, measure_photos, photo_summary, render_summary


def test_iou_and_matching_by_hand():
    assert iou((0, 0, 10, 10), (1, 1, 10, 10)) == pytest.approx(81 / 119)
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    faces = [(0, 0, 10, 10), (20, 0, 10, 10)]
    assert match([(1, 1, 10, 10), (50, 50, 5, 5)], faces) == (1, 1)
    assert match([(1, 1, 10, 10), (0, 0, 11, 11)], faces[:1]) == (1, 1)  # one face is found once
    assert match([(0, 0, 30, 30)], faces) == (0, 1)  # IoU 1/9 with each: too loose a box
    assert match([], faces) == (0, 0) and match([(0, 0, 5, 5)], []) == (0, 1)


def test_the_photographs_and_their_faces():
    faces = [p for p in PHOTOS if p.faces]
    assert len(faces) == 13 and sum(len(p.faces) for p in faces) == 22 and len(PHOTOS) - len(faces) == 7
    for photo, image in comparison.photographs(None, [p for p in PHOTOS if not p.wheel]):
        assert image is not None, photo.member  # scikit-image and matplotlib come with the tests
        height, width = image.shape[:2]
        assert all(min(x, y) >= 0 and x + w <= width and y + h <= height for x, y, w, h in photo.faces)


def test_a_photograph_is_read_from_its_wheel(tmp_path):
    Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(tmp_path / "face.png")
    with zipfile.ZipFile(tmp_path / "demo-1.0-py3-none-any.whl", "w") as wheel:
        wheel.write(tmp_path / "face.png", "demo/data/face.png")
    photos = [Photo("demo", f"demo/data/{name}", (), "demo-1.0-*.whl") for name in ("face.png", "gone.png")]
    found = list(comparison.photographs(tmp_path, photos))
    assert found[0][1] is not None and found[0][1].shape == (40, 50, 3) and found[1][1] is None
    assert [image for _, image in comparison.photographs(None, photos)] == [None, None]  # no wheel folder given


def test_measuring_the_astronaut_and_the_cat():
    photos = [p for p in PHOTOS if p.name in ("astronaut.png", "chelsea.png")]
    table = measure_photos(photos=photos, repeats=1)
    assert table[["photo", "detector", "faces", "found", "false"]].values.tolist() == [
        ["astronaut.png", "yunet", 1, 1, 0],
        ["astronaut.png", "haar", 1, 1, 0],
        ["chelsea.png", "yunet", 0, 0, 0],
        ["chelsea.png", "haar", 0, 0, 0],
    ]
    summary = photo_summary(table)
    assert summary[["detector", "photographs", "faces", "found", "recall", "false positives"]].values.tolist() == [
        ["yunet", 2, 1, 1, "100%", 0],
        ["haar", 2, 1, 1, "100%", 0],
    ]


def test_the_render_summary_gives_recall_per_yaw():
    table = pd.DataFrame(
        {
            "yaw": [-90.0, -90.0, 0.0, 0.0] * 2,
            "placement": ["as rendered"] * 8,
            "detector": ["yunet"] * 4 + ["haar"] * 4,
            "found": [1, 0, 1, 1, 0, 0, 1, 0],
            "false": [0, 0, 0, 1, 2, 0, 0, 0],
            "ms": [1.0, 2.0, 3.0, 4.0] * 2,
        }
    )
    summary = render_summary(table)
    assert summary.columns.tolist() == ["renders", "detector", "-90°", "0°", "all", "false positives", "ms per render (median)"]
    assert summary.values.tolist() == [
        ["as rendered", "yunet", "50%", "100%", "75%", 1, "2.5"],
        ["as rendered", "haar", "0%", "50%", "25%", 2, "2.5"],
    ]


@pytest.mark.slow
def test_measuring_the_renders_of_one_subject():
    table = comparison.measure_renders(subjects=1)
    assert len(table) == 9 * 7 * 2 * 2  # yaws x (six expressions at intensity 4, neutral) x placements x detectors
    frontal = table[(table["yaw"] == 0) & (table["detector"] == "yunet")]
    assert frontal["found"].tolist() == [1] * 14 and frontal["false"].sum() == 0
