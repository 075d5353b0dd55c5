"""What a folder given to ``phanet predict`` may hold besides photos: names that are not UTF-8, named
pipes, links to devices and to nothing, sub-folders that cannot be listed, links that may not be looked
at, float TIFFs. Every entry with an image's or a video's name gets one row, ``ok``, ``no_face`` or
``unreadable``, no file but a regular one is ever opened, and the run ends at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import phanet.files
from phanet.cli import main
from phanet.data.io import read_image
from phanet.predict import Predictor
from predict_helpers import isolated_threads, untrained_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")

LATIN1_NAME = b"caf\xe9.png"  # "café.png" saved by a system that writes Latin-1 names


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("untrained") / "tiny.ckpt")


def _photo(path: Path, size=(48, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 60)).save(path, format="PNG")
    return path


def _statuses(table: pd.DataFrame) -> dict[str, str]:
    return dict(zip(table["file"].map(lambda f: f.rsplit("/", 1)[-1]), table["status"]))


def test_a_folder_of_every_special_entry_gives_one_row_each_and_ends(checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    _photo(inputs / "plain.png")
    _photo(inputs / os.fsdecode(LATIN1_NAME))
    os.mkfifo(inputs / "pipe.jpg")
    os.mkfifo(inputs / "pipe.mp4")
    (inputs / "zero.png").symlink_to("/dev/zero")
    (inputs / "random.mp4").symlink_to("/dev/urandom")
    (inputs / "gone.png").symlink_to(tmp_path / "deleted.png")
    (inputs / "notes.txt").write_text("not a picture, no row")
    out = tmp_path / "rows.csv"
    assert main(["predict", str(inputs), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    table = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert _statuses(table) == {
        "caf\\xe9.png": "no_face",
        "gone.png": "unreadable",
        "pipe.jpg": "unreadable",
        "pipe.mp4": "unreadable",
        "plain.png": "no_face",
        "random.mp4": "unreadable",
        "zero.png": "unreadable",
    }
    assert "7 images or frames, 0 faces; no face: 2, unreadable: 5 (first: " in printed.out
    assert out.read_bytes().decode("utf-8")  # the table is UTF-8 text, whatever the names were
    assert not list(tmp_path.glob("*.partial"))


def test_names_that_are_not_utf8_are_written_with_escapes_in_csv_json_and_the_summary(checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    _photo(inputs / os.fsdecode(LATIN1_NAME))
    _photo(inputs / "plain.png")
    for out in (tmp_path / "rows.csv", tmp_path / "rows.json"):
        assert main(["predict", str(inputs), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 0
    assert main(["predict", str(inputs), "--checkpoint", str(checkpoint), "--no-progress", "--no-detect"]) == 0
    printed = capsys.readouterr().out
    assert "caf\\xe9.png" in printed
    assert pd.read_csv(tmp_path / "rows.csv")["file"].tolist() == [str(inputs / "caf\\xe9.png"), str(inputs / "plain.png")]
    assert pd.read_json(tmp_path / "rows.json")["file"].tolist() == [str(inputs / "caf\\xe9.png"), str(inputs / "plain.png")]


def test_sub_folders_that_cannot_be_listed_and_links_that_cannot_be_looked_at_are_rows(checkpoint, tmp_path, monkeypatch):
    inputs = tmp_path / "in"
    _photo(inputs / "a.png")
    _photo(inputs / "locked" / "b.png")
    _photo(inputs / "refused.png")
    scandir, regular = os.scandir, phanet.files.regular_file

    def no_listing(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    def no_look(path):
        if Path(path).name == "refused.png":
            raise PermissionError(13, "Permission denied")
        return regular(path)

    monkeypatch.setattr(os, "scandir", no_listing)
    monkeypatch.setattr(phanet.files, "regular_file", no_look)
    table = Predictor.from_checkpoint(checkpoint).predict(inputs)
    assert _statuses(table) == {"a.png": "no_face", "locked": "unreadable", "refused.png": "unreadable"}
    results = list(Predictor.from_checkpoint(checkpoint).iter_predict(inputs))
    assert [r.reason.rsplit("/", 1)[-1] for r in results] == [
        "",
        "locked: folder cannot be listed (Permission denied)",
        "refused.png: cannot be opened (Permission denied)",
    ]


def test_a_link_whose_stat_is_refused_during_the_scan_is_a_row_not_a_traceback(checkpoint, tmp_path, monkeypatch):
    """What ``phanet predict /`` meets in /proc: entries whose type cannot be asked."""
    inputs = tmp_path / "in"
    _photo(inputs / "a.png")
    (inputs / "link.png").symlink_to(inputs / "a.png")
    scandir = os.scandir

    class Refused:
        def __init__(self, entry):
            self.name, self.path = entry.name, entry.path

        def is_dir(self):
            raise PermissionError(13, "Permission denied")

    class Listing:
        def __init__(self, path):
            self.entries = scandir(path)

        def __enter__(self):
            return [Refused(e) if e.name == "link.png" else e for e in self.entries]

        def __exit__(self, *exc):
            self.entries.close()

    monkeypatch.setattr(os, "scandir", Listing)
    table = Predictor.from_checkpoint(checkpoint).predict(inputs)
    assert _statuses(table) == {"a.png": "no_face", "link.png": "no_face"}


def test_links_that_loop_and_very_deep_folders_are_searched_once(checkpoint, tmp_path):
    inputs = tmp_path / "in"
    deep = inputs.joinpath(*["d"] * 300)
    _photo(deep / "deep.png")
    (inputs / "loop").symlink_to(inputs)
    table = Predictor.from_checkpoint(checkpoint).predict(inputs)
    assert table["file"].tolist() == [str(deep / "deep.png")]


def test_a_float_tiff_is_read_as_values_from_0_to_1(tmp_path):
    ramp = np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)
    Image.fromarray(ramp, mode="F").save(tmp_path / "ramp.tif")
    rgb = read_image(tmp_path / "ramp.tif")
    np.testing.assert_array_equal(rgb[:, :, 0], np.round(ramp * 255).astype(np.uint8))
    Image.fromarray(ramp * 200 + 10, mode="F").save(tmp_path / "counts.tif")  # values above 1: 0 to 255
    np.testing.assert_array_equal(read_image(tmp_path / "counts.tif")[:, :, 1], np.round(ramp * 200 + 10).astype(np.uint8))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "data"])
def test_fifos_leave_predict_and_data_inspect_quick_and_sigterm_stops_them(command, checkpoint, tmp_path):
    """A named pipe with a video's or an image's name: never opened, so the command ends by itself; and a
    SIGTERM sent while it runs stops it within seconds."""
    root = tmp_path / "data"
    for subject in ("s1", "s2"):
        _photo(root / "HA" / f"{subject}_a.png")
        _photo(root / "SA" / f"{subject}_b.png")
    os.mkfifo(root / "HA" / "s3_pipe.png")
    os.mkfifo(root / "SA" / "s3_pipe.mp4")
    if command == "predict":
        argv = ["predict", str(root), "--checkpoint", str(checkpoint), "--no-progress"]
    else:
        argv = ["data", "inspect", "--dataset", "folder", "--root", str(root), "--no-progress"]
    ended = subprocess.run([sys.executable, "-m", "phanet", *argv], capture_output=True, text=True, timeout=120)
    assert ended.returncode == 0, ended.stderr[-2000:]
    assert "Traceback" not in ended.stderr
    if command == "predict":
        assert "6 images or frames, 0 faces; no face: 4, unreadable: 2" in ended.stdout
    else:
        assert "HA/s3_pipe.png: a named pipe (FIFO), not a regular file" in ended.stdout
    process = subprocess.Popen([sys.executable, "-m", "phanet", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    _, err = process.communicate(timeout=60)
    assert time.monotonic() - started < 20
    assert process.returncode in (0, 143, -signal.SIGTERM) and "Traceback" not in err, err[-2000:]


def _odd_and_broken_files(folder: Path) -> dict[str, str]:
    """Files of every odd but valid kind, and of every broken kind, with the status each should get."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("CMYK", (40, 30), (0, 50, 100, 0)).save(folder / "cmyk.jpg")
    cv2.imwrite(str(folder / "rgb16.png"), np.random.default_rng(0).integers(0, 65535, (30, 40, 3)).astype(np.uint16))
    frames = [Image.new("P", (40, 30), i) for i in range(50)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    Image.fromarray(np.full((30, 40), np.nan, np.float32), mode="F").save(folder / "nan.tif")
    Image.new("LA", (40, 30), (100, 128)).save(folder / "grey_alpha.png")
    Image.new("1", (40, 30), 1).save(folder / "bilevel.png")
    image = Image.new("RGB", (40, 30))
    exif = image.getexif()
    exif[0x0112] = 9  # an orientation that does not exist
    image.save(folder / "bad_orientation.jpg", exif=exif)
    Image.new("RGB", (1, 1)).save(folder / "one_pixel.png")
    (folder / "loop1.png").symlink_to("loop2.png")
    (folder / "loop2.png").symlink_to("loop1.png")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.avi").write_text("not a video")
    (folder / "clip.mp4").mkdir()  # a folder with a video's name is searched like any folder
    Image.new("RGB", (8, 8)).save(folder / "clip.mp4" / "inside.png")
    valid = ("cmyk.jpg", "rgb16.png", "animated.gif", "nan.tif", "grey_alpha.png", "bilevel.png", "bad_orientation.jpg")
    return {
        **{name: "no_face" for name in (*valid, "one_pixel.png", "inside.png")},
        **{name: "unreadable" for name in ("loop1.png", "loop2.png", "empty.mp4", "text.avi")},
    }


def test_odd_but_valid_images_are_read_and_broken_files_are_rows(checkpoint, tmp_path):
    expected = _odd_and_broken_files(tmp_path / "in")
    table = Predictor.from_checkpoint(checkpoint).predict(tmp_path / "in")
    assert _statuses(table) == expected
    assert read_image(tmp_path / "in" / "rgb16.png").dtype == np.uint8
    assert read_image(tmp_path / "in" / "nan.tif").max() == 0  # NaN is no light


def test_an_onnx_file_that_is_a_pipe_is_refused_unread(tmp_path, capsys):
    os.mkfifo(tmp_path / "model.onnx")
    _photo(tmp_path / "face.png")
    assert main(["predict", str(tmp_path / "face.png"), "--checkpoint", str(tmp_path / "model.onnx"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"phanet predict: error: --checkpoint: {tmp_path / 'model.onnx'}: a named pipe (FIFO), not a regular file"
    )


@pytest.mark.slow
def test_a_folder_of_every_hostile_file_at_once_gives_one_row_each_in_bounded_memory(checkpoint, tmp_path):
    """The issue's closing test: every kind of hostile file in one folder, one row each, no traceback,
    and the process's peak memory under 4 GB."""
    import socket
    import struct
    import zlib

    import cv2

    inputs = tmp_path / "in"
    expected = _odd_and_broken_files(inputs)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)  # a decompression bomb of 900 MP
    (inputs / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(4096))) + chunk(b"IEND", b"")
    )
    Image.new("L", (1, 60000), 90).save(inputs / "strip.png")
    (inputs / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    _photo(inputs / os.fsdecode(LATIN1_NAME))
    os.mkfifo(inputs / "pipe.jpg")
    os.mkfifo(inputs / "pipe.mp4")
    (inputs / "zero.png").symlink_to("/dev/zero")
    (inputs / "random.mp4").symlink_to("/dev/urandom")
    (inputs / "gone.png").symlink_to(tmp_path / "deleted.png")
    ramp = np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)
    Image.fromarray(ramp, mode="F").save(inputs / "float.tif")
    (inputs / "null.jpg").symlink_to("/dev/null")
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(inputs / "socket.png"))
    _photo(inputs / "line\nbreak.png")
    (inputs / "empty.png").write_bytes(b"")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), np.uint8)).save(tmp_path / "noise.png")
    (inputs / "half.png").write_bytes((tmp_path / "noise.png").read_bytes()[:7000])  # a download cut short
    writer = cv2.VideoWriter(str(inputs / "no_frames.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    writer.release()
    expected.update(
        {
            "bomb.png": "unreadable",
            "strip.png": "no_face",
            "cut.jpg": "unreadable",
            "caf\\xe9.png": "no_face",
            "pipe.jpg": "unreadable",
            "pipe.mp4": "unreadable",
            "zero.png": "unreadable",
            "random.mp4": "unreadable",
            "gone.png": "unreadable",
            "float.tif": "no_face",
            "null.jpg": "unreadable",
            "socket.png": "unreadable",
            "line\nbreak.png": "no_face",
            "empty.png": "unreadable",
            "half.png": "unreadable",
            "no_frames.avi": "unreadable",
        }
    )
    out = tmp_path / "rows.csv"
    code = (
        "import resource, sys; from phanet.cli import main; "
        f"status = main(['predict', {str(inputs)!r}, '--checkpoint', {str(checkpoint)!r}, '--out', {str(out)!r}, "
        f"'--visualize', {str(tmp_path / 'drawn')!r}, '--no-progress']); "
        "print(status, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    try:
        ended = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    finally:
        listening.close()
    status, peak_kb = ended.stdout.split()[-2:]
    assert status == "0" and "Traceback" not in ended.stderr, ended.stderr[-3000:]
    table = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert _statuses(table) == expected and len(table) == len(expected)
    assert int(peak_kb) < 4_000_000
