"""KDEF, BU-3DFE, Multi-PIE, SFEW and generic adapters on small trees with the real naming."""

from __future__ import annotations

import json
import shutil

import pytest

from dataset_trees import (
    assert_records,
    make_bu3dfe_tree,
    make_kdef_tree,
    make_multipie_tree,
    make_sfew_tree,
    write_corrupt_jpeg,
    write_image,
)
from phanet.data.adapters.common import is_excluded
from phanet.data.adapters.kdef import parse_kdef_name
from phanet.data.records import MISSING
from phanet.data.registry import available_datasets, dataset_options, load_dataset
from phanet.data.verify import without_unreadable
from phanet.errors import PhanetError


def reasons(faces) -> dict[str, str]:
    return {path.replace("\\", "/"): reason for path, reason in faces.skipped}


def test_all_five_datasets_and_generic_are_registered():
    assert {"bu3dfe", "multipie", "kdef", "affectnet", "sfew", "generic"} <= set(available_datasets())
    assert dataset_options("kdef") == {"sessions": None, "poses": None}


# --- KDEF -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stem, fields",
    [
        ("AF01ANFL", {"session": "A", "sex": "F", "id": "01", "expression": "AN", "angle": "FL"}),
        ("AF01ANS", {"session": "A", "sex": "F", "id": "01", "expression": "AN", "angle": "S"}),
        ("BM35AFHR", {"session": "B", "sex": "M", "id": "35", "expression": "AF", "angle": "HR"}),
        ("bm35afs", {"session": "B", "sex": "M", "id": "35", "expression": "AF", "angle": "S"}),
    ],
)
def test_kdef_names_parse_by_position_from_the_left(stem, fields):
    assert parse_kdef_name(stem) == fields


@pytest.mark.parametrize("stem", ["AF01AN", "AF1ANFL", "CF01ANFL", "AF01ANFLX", "AF01ANFL2"])
def test_kdef_names_that_are_not_kdef(stem):
    assert parse_kdef_name(stem) is None


def test_kdef_tree_file_by_file(tmp_path):
    expected = make_kdef_tree(tmp_path, subjects=("F01", "M02"), size=16)
    faces = load_dataset("kdef", str(tmp_path))
    assert_records(faces, expected)
    assert faces.expressions == ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
    assert faces.poses == ["-90", "-45", "0", "45", "90"]
    assert faces.subjects() == ["F01", "M02"]
    counts = faces.counts()
    assert counts["pose"] == {p: 28 for p in faces.poses}
    assert counts["expression"] == {e: 20 for e in faces.expressions}
    assert counts["subject"] == {"F01": 70, "M02": 70}
    straight = [s for s in faces.samples if s.path.endswith("AF01ANS.JPG")]
    assert len(straight) == 1 and faces.poses[straight[0].pose] == "0" and straight[0].subject == "F01"
    afraid = next(s for s in faces.samples if s.path.endswith("BM02AFHR.JPG"))
    assert (faces.expressions[afraid.expression], faces.poses[afraid.pose], afraid.subject) == ("FE", "45", "M02")
    assert faces.skipped == []


def test_kdef_misnamed_and_corrupt_files_are_skipped_and_counted(tmp_path):
    expected = make_kdef_tree(tmp_path, subjects=("F01",), sessions="A", expressions=("AN", "HA"), size=16)
    write_image(tmp_path / "AF01" / "AF01ANXX.JPG")  # unknown angle code
    write_image(tmp_path / "AF01" / "AF01QQS.JPG")  # unknown expression code
    write_image(tmp_path / "AF01" / "AF01AN.JPG")  # no angle
    write_image(tmp_path / "AF01" / "AF02HAS.JPG")  # another person's file in AF01/
    (tmp_path / "AF01" / "Thumbs.db").write_bytes(b"\0")
    write_corrupt_jpeg(tmp_path / "AF01" / "AF01DIS.JPG")  # parses, cannot be decoded
    faces = load_dataset("kdef", str(tmp_path))
    assert reasons(faces) == {
        "AF01/AF01ANXX.JPG": "unknown KDEF angle code 'XX'",
        "AF01/AF01QQS.JPG": "unknown KDEF expression code 'QQ'",
        "AF01/AF01AN.JPG": "not a KDEF name like AF01ANFL.JPG",
        "AF01/AF02HAS.JPG": "file of AF02 in the folder of AF01",
        "AF01/Thumbs.db": "not a KDEF name like AF01ANFL.JPG",
    }
    assert len(faces) == len(expected) + 1
    checked = without_unreadable(faces, progress=False)
    assert_records(checked, expected)
    assert reasons(checked)["AF01/AF01DIS.JPG"] == "not a readable image (UnidentifiedImageError)"
    assert len(checked.skipped) == 6


def test_kdef_sessions_and_angle_map_options(tmp_path):
    make_kdef_tree(tmp_path, subjects=("F01", "M01"), expressions=("NE",), size=16)
    faces = load_dataset("kdef", str(tmp_path), sessions=["B"], poses={"HL": -45, "S": 0, "HR": 45})
    assert faces.poses == ["-45", "0", "45"]
    assert len(faces) == 2 * 3
    assert all("/B" in "/" + s.path for s in faces.samples)
    assert all(is_excluded(r) for _, r in faces.skipped) and len(faces.skipped) == 10 + 4
    with pytest.raises(PhanetError, match=r"data.options.sessions: expected a list of A and/or B"):
        load_dataset("kdef", str(tmp_path), sessions=["C"])
    with pytest.raises(PhanetError, match=r"data.options.poses: expected numeric yaw angles"):
        load_dataset("kdef", str(tmp_path), poses={"S": "front"})


def test_kdef_empty_or_wrong_root_is_one_line_error(tmp_path):
    with pytest.raises(PhanetError, match=r"^data.root: .* is not a folder \(the kdef dataset expects"):
        load_dataset("kdef", str(tmp_path / "nope"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(PhanetError, match=r"no usable kdef images .*1 not a KDEF name"):
        load_dataset("kdef", str(tmp_path))


# --- BU-3DFE ----------------------------------------------------------------------------------


def test_bu3dfe_tree_file_by_file(tmp_path):
    expected = make_bu3dfe_tree(tmp_path, subjects=("F0001", "M0044"), size=16)
    faces = load_dataset("bu3dfe", str(tmp_path))
    assert_records(faces, expected)
    assert faces.poses == ["-90", "-60", "-45", "-30", "0", "30", "45", "60", "90"]
    assert faces.subjects() == ["F0001", "M0044"]
    # 6 expressions x 2 intensities + neutral, 9 yaws, 2 subjects
    assert len(faces) == (6 * 2 + 1) * 9 * 2
    neutral = next(s for s in faces.samples if s.path.endswith("F0001_NE00_0.png"))
    assert (neutral.intensity, faces.poses[neutral.pose], faces.expressions[neutral.expression]) == (0, "0", "NE")
    angry = next(s for s in faces.samples if s.path.endswith("M0044_AN04_-60.png"))
    assert (angry.intensity, faces.poses[angry.pose], angry.subject) == (4, "-60", "M0044")


def test_bu3dfe_awkward_names_and_options(tmp_path):
    make_bu3dfe_tree(tmp_path, subjects=("F0001",), expressions=("HA", "NE"), intensities=(1, 2), yaws=(-45, 0, 15), size=16)
    write_image(tmp_path / "F0001" / "F0001_HA03WH_+45.png")  # raw-name ethnicity code: accepted
    write_image(tmp_path / "F0001" / "F0001_XX01_+45.png")  # unknown expression
    write_image(tmp_path / "F0001" / "F0001_NE02_+45.png")  # neutral with an intensity
    write_image(tmp_path / "F0001" / "F0001_HA01.png")  # no yaw
    faces = load_dataset("bu3dfe", str(tmp_path))
    r = reasons(faces)
    assert r["F0001/F0001_XX01_+45.png"] == "unknown BU-3DFE expression code 'XX'"
    assert r["F0001/F0001_NE02_+45.png"] == "intensity 02 does not fit NE (NE is 00, others 01-04)"
    assert r["F0001/F0001_HA01.png"].startswith("name does not match the BU-3DFE pattern")
    assert r["F0001/F0001_HA01_+15.png"] == "excluded: yaw 15 not among data.options.poses"
    ethnic = next(s for s in faces.samples if "HA03WH" in s.path)
    assert (ethnic.intensity, faces.poses[ethnic.pose]) == (3, "45")
    found = load_dataset("bu3dfe", str(tmp_path), poses=None, intensities=[2])
    assert found.poses == ["-45", "0", "15", "45"]
    assert sorted({s.intensity for s in found.samples}) == [0, 2]


def test_bu3dfe_folder_pattern(tmp_path):
    for yaw in (-30, 0, 30):
        write_image(tmp_path / f"{yaw}" / "M0002_SU03.png")
    pattern = r"(?P<yaw>[+-]?\d+)/(?P<subject>[FM]\d{4})_(?P<expression>[A-Z]{2})(?P<intensity>\d{2})\.png$"
    faces = load_dataset("bu3dfe", str(tmp_path), pattern=pattern, poses=[-30, 0, 30])
    assert sorted((faces.poses[s.pose], s.subject, s.intensity) for s in faces.samples) == [
        ("-30", "M0002", 3),
        ("0", "M0002", 3),
        ("30", "M0002", 3),
    ]
    with pytest.raises(PhanetError, match=r"data.options.pattern: missing the named group 'yaw'"):
        load_dataset("bu3dfe", str(tmp_path), pattern=r"(?P<subject>\w+)_(?P<expression>\w\w)(?P<intensity>\d\d)")
    with pytest.raises(PhanetError, match=r"data.options.pattern: not a regular expression"):
        load_dataset("bu3dfe", str(tmp_path), pattern="(")


# --- Multi-PIE --------------------------------------------------------------------------------


def test_multipie_tree_file_by_file(tmp_path):
    expected = make_multipie_tree(
        tmp_path, subjects=("001", "250"), cameras=("13_0", "05_1", "04_1", "11_0"), illuminations=("07", "00"), size=16
    )
    faces = load_dataset("multipie", str(tmp_path))
    assert_records(faces, expected)
    assert faces.expressions == ["NE", "DI", "SU", "SM", "SC", "SQ"]
    assert faces.poses == ["-30", "-15", "0", "15", "30"]
    assert faces.subjects() == ["001", "250"]
    # neutral: one recording in sessions 1-3, two in session 4 -> 5 per subject and camera
    assert faces.counts()["expression"] == {"NE": 5 * 2 * 3, "DI": 6, "SU": 6, "SM": 2 * 2 * 3, "SC": 6, "SQ": 6}
    by_name = {s.path.rsplit("/", 1)[-1]: s for s in faces.samples}
    for name in (
        "001_01_01_130_07.png",
        "001_02_01_051_07.png",
        "001_03_01_041_07.png",
        "001_04_01_051_07.png",
        "001_04_02_041_07.png",
    ):
        assert faces.expressions[by_name[name].expression] == "NE"
    assert faces.poses[by_name["250_04_03_130_07.png"].pose] == "-30"
    assert faces.expressions[by_name["250_04_03_130_07.png"].expression] == "SC"
    assert faces.poses[by_name["250_03_03_041_07.png"].pose] == "30"
    r = reasons(faces)
    assert r["session01/multiview/001/01/11_0/001_01_01_110_07.png"] == "excluded: camera 11_0 not in data.options.poses"
    assert r["session01/multiview/001/01/05_1/001_01_01_051_00.png"] == "excluded: illumination 00 not selected"
    assert len(faces.skipped) == 2 * 11 * (4 * 2) - len(expected)


def test_multipie_options_and_bad_recording(tmp_path):
    make_multipie_tree(tmp_path, subjects=("001",), cameras=("05_1", "11_0", "24_0"), illuminations=("07", "12"), size=16)
    write_image(tmp_path / "session01" / "multiview" / "001" / "03" / "05_1" / "001_01_03_051_07.png")
    faces = load_dataset("multipie", str(tmp_path), poses="all", illuminations=None)
    assert faces.poses == [str(a) for a in range(-90, 91, 15)]
    assert len(faces) == 11 * 3 * 2
    assert reasons(faces) == {"session01/multiview/001/03/05_1/001_01_03_051_07.png": "session 01 has no recording 03"}
    custom = load_dataset("multipie", str(tmp_path), poses={"11_0": -90, "24_0": 90}, illuminations=["12"])
    assert custom.poses == ["-90", "90"] and len(custom) == 11 * 2
    with pytest.raises(PhanetError, match=r"data.options.poses: expected 'paper', 'all' or a mapping"):
        load_dataset("multipie", str(tmp_path), poses="some")
    with pytest.raises(PhanetError, match=r"data.options.poses: camera '051' is not written like 05_1"):
        load_dataset("multipie", str(tmp_path), poses={"051": 0})


# --- SFEW -------------------------------------------------------------------------------------


def test_sfew_tree_file_by_file(tmp_path):
    expected = make_sfew_tree(tmp_path, per_class=2, size=16)
    write_image(tmp_path / "Test" / "Movie9_001.png")  # unlabelled test image
    write_image(tmp_path / "Val" / "Contempt" / "Movie1_002.png")
    faces = load_dataset("sfew", str(tmp_path))
    assert_records(faces, expected)
    assert faces.expressions == ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
    assert faces.poses == [] and all(s.pose == MISSING for s in faces.samples)
    assert not faces.has_pose()
    assert len(faces.subjects()) == len(faces) == 2 * 7 * 2
    assert faces.counts()["expression"] == {e: 4 for e in faces.expressions}
    assert faces.counts()["pose"] == {"(none)": 28}
    assert reasons(faces) == {
        "Test/Movie9_001.png": "not an image at <partition>/<Emotion>/<image>",
        "Val/Contempt/Movie1_002.png": "unknown emotion folder 'Contempt'",
    }
    val = load_dataset("sfew", str(tmp_path), partitions=["val"])
    assert len(val) == 14 and all(s.path.startswith("Val") for s in val.samples)


# --- generic ----------------------------------------------------------------------------------


def test_generic_reads_a_folder_tree_or_a_manifest_with_classes_json(tmp_path):
    tree = tmp_path / "tree"
    write_image(tree / "happy" / "0" / "s1_a.png")
    write_image(tree / "sad" / "30" / "s2_b.png")
    folder = load_dataset("generic", str(tree))
    assert folder.expressions == ["happy", "sad"] and folder.poses == ["0", "30"]
    assert folder.subjects() == ["s1", "s2"]

    kdef = tmp_path / "kdef"
    make_kdef_tree(kdef, subjects=("F01",), sessions="A", expressions=("HA",), size=16)
    load_dataset("kdef", str(kdef)).write_manifest(kdef / "manifest.csv")
    plain = load_dataset("generic", str(kdef))
    assert plain.expressions == ["HA"]  # only what the manifest holds
    (kdef / "classes.json").write_text(json.dumps({"expressions": ["AN", "HA"], "poses": ["-90", "-45", "0", "45", "90"]}))
    fixed = load_dataset("generic", str(kdef / "manifest.csv"))
    assert fixed.expressions == ["AN", "HA"] and fixed.poses == ["-90", "-45", "0", "45", "90"]
    assert sorted(fixed.poses[s.pose] for s in fixed.samples) == ["-45", "-90", "0", "45", "90"]
    shutil.rmtree(kdef / "AF01")
    with pytest.raises(PhanetError, match=r"row 2: image file .* not found"):
        load_dataset("generic", str(kdef))
    with pytest.raises(PhanetError, match=r"data.root: .* not found"):
        load_dataset("generic", str(tmp_path / "nothing"))
