"""phanet data inspect / list and phanet prepare from the command line."""

from __future__ import annotations

import re

import pandas as pd

from dataset_trees import make_affectnet_csv_tree, make_kdef_tree, make_sfew_tree, write_corrupt_jpeg, write_image
from phanet.cli import main


def one_line_error(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert re.search(pattern, err[0]), err[0]


def test_inspect_prints_counts_and_every_skipped_file(tmp_path, capsys):
    make_kdef_tree(tmp_path, subjects=("F01", "M01"), sessions="A", expressions=("AN", "HA"), size=16)
    write_corrupt_jpeg(tmp_path / "AF01" / "AF01SUS.JPG")
    write_image(tmp_path / "AF01" / "AF01ANS2.JPG")
    manifest = tmp_path / "out" / "kdef.csv"
    skipped = tmp_path / "out" / "skipped.csv"
    assert (
        main(
            [
                "data",
                "inspect",
                "--dataset",
                "kdef",
                "--root",
                str(tmp_path),
                "--manifest",
                str(manifest),
                "--skipped",
                str(skipped),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"kdef at {tmp_path}: 20 usable images, 2 subjects, 7 expressions, 5 poses (every image decoded)" in out
    assert "  AN         10\n  DI          0\n" in out
    assert "  -90         4\n" in out
    assert "  F01    10   M01    10" in out
    assert "Skipped 2 files that could not be parsed or read:" in out
    assert "  AF01/AF01ANS2.JPG: not a KDEF name like AF01ANFL.JPG" in out
    assert "  AF01/AF01SUS.JPG: not a readable image (UnidentifiedImageError)" in out
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    assert len(table) == 20 and "AF01/AF01SUS.JPG" not in set(table["path"])
    assert table.set_index("path").loc["AF01/AF01HAHL.JPG", ["subject", "expression", "pose"]].tolist() == ["F01", "HA", "-45"]
    assert len(pd.read_csv(skipped)) == 2


def test_inspect_no_read_keeps_corrupt_files(tmp_path, capsys):
    make_kdef_tree(tmp_path, subjects=("F01",), sessions="A", expressions=("AN",), size=16)
    write_corrupt_jpeg(tmp_path / "AF01" / "AF01SUS.JPG")
    assert main(["data", "inspect", "--dataset", "kdef", "--root", str(tmp_path), "--no-read"]) == 0
    out = capsys.readouterr().out
    assert "6 usable images" in out and "Skipped: none could not be parsed or read" in out


def test_inspect_affectnet_reports_exclusions_and_images_as_subjects(tmp_path, capsys):
    make_affectnet_csv_tree(tmp_path, per_class=2, size=16)
    assert main(["data", "inspect", "--dataset", "affectnet", "--root", str(tmp_path), "--option", "classes=7"]) == 0
    out = capsys.readouterr().out
    assert "14 usable images" in out
    assert "Subjects: 14 (no subject ids in this dataset: each image is its own subject" in out
    assert "Poses: none (this dataset has no pose labels" in out
    assert "Left out by the protocol: 8 files" in out
    assert "        2  code 7 (Contempt) not in the 7-class protocol" in out
    assert "        2  code 10 (Non-Face) not in the 8-class protocol" not in out
    assert "        2  code 10 (Non-Face) not in the 7-class protocol" in out


def test_inspect_sfew_and_list(tmp_path, capsys):
    make_sfew_tree(tmp_path, per_class=1, size=16)
    assert main(["data", "inspect", "--dataset", "sfew", "--root", str(tmp_path), "--no-read"]) == 0
    assert "sfew at" in capsys.readouterr().out
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "kdef: KDEF" in out and "    partition = 'training'" in out and "    poses = 'paper'" in out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    make_affectnet_csv_tree(tmp_path, per_class=1, codes=range(2), size=16)
    csv = tmp_path / "Manually_Annotated_file_lists" / "training.csv"
    csv.write_text(csv.read_text() + "1/x.jpg,1,1,5,5,,11,0,0\n")
    base = ["data", "inspect", "--root", str(tmp_path)]
    one_line_error(capsys, base + ["--dataset", "affectnet"], r"training.csv row 4: expression '11' is not an AffectNet code")
    one_line_error(capsys, base + ["--dataset", "nope"], r"unknown dataset 'nope' \(expected one of .*kdef")
    one_line_error(capsys, base + ["--dataset", "kdef", "--option", "colour=1"], r"data.options.colour: unknown option")
    one_line_error(capsys, base + ["--dataset", "kdef", "--option", "sessions"], r"--option 'sessions': expected KEY=VALUE")
    one_line_error(
        capsys, ["data", "inspect", "--dataset", "kdef", "--root", str(tmp_path / "no")], r"data.root: .* is not a folder"
    )
    one_line_error(capsys, base + ["--dataset", "multipie"], r"no usable multipie images under .*not a Multi-PIE name")


def test_prepare_command(tmp_path, capsys):
    make_affectnet_csv_tree(tmp_path / "affectnet", per_class=1, codes=range(8), size=24)
    out = tmp_path / "crops"
    argv = [
        "prepare",
        "--dataset",
        "affectnet",
        "--root",
        str(tmp_path / "affectnet"),
        "--out",
        str(out),
        "--size",
        "16",
        "--use-boxes",
        "--option",
        "classes=8",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "8 crops in" in printed and "dataset box 8" in printed
    assert len(pd.read_csv(out / "manifest.csv")) == 8
    assert main(argv) == 0  # resumes: nothing left to do
    assert "8 crops in" in capsys.readouterr().out
    one_line_error(
        capsys,
        argv[:-5] + ["--size", "32", "--option", "classes=8"],
        r"holds a prepare run with other settings \(size, use_boxes\)",
    )
