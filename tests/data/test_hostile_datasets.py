"""Dataset files and trees that do not say what they seem to: paths no file can have, face boxes beyond
any image, class lists naming a class twice, manifests that are pipes, a tree holding one sample under
several names, folders that cannot be listed. Each is a counted skip or one line, never a traceback."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from phanet.cli import main
from phanet.data.manifest import faces_from_table
from phanet.data.registry import load_dataset
from phanet.errors import PhanetError
from predict_helpers import untrained_checkpoint


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(path, format="PNG")
    return path


def _manifest(folder: Path, rows: list[str], header: str = "path,subject,expression,pose") -> Path:
    for name in ("a.png", "b.png"):
        _png(folder / name)
    (folder / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder / "manifest.csv"


def test_paths_no_file_can_have_are_counted_skips(tmp_path):
    long_path = "x" * 1_000_000 + ".png"  # a field of a megabyte
    manifest = _manifest(tmp_path, ["a.png,s1,HA,0", f"{long_path},s2,SA,0", "b.png,s2,SA,0"])
    faces = load_dataset("manifest", str(manifest))
    assert [s.path for s in faces.samples] == ["a.png", "b.png"]
    ((path, reason),) = faces.skipped
    assert path == "x" * 200 + "…" and re.fullmatch(r"file name of 1,000,\d{3} bytes, longer than the system allows", reason)
    table = pd.DataFrame(
        [{"path": "a.png", "subject": "s1", "expression": "HA"}, {"path": "b\x00.png", "subject": "s2", "expression": "SA"}]
    )
    faces = faces_from_table(table, "t", tmp_path, "t.csv")
    assert len(faces) == 1 and faces.skipped == [("b\x00.png", "file name holds a NUL byte")]


def test_face_boxes_beyond_any_image_are_counted_skips(tmp_path):
    header = "path,subject,expression,pose,face_x,face_y,face_w,face_h"
    manifest = _manifest(tmp_path, ["a.png,s1,HA,0,1,1,4,4", "b.png,s2,SA,0,1e308,0,4,4", "b.png,s2,SA,0,0,0,1e300,4"], header)
    faces = load_dataset("manifest", str(manifest))
    assert [s.box for s in faces.samples] == [(1, 1, 4, 4)]
    assert faces.skipped == [
        ("b.png", "face box (1e+308, 0, 4, 4) lies beyond any image phanet reads"),
        ("b.png", "face box (0, 0, 1e+300, 4) lies beyond any image phanet reads"),
    ]


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_manifest_that_is_a_pipe_or_a_device_is_one_line(special, tmp_path, capsys):
    path = tmp_path / "manifest.csv"
    if special == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(special)
    assert main(["data", "inspect", "--dataset", "manifest", "--root", str(path), "--no-read"]) == 2
    err = capsys.readouterr().err.strip()
    kind = "a named pipe (FIFO)" if special == "fifo" else "a character device"
    assert err == f"phanet data: error: {path}: {kind}, not a regular file"


def test_class_lists_that_name_a_class_twice_are_refused(tmp_path, capsys):
    manifest = _manifest(tmp_path, ["a.png,s1,HA,0", "b.png,s2,SA,0"])
    (tmp_path / "classes.json").write_text(json.dumps({"expressions": ["HA", "SA", "HA"], "poses": ["0"]}))
    with pytest.raises(PhanetError, match=r"classes.json: expressions: 'HA' is listed twice in \['HA', 'SA', 'HA'\]$"):
        load_dataset("generic", str(manifest))
    with pytest.raises(
        PhanetError, match=r"^data.options.poses: '0' is listed twice in \['0', '0.0'\] \(as angles, 45 and 45.0 are one\)$"
    ):
        load_dataset("manifest", str(manifest), poses=["0", "0.0"])
    with pytest.raises(PhanetError, match=r"^data.options.expressions: expected a list of class names, got \['HA', ''\]$"):
        load_dataset("manifest", str(manifest), expressions=["HA", ""])


@pytest.mark.parametrize(
    "key, names, message",
    [
        ("expressions", ["HA", "HA", "SA", "NE"], "'HA' is listed twice"),
        ("poses", ["0", "45", "0"], "'0' is listed twice"),
        ("expressions", [], "expected at least one class name"),
        ("expressions", "HA", "expected a list of class names"),
    ],
)
def test_a_checkpoint_with_a_repeated_class_name_is_refused_by_every_command(key, names, message, tmp_path, capsys):
    path = untrained_checkpoint(tmp_path / "tiny.ckpt")
    payload = torch.load(path, weights_only=True)
    payload["hyper_parameters"][key] = names
    torch.save(payload, path)
    _png(tmp_path / "face.png")
    for argv in (
        ["predict", str(tmp_path / "face.png"), "--checkpoint", str(path), "--no-progress"],
        ["export", "--checkpoint", str(path), "--onnx", str(tmp_path / "tiny.onnx")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"--checkpoint: {path}: {key}: {message}" + err.split(message, 1)[1]), err
        assert len(err.splitlines()) == 1


def test_a_kdef_tree_holding_a_sample_several_times_counts_it_once(tmp_path, capsys):
    root = tmp_path / "KDEF"
    _png(root / "AF01" / "AF01ANS.JPG")
    _png(root / "AF01" / "AF01HAS.JPG")
    _png(root / "AF01" / "AF01HAS.png")  # the same photo saved again under another spelling
    _png(root / "AF01" / "AF01HAS.JPEG")
    _png(root / "backup" / "AF01" / "AF01ANS.JPG")  # a copy of the whole folder
    _png(root / "AM02" / "AM02SAS.jpg")
    faces = load_dataset("kdef", str(root))
    assert sorted(s.path for s in faces.samples) == ["AF01/AF01ANS.JPG", "AF01/AF01HAS.JPEG", "AM02/AM02SAS.jpg"]
    assert sorted(faces.skipped) == [
        ("AF01/AF01HAS.JPG", "duplicate of AF01/AF01HAS.JPEG (the same session, person, expression and angle)"),
        ("AF01/AF01HAS.png", "duplicate of AF01/AF01HAS.JPEG (the same session, person, expression and angle)"),
        ("backup/AF01/AF01ANS.JPG", "duplicate of AF01/AF01ANS.JPG (the same session, person, expression and angle)"),
    ]
    assert main(["data", "inspect", "--dataset", "kdef", "--root", str(root), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "3 usable images" in printed and "Skipped 3 files that could not be parsed or read:" in printed


def test_a_bu3dfe_tree_holding_a_view_twice_counts_it_once(tmp_path):
    root = tmp_path / "bu3dfe"
    _png(root / "F0001" / "F0001_AN01_+45.png")
    _png(root / "F0001" / "F0001_AN01_45.jpg")
    _png(root / "F0001" / "F0001_NE00_0.png")
    faces = load_dataset("bu3dfe", str(root))
    assert sorted(s.path for s in faces.samples) == ["F0001/F0001_AN01_+45.png", "F0001/F0001_NE00_0.png"]
    assert faces.skipped == [
        ("F0001/F0001_AN01_45.jpg", "duplicate of F0001/F0001_AN01_+45.png (the same subject, expression, intensity and yaw)")
    ]


def test_sub_folders_that_cannot_be_listed_are_reported_by_the_adapters(tmp_path, monkeypatch):
    root = tmp_path / "KDEF"
    _png(root / "AF01" / "AF01ANS.JPG")
    _png(root / "AM02" / "AM02SAS.JPG")
    scandir = os.scandir

    def no_listing(path):
        if Path(path).name == "AM02":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", no_listing)
    faces = load_dataset("kdef", str(root))
    assert [s.path for s in faces.samples] == ["AF01/AF01ANS.JPG"]
    assert faces.skipped == [("AM02", "folder cannot be listed (Permission denied)")]


def test_pipes_among_affectnet_annotations_and_openface_tables_are_never_opened(tmp_path):
    from dataset_trees import make_affectnet_csv_tree, make_affectnet_npy_tree

    make_affectnet_npy_tree(tmp_path, per_class=1, codes=range(3), size=16)
    os.mkfifo(tmp_path / "train_set" / "annotations" / "98_exp.npy")  # np.load would wait on it forever
    faces = load_dataset("affectnet", str(tmp_path), partition="training")
    assert dict(faces.skipped)["train_set/annotations/98_exp.npy"] == "a named pipe (FIFO), not a regular file"
    other = tmp_path / "csv"
    make_affectnet_csv_tree(other, per_class=1, codes=range(3), size=16)
    os.mkfifo(other / "poses.csv")
    with pytest.raises(PhanetError, match=r"poses.csv: a named pipe \(FIFO\), not a regular file$"):
        load_dataset("affectnet", str(other), openface_csv=str(other / "poses.csv"))


def test_a_synth_folder_whose_settings_file_is_a_pipe_is_one_line(tmp_path):
    (tmp_path / "manifest.csv").write_text("path,subject,expression\n")
    os.mkfifo(tmp_path / "synth.json")
    with pytest.raises(PhanetError, match=r"synth.json: not a readable settings file \(.*a named pipe \(FIFO\)"):
        load_dataset("synth", str(tmp_path))


def test_a_synth_dataset_of_a_billion_subjects_is_refused_before_rendering(tmp_path):
    with pytest.raises(PhanetError, match=r"^data.options.subjects: at most 10,000 subjects, got 1,000,000,000$"):
        from phanet.config import load_config
        from phanet.demo import demo_faces

        demo_faces(load_config("demo", ["data.options.subjects=1000000000", f"data.root={tmp_path / 'synth'}"]))
    assert not (tmp_path / "synth").exists()


def test_names_that_are_not_utf8_in_a_tree_are_counted_skips_and_written_with_escapes(tmp_path, capsys):
    """A manifest is UTF-8 text and cannot name such a file, so the file is skipped with the reason, and
    the printed and written lists of skipped files show its name with ``\\xNN`` escapes, as ``phanet
    predict`` does (``skipped`` itself keeps the name, which opens the file)."""
    root = tmp_path / "data"
    _png(root / "HA" / "s1_a.png")
    _png(root / "SA" / "s2_b.png")
    _png(root / "HA" / os.fsdecode(b"s3_caf\xe9.png"))
    _png(root / os.fsdecode(b"N\xe9") / "s4_c.png")  # an expression folder named in Latin-1
    (root / "HA" / os.fsdecode(b"notes\xe9.txt")).write_text("not an image")
    faces = load_dataset("folder", str(root))
    assert faces.expressions == ["HA", "SA"] and [s.path for s in faces.samples] == ["HA/s1_a.png", "SA/s2_b.png"]
    not_utf8 = "file name is not valid UTF-8 (a manifest cannot name it; rename the file)"
    assert sorted(faces.skipped) == [
        ("HA/notes\udce9.txt", "not an image file name"),
        ("HA/s3_caf\udce9.png", not_utf8),
        ("N\udce9/s4_c.png", not_utf8),
    ]
    manifest, skipped = tmp_path / "manifest.csv", tmp_path / "skipped.csv"
    argv = ["data", "inspect", "--dataset", "folder", "--root", str(root), "--no-progress"]
    assert main([*argv, "--manifest", str(manifest), "--skipped", str(skipped)]) == 0
    printed = capsys.readouterr().out
    assert "  HA/notes\\xe9.txt: not an image file name" in printed and f"  HA/s3_caf\\xe9.png: {not_utf8}" in printed
    assert pd.read_csv(manifest)["path"].tolist() == ["HA/s1_a.png", "SA/s2_b.png"]
    assert sorted(pd.read_csv(skipped)["path"]) == ["HA/notes\\xe9.txt", "HA/s3_caf\\xe9.png", "N\\xe9/s4_c.png"]
    prepared = tmp_path / "prepared"
    assert main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(prepared), "--no-face", "center"]) == 0
    assert len(pd.read_csv(prepared / "manifest.csv")) == 2
    report = pd.read_csv(prepared / "report.csv")
    assert sorted(report.loc[report["problem"] == "skipped", "path"]) == sorted(pd.read_csv(skipped)["path"])


DEEP_JSON = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON parser recurses


def test_json_files_nested_past_the_parser_are_one_line(tmp_path, capsys):
    """A manifest, a ``classes.json`` or a ``synth.json`` of nested brackets: the standard library's parser
    answers with a RecursionError, which is one line like any other JSON that cannot be read."""
    (tmp_path / "deep.json").write_text(DEEP_JSON)
    assert main(["data", "inspect", "--dataset", "manifest", "--root", str(tmp_path / "deep.json"), "--no-read"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"phanet data: error: {tmp_path / 'deep.json'}: not a readable manifest (nested too deeply)"
    manifest = _manifest(tmp_path / "generic", ["a.png,s1,HA,0", "b.png,s2,SA,0"])
    (tmp_path / "generic" / "classes.json").write_text(DEEP_JSON)
    with pytest.raises(PhanetError, match=r"classes.json: not readable JSON \(nested too deeply\)$"):
        load_dataset("generic", str(manifest))
    (tmp_path / "synth").mkdir()
    (tmp_path / "synth" / "manifest.csv").write_text("path,subject,expression\n")
    (tmp_path / "synth" / "synth.json").write_text(DEEP_JSON)
    with pytest.raises(PhanetError, match=r"synth.json: not a readable settings file \(nested too deeply\)$"):
        load_dataset("synth", str(tmp_path / "synth"))


@pytest.mark.parametrize("column, value", [("yaw", "1e308"), ("yaw", "-99999999999999999999999"), ("pitch", "360.5")])
def test_head_angles_beyond_a_turn_are_one_line(column, value, tmp_path):
    header = f"path,subject,expression,pose,{column}"
    manifest = _manifest(tmp_path, ["a.png,s1,HA,0,10", f"b.png,s2,SA,0,{value}"], header)
    with pytest.raises(PhanetError) as raised:
        load_dataset("manifest", str(manifest))
    shown = f"{float(value):g}"
    assert str(raised.value) == f"{manifest} row 3: {column} {shown} is not an angle in degrees from -180 to 180"


def test_labels_a_json_manifest_writes_as_lone_surrogates_are_one_line(tmp_path):
    """JSON may spell text no file can hold (``"\\udce9"``, half of a UTF-16 pair): a manifest written from
    it could not be saved."""
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    rows = [{"path": "a.png", "subject": "s1", "expression": "HA"}, {"path": "b.png", "subject": "s2", "expression": "S\udce9"}]
    (tmp_path / "m.json").write_text(json.dumps(rows))
    with pytest.raises(PhanetError) as raised:
        load_dataset("manifest", str(tmp_path / "m.json"))
    assert str(raised.value) == f"{tmp_path / 'm.json'} row 3: expression 'S\\udce9' is not text (it holds half of a UTF-16 pair)"
