"""phanet prepare: crops, manifest, report, resuming, and never overwriting without being asked."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from dataset_trees import make_affectnet_csv_tree, write_corrupt_jpeg
from phanet.data import prepare as prepare_module
from phanet.data.io import read_image
from phanet.data.prepare import prepare_faces
from phanet.data.registry import load_dataset
from phanet.errors import PhanetError

SOURCE = {"dataset": "kdef", "root": "tree", "options": {}}


@pytest.fixture
def tree(tmp_path):
    """A KDEF-named tree: two photos with a face, one blank image, one corrupt file."""
    root = tmp_path / "KDEF"
    (root / "AF01").mkdir(parents=True)
    photo = cv2.resize(data.astronaut(), (160, 160), interpolation=cv2.INTER_AREA)
    Image.fromarray(photo).save(root / "AF01" / "AF01ANS.JPG", quality=95)
    Image.fromarray(np.ascontiguousarray(photo[:, ::-1])).save(root / "AF01" / "AF01HAS.JPG", quality=95)
    Image.fromarray(np.full((120, 100, 3), 90, np.uint8)).save(root / "AF01" / "AF01NEHL.JPG")
    write_corrupt_jpeg(root / "AF01" / "AF01DIS.JPG")
    (root / "AF01" / "notes.txt").write_text("x")
    return root


def run(tree, out, **kwargs):
    faces = load_dataset("kdef", str(tree))
    return faces, prepare_faces(faces, out, SOURCE, size=kwargs.pop("size", 48), progress=False, **kwargs)


def test_crops_manifest_and_report(tree, tmp_path):
    out = tmp_path / "out"
    faces, result = run(tree, out)
    assert result.counts == {"face": 2, "no_face": 1, "unreadable": 1}
    manifest = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    assert manifest[["path", "subject", "expression", "pose"]].values.tolist() == [
        ["images/AF01/AF01ANS.png", "F01", "AN", "0"],
        ["images/AF01/AF01HAS.png", "F01", "HA", "0"],
    ]
    assert (manifest[["face_x", "face_w"]] == "").all().all()
    crop = read_image(out / "images" / "AF01" / "AF01ANS.png")
    assert crop.shape == (48, 48, 3)
    report = pd.read_csv(out / "report.csv", dtype=str).values.tolist()
    assert report == [
        ["AF01/AF01DIS.JPG", "unreadable", "not a readable image (UnidentifiedImageError)"],
        ["AF01/AF01NEHL.JPG", "no_face", "no face found; skipped"],
        ["AF01/notes.txt", "skipped", "not a KDEF name like AF01ANFL.JPG"],
    ]
    assert json.loads((out / "classes.json").read_text()) == {"expressions": faces.expressions, "poses": faces.poses}
    prepared = load_dataset("generic", str(out))
    assert prepared.expressions == faces.expressions and prepared.poses == faces.poses
    assert [(s.path, s.subject) for s in prepared.samples] == [
        ("images/AF01/AF01ANS.png", "F01"),
        ("images/AF01/AF01HAS.png", "F01"),
    ]
    assert prepared.load_image(1).shape == (48, 48, 3)


def test_centre_crop_fallback(tree, tmp_path):
    _, result = run(tree, tmp_path / "out", no_face="center", image_format="jpg")
    assert result.counts == {"face": 2, "center": 1, "unreadable": 1}
    assert read_image(tmp_path / "out" / "images" / "AF01" / "AF01NEHL.jpg").shape == (48, 48, 3)
    assert {"path": "AF01/AF01NEHL.JPG", "problem": "center", "detail": "no face found; centre crop"} in result.problems


def test_resume_redoes_only_what_is_unfinished(tree, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(tree, out)
    journal = (out / "journal.jsonl").read_text().splitlines()
    # an interrupted run: the last crop half-written (temporary name) and its journal line cut short
    done = out / "images" / "AF01" / "AF01HAS.png"
    done.rename(done.with_name(done.name + ".partial"))
    last = next(i for i, line in enumerate(journal) if "AF01HAS" in line)
    (out / "journal.jsonl").write_text("\n".join(journal[:last] + journal[last + 1 :]) + "\n" + journal[last][:15])
    calls = []
    original = prepare_module._crop_one
    monkeypatch.setattr(prepare_module, "_crop_one", lambda task: calls.append(task.key) or original(task))
    _, result = run(tree, out)
    # the unreadable file is tried again, the face-less one is not
    assert sorted(calls) == ["images/AF01/AF01DIS.png", "images/AF01/AF01HAS.png"]
    assert result.counts == {"face": 2, "no_face": 1, "unreadable": 1}
    assert done.is_file() and not list(out.rglob("*.partial"))
    calls.clear()
    run(tree, out)
    assert calls == ["images/AF01/AF01DIS.png"]


@pytest.mark.slow
def test_refuses_to_overwrite_without_being_asked(tree, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(PhanetError, match=r"^out: .* is not empty and is not a phanet prepare output; .* pass overwrite$"):
        run(tree, mine)
    out = tmp_path / "out"
    run(tree, out)
    with pytest.raises(PhanetError, match=r"holds a prepare run with other settings \(size\)"):
        run(tree, out, size=64)
    _, result = run(tree, out, size=64, overwrite=True)
    assert read_image(out / "images" / "AF01" / "AF01ANS.png").shape == (64, 64, 3)
    run(tree, mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "precious" and (mine / "manifest.csv").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(PhanetError, match=r"^out: .* is a file"):
        run(tree, tmp_path / "file")


@pytest.mark.slow
def test_dataset_boxes_and_workers(tmp_path):
    root = tmp_path / "affectnet"
    make_affectnet_csv_tree(root, per_class=1, codes=range(8), size=40)
    faces = load_dataset("affectnet", str(root))
    result = prepare_faces(
        faces, tmp_path / "out", {"dataset": "affectnet"}, size=32, margin=0.0, use_boxes=True, workers=2, progress=False
    )
    assert result.counts == {"box": 8}
    first = faces.samples[0]
    crop = read_image(tmp_path / "out" / "images" / first.path.replace(".jpg", ".png"))
    expected = cv2.resize(read_image(faces.image_path(first))[4:36, 4:36], (32, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(crop.astype(int) - expected.astype(int)).max() <= 1
    kdef = tmp_path / "kdef"
    (kdef / "AF01").mkdir(parents=True)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(kdef / "AF01" / "AF01ANS.JPG")
    with pytest.raises(PhanetError, match=r"^use_boxes: dataset 'kdef' has no face boxes"):
        prepare_faces(load_dataset("kdef", str(kdef)), tmp_path / "out2", SOURCE, use_boxes=True, progress=False)


def test_the_detector_is_recorded_and_a_run_resumes_only_with_the_same_one(tree, tmp_path):
    out = tmp_path / "out"
    _, result = run(tree, out)
    assert json.loads((out / "prepare.json").read_text())["settings"]["detector"] == "yunet"
    assert {json.loads(line)["detail"] for line in (out / "journal.jsonl").read_text().splitlines()} >= {"yunet"}
    with pytest.raises(PhanetError, match=r"holds a prepare run with other settings \(detector\)"):
        run(tree, out, detector="haar")
    # The cascades, the only detector of earlier versions, are recorded as those versions recorded them: not at all.
    _, haar = run(tree, tmp_path / "haar", detector="haar")
    assert "detector" not in json.loads((tmp_path / "haar" / "prepare.json").read_text())["settings"]
    assert haar.counts == result.counts == {"face": 2, "no_face": 1, "unreadable": 1}
    with pytest.raises(PhanetError, match=r"^detector: expected one of yunet, haar, got 'mtcnn'$"):
        run(tree, tmp_path / "other", detector="mtcnn")
