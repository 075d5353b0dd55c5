"""Generic datasets (manifest CSV/JSON, image-folder tree), image reading, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from phanet.cli import COMMANDS, build_parser, main
from phanet.data.io import read_image
from phanet.data.records import MISSING
from phanet.data.registry import load_dataset
from phanet.errors import PhanetError, UnreadableImage


def _png(path, value=128, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def test_folder_tree_with_and_without_pose_level(tmp_path):
    _png(tmp_path / "HA" / "-30" / "s1_a.png")
    _png(tmp_path / "HA" / "0" / "s2_a.png")
    _png(tmp_path / "SA" / "30" / "s1_b.png")
    (tmp_path / "SA" / "30" / "notes.txt").write_text("x")
    _png(tmp_path / "SA" / "30" / "nosubject.png")
    faces = load_dataset("folder", str(tmp_path))
    assert faces.expressions == ["HA", "SA"] and faces.poses == ["-30", "0", "30"]
    got = {(s.path, s.subject, faces.expressions[s.expression], faces.poses[s.pose]) for s in faces.samples}
    assert got == {
        ("HA/-30/s1_a.png", "s1", "HA", "-30"),
        ("HA/0/s2_a.png", "s2", "HA", "0"),
        ("SA/30/s1_b.png", "s1", "SA", "30"),
    }
    reasons = dict(faces.skipped)
    assert "not an image" in reasons["SA/30/notes.txt"] and "no subject" in reasons["SA/30/nosubject.png"]
    flat = tmp_path / "flat"
    _png(flat / "NE" / "p7_1.png")
    faces = load_dataset("folder", str(flat))
    assert faces.poses == [] and faces.samples[0].pose == MISSING and faces.samples[0].subject == "p7"


def test_manifest_json_canonical_poses_boxes_and_options(tmp_path):
    _png(tmp_path / "a.png", size=20)
    rows = [
        {
            "path": "a.png",
            "subject": "x",
            "expression": "HA",
            "pose": "45.0",
            "face_x": 2,
            "face_y": 3,
            "face_w": 10,
            "face_h": 12,
        },
        {"path": "a.png", "subject": "y", "expression": "SA", "pose": ""},
    ]
    (tmp_path / "m.json").write_text(json.dumps({"samples": rows}))
    faces = load_dataset("manifest", str(tmp_path / "m.json"))
    assert faces.poses == ["45"] and faces.samples[1].pose == MISSING
    assert faces.samples[0].box == (2.0, 3.0, 10.0, 12.0)
    assert faces.load_image(0).shape == (12, 10, 3)
    with pytest.raises(PhanetError, match="data.options.colour: unknown option for dataset 'manifest'"):
        load_dataset("manifest", str(tmp_path / "m.json"), colour="red")
    with pytest.raises(PhanetError, match="data.dataset: unknown dataset 'nope'"):
        load_dataset("nope", str(tmp_path))
    (tmp_path / "bad.csv").write_text("path,expression\na.png,HA\n")
    with pytest.raises(PhanetError, match="missing column 'subject'"):
        load_dataset("manifest", str(tmp_path / "bad.csv"))


def test_read_image_handles_exif_gray_alpha_and_16_bit(tmp_path):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:8, :8] = (255, 0, 0)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    upright = read_image(tmp_path / "rot.jpg")
    assert upright.shape == (24, 16, 3)
    assert upright[2, -3, 0] > 200 and upright[-3, 2, 0] < 50  # the red corner is now top-right
    Image.fromarray(np.full((3, 3), 77, np.uint8)).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").tolist() == np.full((3, 3, 3), 77).tolist()
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [100, 0, 0]
    Image.fromarray(np.full((2, 2), 65535, np.uint16)).save(tmp_path / "16.png")
    assert read_image(tmp_path / "16.png")[0, 0].tolist() == [255, 255, 255]
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(UnreadableImage, match="text.jpg"):
        read_image(tmp_path / "text.jpg")


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    names = [name for name, _ in COMMANDS if name in choices]
    assert {"demo", "train", "evaluate", "ablate", "crossval", "crossdata"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: phanet {name}" in capsys.readouterr().out
