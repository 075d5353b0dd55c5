"""Hostile images: decompression bombs, decoder failures, thin strips, broken videos, drawings that
cannot be written. Each is an ``unreadable`` row or a skipped-and-counted file, never a traceback."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

import phanet.data.io
import phanet.files
from phanet.cli import main
from phanet.data.datasets import FaceDataset
from phanet.data.io import read_image
from phanet.data.registry import load_dataset
from phanet.errors import PhanetError, UnreadableImage
from phanet.files import write_failed
from phanet.predict import MAX_DRAWING_SIDE, Predictor, draw_predictions
from predict_helpers import isolated_threads, untrained_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")


def declared_png(path: Path, width: int, height: int) -> Path:
    """A PNG of about a hundred bytes whose header declares ``width`` × ``height`` grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(4096))) + chunk(b"IEND", b"")
    )
    return path


def thin_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG strip (a 1 × 60,000 one is a few hundred bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (width, height), 90).save(path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("untrained") / "tiny.ckpt")


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


# ------------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("action", ["default", "error", "ignore"])
@pytest.mark.parametrize(
    "width,height,declared",
    [
        (30000, 30000, "900 MP"),  # past Pillow's own error threshold
        (10000, 10000, "100 MP"),  # in Pillow's warning band
        (9000, 8000, "9000×8000 pixels (72 MP)"),  # below Pillow's limits: only phanet's bound stops it
    ],
)
def test_images_declaring_too_many_pixels_are_refused_from_the_header(tmp_path, action, width, height, declared):
    path = declared_png(tmp_path / "bomb.png", width, height)
    assert path.stat().st_size < 200
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter(action)
        with pytest.raises(UnreadableImage) as raised:
            read_image(path)
    assert str(raised.value) == f"{path}: declares {declared}, more than the 64 MP limit"
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_the_pixel_bound_is_inclusive(tmp_path, monkeypatch):
    monkeypatch.setattr(phanet.data.io, "MAX_PIXELS", 100)
    assert read_image(thin_png(tmp_path / "ok.png", 10, 10)).shape == (10, 10, 3)
    with pytest.raises(UnreadableImage, match=r"declares 11×10 pixels \(0.00011 MP\), more than the 0.0001 MP limit"):
        read_image(thin_png(tmp_path / "big.png", 11, 10))


@pytest.mark.parametrize("error", [MemoryError, struct.error, zlib.error, EOFError, IndexError, Image.DecompressionBombError])
def test_any_decoder_error_means_unreadable(tmp_path, monkeypatch, error):
    path = thin_png(tmp_path / "fine.png", 4, 4)

    def fail(self):
        raise error("the decoder gave up")

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    with pytest.raises(UnreadableImage) as raised:
        read_image(path)
    assert str(raised.value) == f"{path}: not a readable image ({error.__name__})"


def test_empty_truncated_and_folder_files_are_unreadable_and_a_missing_one_is_not_found(tmp_path):
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    (tmp_path / "cut.png").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    for name in ("cut.png", "empty.png"):
        with pytest.raises(UnreadableImage, match=rf"{name}: not a readable image \(\w+\)$"):
            read_image(tmp_path / name)
    with pytest.raises(UnreadableImage, match=r"folder.png: a folder, not a regular file$"):
        read_image(tmp_path / "folder.png")
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "absent.png")


# ---------------------------------------------------------------------------------------- prediction


def test_a_bomb_in_a_folder_is_one_status_row_and_every_other_row_survives(checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    declared_png(inputs / "bomb.png", 30000, 30000)
    thin_png(inputs / "strip.png", 1, 60000)
    thin_png(inputs / "wide.png", 60000, 1)
    Image.new("RGB", (48, 32), (120, 80, 60)).save(inputs / "plain.png")
    (inputs / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    (inputs / "gone.png").symlink_to(tmp_path / "deleted.png")
    out, drawn = tmp_path / "rows.csv", tmp_path / "drawn"
    assert (
        main(
            [
                "predict",
                str(inputs),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--visualize",
                str(drawn),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    assert "6 images or frames, 0 faces; no face: 3, unreadable: 3" in printed.out
    assert f"drawn: 3 images in {drawn}" in printed.out and "not drawn" not in printed.out
    table = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert dict(zip(table["file"].map(lambda f: Path(f).name), table["status"])) == {
        "bomb.png": "unreadable",
        "cut.jpg": "unreadable",
        "gone.png": "unreadable",
        "plain.png": "no_face",
        "strip.png": "no_face",
        "wide.png": "no_face",
    }
    shapes = {p.name: read_image(p).shape for p in drawn.iterdir()}
    assert shapes == {
        "strip.png": (MAX_DRAWING_SIDE, 256, 3),
        "wide.png": (256, MAX_DRAWING_SIDE, 3),
        "plain.png": (256, 384, 3),
    }  # enlarged 8 times: its shorter side reaches 256


def test_thin_strips_predict_as_whole_images(checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint, detect=False)
    table = predictor.predict([np.full((60000, 1, 3), 90, np.uint8), np.full((1, 60000), 90, np.uint8)])
    assert table["status"].tolist() == ["ok", "ok"]
    assert table[["face_w", "face_h"]].to_numpy().tolist() == [[1, 60000], [60000, 1]]
    assert np.isfinite(table["expression_prob"]).all()


class _FakeCapture:
    """Stands in for ``cv2.VideoCapture``: ``frames`` frames of ``width`` × ``height``; reading frame
    ``broken`` fails as a corrupt stream makes OpenCV fail."""

    frames, broken, width, height = 4, 2, 48, 32

    def __init__(self, source: str) -> None:
        self.index = -1

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return {
            cv2.CAP_PROP_FRAME_WIDTH: self.width,
            cv2.CAP_PROP_FRAME_HEIGHT: self.height,
            cv2.CAP_PROP_FRAME_COUNT: self.frames,
        }.get(prop, 0)

    def grab(self) -> bool:
        self.index += 1
        return self.index < self.frames

    def retrieve(self):
        if self.index == self.broken:
            raise cv2.error("corrupt frame")
        return True, np.full((self.height, self.width, 3), 100, np.uint8)

    def release(self) -> None:
        pass


def test_a_frame_that_cannot_be_decoded_is_an_unreadable_row_and_ends_the_video(checkpoint, tmp_path, monkeypatch):
    (tmp_path / "clip.avi").write_bytes(b"stand-in")
    monkeypatch.setattr(cv2, "VideoCapture", _FakeCapture)
    table = Predictor.from_checkpoint(checkpoint, detect=False).predict(tmp_path / "clip.avi")
    assert table["frame"].tolist() == [0, 1, 2] and table["status"].tolist() == ["ok", "ok", "unreadable"]


def test_a_video_declaring_huge_frames_is_refused_alone_and_a_row_in_a_folder(checkpoint, tmp_path, monkeypatch, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "huge.mp4").write_bytes(b"stand-in")
    monkeypatch.setattr(_FakeCapture, "width", 20000)
    monkeypatch.setattr(_FakeCapture, "height", 20000)
    monkeypatch.setattr(cv2, "VideoCapture", _FakeCapture)
    error = _one_line_error(
        capsys, ["predict", str(tmp_path / "in" / "huge.mp4"), "--checkpoint", str(checkpoint), "--no-progress"]
    )
    assert error.endswith("huge.mp4: declares 20000×20000 pixels per frame, more than the 64 MP limit")
    table = Predictor.from_checkpoint(checkpoint).predict(tmp_path / "in")
    assert table["status"].tolist() == ["unreadable"] and table["frame"].tolist() == [-1]


# ------------------------------------------------------------------------------------------ drawings


def test_drawings_are_bounded_whatever_the_image_shape():
    row = {
        "status": "ok",
        "face_x": 500,
        "face_y": 1000,
        "face_w": 2000,
        "face_h": 2000,
        "expression": "HA",
        "expression_prob": 0.9,
        "pose": "0",
        "s2_x0": np.nan,
        "s2_y0": np.nan,
        "s2_x1": np.nan,
        "s2_y1": np.nan,
        "s3_x0": np.nan,
        "s3_y0": np.nan,
        "s3_x1": np.nan,
        "s3_y1": np.nan,
    }
    big = draw_predictions(np.zeros((4000, 3000, 3), np.uint8), [row])
    assert big.shape == (2048, 1536, 3)  # shrunk by 0.512
    # The green face box is drawn where the shrunk image shows the face: its bottom edge at y = 3000 × 0.512.
    assert (big[1535:1538, 768] == (40, 220, 80)).all()
    assert draw_predictions(np.zeros((60000, 1, 3), np.uint8), [{"status": "no_face"}]).shape == (2048, 256, 3)
    small = np.arange(32 * 48 * 3, dtype=np.uint8).reshape(32, 48, 3)
    np.testing.assert_array_equal(draw_predictions(small, []), np.repeat(np.repeat(small, 8, 0), 8, 1))
    with pytest.raises(PhanetError, match="min_side <= max_side"):
        draw_predictions(small, [], min_side=300, max_side=200)


def test_drawings_that_cannot_be_written_are_counted_not_drawn(checkpoint, tmp_path, monkeypatch, capsys):
    for name in ("a", "b", "c"):
        Image.new("RGB", (40, 30), (120, 80, 60)).save(tmp_path / f"{name}.png")
    drawn, out = tmp_path / "drawn", tmp_path / "rows.csv"
    encode, write, calls = cv2.imencode, phanet.files.atomic_write_bytes, []

    def first_encoding_fails(suffix, image):
        calls.append(suffix)
        return (False, None) if len(calls) == 1 else encode(suffix, image)

    def full_disk(path, data):
        if Path(path).name == "c.png":
            raise write_failed(path, OSError(28, "No space left on device"))
        write(path, data)

    monkeypatch.setattr(cv2, "imencode", first_encoding_fails)
    monkeypatch.setattr(phanet.files, "atomic_write_bytes", full_disk)
    assert (
        main(
            [
                "predict",
                *(str(tmp_path / f"{n}.png") for n in "abc"),
                "--checkpoint",
                str(checkpoint),
                "--no-detect",
                "--out",
                str(out),
                "--visualize",
                str(drawn),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"drawn: 1 image in {drawn}; not drawn: 2 (first: {drawn / 'a.png'}: OpenCV could not encode" in printed
    assert sorted(p.name for p in drawn.iterdir()) == ["b.png"]
    assert pd.read_csv(out)["status"].tolist() == ["ok"] * 3


# ------------------------------------------------------------------------------------------- datasets


def test_a_bomb_in_a_dataset_is_skipped_and_counted(tmp_path, capsys):
    for path in ("HA/s1_a.png", "HA/s2_a.png", "SA/s1_b.png", "SA/s2_b.png"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / path)
    declared_png(tmp_path / "SA" / "s3_bomb.png", 30000, 30000)
    assert main(["data", "inspect", "--dataset", "folder", "--root", str(tmp_path), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    assert "4 usable images" in printed.out and "Skipped 1 file that could not be parsed or read:" in printed.out
    assert "  SA/s3_bomb.png: declares 900 MP, more than the 64 MP limit" in printed.out
    # Training reads the images through FaceDataset: the bomb is left out of its batch and counted.
    faces = load_dataset("folder", str(tmp_path))
    batch = FaceDataset(faces, 8).__getitems__(list(range(len(faces))))
    assert len(faces) == 5 and int(batch["skipped"]) == 1 and batch["pixels"].shape == (4, 8, 8, 3)


@pytest.mark.slow
def test_a_broken_video_is_one_line_without_the_decoders_own_messages(checkpoint, tmp_path):
    """FFmpeg, under OpenCV, prints its own lines about a broken video ("moov atom not found") beside the
    row or the line that says the same; they are kept quiet unless the user set OPENCV_FFMPEG_LOGLEVEL."""
    import os
    import subprocess
    import sys

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.mp4").write_bytes(b"")
    (tmp_path / "in" / "cut.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    Image.new("RGB", (40, 30)).save(tmp_path / "in" / "photo.png")
    env = {key: value for key, value in os.environ.items() if key != "OPENCV_FFMPEG_LOGLEVEL"}
    command = [sys.executable, "-m", "phanet", "predict", "--checkpoint", str(checkpoint), "--no-progress"]
    alone = subprocess.run([*command, str(tmp_path / "in" / "empty.mp4")], capture_output=True, text=True, env=env, timeout=120)
    assert alone.returncode == 2
    assert alone.stderr.splitlines() == [
        f"phanet predict: error: {tmp_path / 'in' / 'empty.mp4'}: cannot be opened as a video (OpenCV could not decode a frame)"
    ]
    folder = subprocess.run([*command, str(tmp_path / "in")], capture_output=True, text=True, env=env, timeout=120)
    assert folder.returncode == 0 and folder.stderr == ""
    assert "3 images or frames, 0 faces; no face: 1, unreadable: 2" in folder.stdout
