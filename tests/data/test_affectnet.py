"""AffectNet: both releases, the 7/8-class protocols, face boxes, and pose classes from OpenFace."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dataset_trees import (
    AFFECTNET_CSV_HEADER,
    affectnet_csv_row,
    assert_records,
    make_affectnet_csv_tree,
    make_affectnet_npy_tree,
    write_corrupt_jpeg,
    write_image,
)
from phanet.data.adapters.common import is_excluded
from phanet.data.openface import HeadPose, join_poses, nearest_bin
from phanet.data.records import MISSING
from phanet.data.registry import load_dataset
from phanet.data.verify import without_unreadable
from phanet.errors import PhanetError

BOX = ["face_x", "face_y", "face_w", "face_h"]


def test_csv_release_file_by_file_with_boxes(tmp_path):
    expected = make_affectnet_csv_tree(tmp_path, per_class=2, size=32)
    faces = load_dataset("affectnet", str(tmp_path))
    assert_records(faces, expected)
    assert faces.expressions == ["NE", "HA", "SA", "SU", "FE", "DI", "AN", "CO"]
    assert faces.poses == [] and all(s.pose == MISSING for s in faces.samples)
    assert faces.counts()["expression"] == {e: 2 for e in faces.expressions}
    # no subject ids: each image is its own subject
    assert len(faces.subjects()) == len(faces) == 16
    assert all(s.box == (4.0, 4.0, 24.0, 24.0) for s in faces.samples)
    assert faces.load_image(0).shape == (24, 24, 3)
    excluded = [(p, r) for p, r in faces.skipped if is_excluded(r)]
    assert sorted(r for _, r in excluded) == sorted(
        [
            f"excluded: code {c} ({n}) not in the 8-class protocol"
            for c, n in [(8, "None"), (9, "Uncertain"), (10, "Non-Face")]
            for _ in range(2)
        ]
    )
    assert len(faces.skipped) == 6


def test_seven_class_protocol_drops_contempt(tmp_path):
    make_affectnet_csv_tree(tmp_path, per_class=1, size=16)
    faces = load_dataset("affectnet", str(tmp_path), classes=7)
    assert faces.expressions == ["NE", "HA", "SA", "SU", "FE", "DI", "AN"]
    assert len(faces) == 7
    assert sum("code 7 (Contempt) not in the 7-class protocol" in r for _, r in faces.skipped) == 1
    with pytest.raises(PhanetError, match=r"data.options.classes: expected 7 or 8, got 6"):
        load_dataset("affectnet", str(tmp_path), classes=6)


def test_missing_and_corrupt_images_are_skipped_and_counted(tmp_path):
    expected = make_affectnet_csv_tree(tmp_path, per_class=1, codes=range(8), size=16)
    csv = tmp_path / "Manually_Annotated_file_lists" / "training.csv"
    csv.write_text(csv.read_text() + affectnet_csv_row("9/gone.jpg", 1) + "\n" + affectnet_csv_row("9/bad.jpg", 2) + "\n")
    write_corrupt_jpeg(tmp_path / "Manually_Annotated_Images" / "9" / "bad.jpg")
    faces = load_dataset("affectnet", str(tmp_path))
    assert [(p.replace("\\", "/").rsplit("/", 3)[-3:], r) for p, r in faces.skipped] == [
        (["Manually_Annotated_Images", "9", "gone.jpg"], "file not found")
    ]
    checked = without_unreadable(faces, progress=False)
    assert_records(checked, expected)
    assert checked.skipped[-1] == ("Manually_Annotated_Images/9/bad.jpg", "not a readable image (UnidentifiedImageError)")
    with pytest.raises(PhanetError, match=r"gone.jpg: image file not found \(set data.options.missing: skip"):
        load_dataset("affectnet", str(tmp_path), missing="error")


@pytest.mark.parametrize("code", ["11", "x", "-1", ""])
def test_unknown_expression_code_names_the_row(tmp_path, code):
    make_affectnet_csv_tree(tmp_path, per_class=1, codes=range(3), size=16)
    csv = tmp_path / "Manually_Annotated_file_lists" / "training.csv"
    csv.write_text(csv.read_text() + affectnet_csv_row("1/odd.jpg", code) + "\n")
    with pytest.raises(PhanetError) as info:
        load_dataset("affectnet", str(tmp_path))
    assert str(info.value) == f"{csv} row 5: expression {code!r} is not an AffectNet code (0-10)"


def test_bad_csv_header_and_box(tmp_path):
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir()
    (lists / "training.csv").write_text("path,label\n1/a.jpg,1\n")
    with pytest.raises(PhanetError, match=r"training.csv: missing column 'subDirectory_filePath'"):
        load_dataset("affectnet", str(tmp_path))
    (lists / "training.csv").write_text(AFFECTNET_CSV_HEADER + "\n1/a.jpg,1,2,wide,4,,3,0,0\n")
    with pytest.raises(PhanetError, match=r"training.csv row 2: face box .* is not four numbers"):
        load_dataset("affectnet", str(tmp_path))
    with pytest.raises(PhanetError, match=r"validation.csv not found"):
        load_dataset("affectnet", str(tmp_path), partition="validation")


def test_partitions(tmp_path):
    train = make_affectnet_csv_tree(tmp_path, per_class=1, codes=range(8), partition="training", size=16)
    val = make_affectnet_csv_tree(tmp_path, per_class=2, codes=range(8), partition="validation", size=16)
    assert_records(load_dataset("affectnet", str(tmp_path), partition="validation"), val)
    assert_records(load_dataset("affectnet", str(tmp_path), partition="both"), train + val)
    with pytest.raises(PhanetError, match=r"data.options.partition: expected one of training, validation, both"):
        load_dataset("affectnet", str(tmp_path), partition="test")


def test_max_per_class_is_deterministic(tmp_path):
    make_affectnet_csv_tree(tmp_path, per_class=4, codes=range(8), size=16)
    first = load_dataset("affectnet", str(tmp_path), max_per_class=3)
    again = load_dataset("affectnet", str(tmp_path), max_per_class=3)
    assert [s.path for s in first.samples] == [s.path for s in again.samples]
    assert first.counts()["expression"] == {e: 3 for e in first.expressions}
    assert sum(r == "excluded: over max_per_class=3" for _, r in first.skipped) == 8


def test_npy_release_file_by_file(tmp_path):
    expected = make_affectnet_npy_tree(tmp_path, per_class=2, codes=range(11), size=16)
    (tmp_path / "train_set" / "annotations" / "99_exp.npy").write_bytes(b"not npy")
    write_image(tmp_path / "train_set" / "images" / "77.jpg")  # image without annotation
    np.save(tmp_path / "train_set" / "annotations" / "50_exp.npy", np.array("3"))  # annotation without image
    faces = load_dataset("affectnet", str(tmp_path), partition="training")
    assert_records(faces, expected)
    r = dict(faces.skipped)
    assert r["train_set/annotations/99_exp.npy"] == "unreadable annotation (ValueError)"
    assert r["train_set/images/77.jpg"] == "no annotations/<id>_exp.npy for this image"
    assert any(p.endswith("train_set/images/50.jpg") and reason == "file not found" for p, reason in faces.skipped)
    assert sum(is_excluded(reason) for reason in r.values()) == 6
    np.save(tmp_path / "train_set" / "annotations" / "60_exp.npy", np.array("12"))
    with pytest.raises(PhanetError, match=r"60_exp.npy: expression '12' is not an AffectNet code \(0-10\)"):
        load_dataset("affectnet", str(tmp_path))
    with pytest.raises(PhanetError, match=r"val_set/annotations not found"):
        load_dataset("affectnet", str(tmp_path), partition="validation")


# --- OpenFace pose labels ---------------------------------------------------------------------

OPENFACE_HEADER = "frame, face_id, timestamp, confidence, success, pose_Tx, pose_Ty, pose_Tz, pose_Rx, pose_Ry, pose_Rz"


def openface_line(yaw_degrees: float, confidence: float = 0.9, success: int = 1, pitch_degrees: float = 5.0) -> str:
    return (
        f"1, 0, 0.000, {confidence}, {success}, 1.0, 2.0, 300.0, {math.radians(pitch_degrees):.6f}, "
        f"{math.radians(yaw_degrees):.6f}, 0.01"
    )


@pytest.mark.parametrize(
    "angle, centre",
    [(-90, -40), (-27.6, -40), (-27.4, -15), (-7.5, 0), (7.5, 0), (7.6, 15), (27.5, 15), (28, 40), (61, 40), (0, 0)],
)
def test_nearest_bin(angle, centre):
    centres = [-40, -15, 0, 15, 40]
    assert centres[nearest_bin(angle, centres)] == centre


def test_openface_folder_of_per_image_csvs(tmp_path):
    make_affectnet_csv_tree(tmp_path, per_class=1, codes=range(8), size=16)
    faces = load_dataset("affectnet", str(tmp_path))
    openface = tmp_path / "openface"
    yaws = [-50.0, -20.0, 3.0, 12.0, 33.0, 0.0]
    for sample, yaw in zip(faces.samples, yaws):
        out = openface / (sample.path.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".csv")
        out.parent.mkdir(parents=True, exist_ok=True)
        lines = [OPENFACE_HEADER, openface_line(yaw)]
        if yaw == 0.0:  # a failed track: no pose
            lines = [OPENFACE_HEADER, openface_line(25.0, success=0)]
        out.write_text("\n".join(lines) + "\n")
    # two faces in one image: the more confident wins
    first = openface / (faces.samples[0].path.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".csv")
    first.write_text("\n".join([OPENFACE_HEADER, openface_line(-50.0, 0.4), openface_line(14.0, 0.95)]) + "\n")
    labelled = load_dataset("affectnet", str(tmp_path), openface_csv=str(openface))
    assert labelled.poses == ["-40", "-15", "0", "15", "40"]
    got = [labelled.poses[s.pose] if s.pose != MISSING else None for s in labelled.samples]
    assert got == ["15", "-15", "0", "15", "40", None, None, None]
    assert labelled.samples[1].yaw == pytest.approx(-20.0, abs=1e-3)
    assert labelled.samples[1].pitch == pytest.approx(5.0, abs=1e-3)
    assert math.isnan(labelled.samples[6].yaw)
    assert labelled.counts()["pose"] == {"-40": 0, "-15": 1, "0": 1, "15": 2, "40": 1, "(none)": 3}
    # yaw sign flipped (14, -20, 3, 12, 33 -> -14, 20, -3, -12, -33) and three bins
    flipped = load_dataset("affectnet", str(tmp_path), openface_csv=str(openface), yaw_sign=-1, poses=[-30, 0, 30])
    assert [flipped.poses[s.pose] if s.pose != MISSING else None for s in flipped.samples][:5] == ["0", "30", "0", "0", "-30"]


def test_openface_single_csv_with_a_file_column(tmp_path):
    make_affectnet_csv_tree(tmp_path, per_class=1, codes=range(3), size=16)
    faces = load_dataset("affectnet", str(tmp_path))
    names = [s.path for s in faces.samples]
    table = tmp_path / "poses.csv"
    table.write_text(
        "\n".join(
            [
                "file, " + OPENFACE_HEADER,
                f"/mnt/affectnet/{names[0]}, " + openface_line(-44),  # absolute path
                f"{names[1].split('/', 1)[1]}, " + openface_line(16),  # relative to the image folder
            ]
        )
        + "\n"
    )
    labelled = load_dataset("affectnet", str(tmp_path), openface_csv=str(table))
    assert [labelled.poses[s.pose] if s.pose != MISSING else None for s in labelled.samples] == ["-40", "15", None]


def test_openface_join_errors(tmp_path):
    make_affectnet_csv_tree(tmp_path, per_class=1, codes=range(3), size=16)
    frames = tmp_path / "frames.csv"
    frames.write_text(OPENFACE_HEADER + "\n" + openface_line(10) + "\n")
    with pytest.raises(PhanetError, match=r"frames.csv: no column naming the image .* cannot be joined by 'frame' order"):
        load_dataset("affectnet", str(tmp_path), openface_csv=str(frames))
    nopose = tmp_path / "nopose.csv"
    nopose.write_text("file, confidence\n1/a.jpg, 0.9\n")
    with pytest.raises(PhanetError, match=r"nopose.csv: no pose_Ry column"):
        load_dataset("affectnet", str(tmp_path), openface_csv=str(nopose))
    other = tmp_path / "other.csv"
    other.write_text("file, " + OPENFACE_HEADER + "\nunrelated.jpg, " + openface_line(10) + "\n")
    with pytest.raises(PhanetError, match=r"none of its entries matches an image"):
        load_dataset("affectnet", str(tmp_path), openface_csv=str(other))
    with pytest.raises(PhanetError, match=r"data.options.openface_csv: .*missing.csv not found"):
        load_dataset("affectnet", str(tmp_path), openface_csv=str(tmp_path / "missing.csv"))
    with pytest.raises(PhanetError, match=r"data.options.yaw_sign: expected 1 or -1"):
        load_dataset("affectnet", str(tmp_path), openface_csv=str(other), yaw_sign=2)


def test_openface_stem_shared_by_two_images_is_refused(tmp_path):
    make_affectnet_npy_tree(tmp_path, per_class=1, codes=range(2), folder="train_set", size=16)
    make_affectnet_npy_tree(tmp_path, per_class=1, codes=range(2), folder="val_set", size=16)
    table = tmp_path / "poses.csv"
    table.write_text("file, " + OPENFACE_HEADER + "\n0.jpg, " + openface_line(10) + "\n")
    with pytest.raises(PhanetError, match=r"OpenFace entry '0' matches both train_set/images/0.jpg and val_set/images/0.jpg"):
        load_dataset("affectnet", str(tmp_path), partition="both", openface_csv=str(table))
    table.write_text("file, " + OPENFACE_HEADER + "\nval_set/images/0.jpg, " + openface_line(-40) + "\n")
    faces = load_dataset("affectnet", str(tmp_path), partition="both", openface_csv=str(table))
    assert {s.path: s.pose for s in faces.samples} == {
        "train_set/images/0.jpg": MISSING,
        "train_set/images/1.jpg": MISSING,
        "val_set/images/0.jpg": 0,
        "val_set/images/1.jpg": MISSING,
    }


def test_join_poses_prefers_the_full_path():
    entries = {"a/x": HeadPose(1.0, 0.0), "b/x": HeadPose(2.0, 0.0)}
    assert [p.yaw for p in join_poses(entries, ["a/x.jpg", "b/x.png"], "t")] == [1.0, 2.0]
    assert join_poses(entries, ["c/y.jpg"], "t") == [None]
