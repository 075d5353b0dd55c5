"""``phanet predict`` over a folder loses no row: rows are kept as they come, a stopped or killed run
continues with --resume, two runs never write one --out or --visualize folder at once, and no drawing
replaces a photo. Argument errors come before PyTorch is loaded."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from phanet.cli import main
from phanet.predict import Predictor
from phanet.predict.journal import RowJournal, partial_path
from predict_helpers import isolated_threads, untrained_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("untrained") / "tiny.ckpt")


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (32 + i, 32), (40 * i, 80, 60)).save(folder / f"p{i}.png")
    return folder


def _predict(*args) -> int:
    return main(["predict", *map(str, args), "--no-detect", "--no-progress"])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_stopped_run_keeps_its_rows_and_resume_finishes_it_as_one_run_would(checkpoint, photos, tmp_path, monkeypatch, capsys):
    whole = tmp_path / "whole.csv"
    assert _predict(photos, "--checkpoint", checkpoint, "--out", whole) == 0
    out = tmp_path / "rows.csv"
    real = Predictor.iter_predict

    def stopped_after_three(self, *args, **kwargs):
        for n, result in enumerate(real(self, *args, **kwargs)):
            if n == 3:
                raise KeyboardInterrupt
            yield result

    monkeypatch.setattr(Predictor, "iter_predict", stopped_after_three)
    assert _predict(photos, "--checkpoint", checkpoint, "--out", out) == 130
    partial = partial_path(out)
    assert _one_line(capsys) == (
        f"phanet predict: stopped by SIGINT after 3 images or frames; their rows are kept in {partial}: "
        "run the same command with --resume to continue"
    )
    assert not out.exists() and len(partial.read_text().splitlines()) == 4  # the settings, then 3 pictures
    monkeypatch.setattr(Predictor, "iter_predict", real)
    # The partial file is neither lost nor replaced unasked.
    assert _predict(photos, "--checkpoint", checkpoint, "--out", out) == 2
    assert "holds the rows of a stopped run" in _one_line(capsys) and partial.exists()
    # A kill in the middle of a line: the cut line is dropped and its picture predicted again.
    with partial.open("a") as handle:
        handle.write('{"file": "' + str(photos / "p3.png") + '", "frame": -1, "ro')
    assert _predict(photos, "--checkpoint", checkpoint, "--out", out, "--resume") == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(whole))
    assert not partial.exists()


def test_resume_needs_a_stopped_run_with_the_same_settings(checkpoint, photos, tmp_path, monkeypatch, capsys):
    out = tmp_path / "rows.csv"
    assert _predict(photos, "--checkpoint", checkpoint, "--out", out, "--resume") == 2
    assert _one_line(capsys).endswith(f"--resume: no stopped run to continue: {partial_path(out)} does not exist")
    assert not partial_path(out).exists()
    real = Predictor.iter_predict

    def stopped_after_one(self, *args, **kwargs):
        yield next(real(self, *args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(Predictor, "iter_predict", stopped_after_one)
    assert _predict(photos, "--checkpoint", checkpoint, "--out", out, "--margin", "0.5") == 130
    assert "stopped by SIGINT after 1 image or frame" in _one_line(capsys)
    monkeypatch.setattr(Predictor, "iter_predict", real)
    assert _predict(photos, "--checkpoint", checkpoint, "--out", out, "--resume") == 2
    assert "--resume: the stopped run had --margin 0.5, this one 0.2; resume with the same settings" in _one_line(capsys)
    assert _predict(photos, "--checkpoint", checkpoint, "--out", out, "--overwrite") == 0
    assert len(pd.read_csv(out)) == 6 and not partial_path(out).exists()


def test_a_partial_file_nested_past_the_json_parser_is_damaged_not_a_traceback(checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    partial = partial_path(out)
    assert _predict(photos, "--checkpoint", checkpoint, "--out", out) == 0
    partial.write_text(json.dumps({"phanet predict": "x"}) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    out.unlink()
    assert _predict(photos, "--checkpoint", checkpoint, "--out", out, "--resume") == 2
    assert _one_line(capsys).startswith(f"phanet predict: error: --resume: {partial} is damaged at line ")


def test_a_second_run_into_the_same_out_or_drawing_folder_is_refused_while_the_first_lives(checkpoint, photos, tmp_path, capsys):
    out, drawn = tmp_path / "rows.csv", tmp_path / "drawn"
    held = RowJournal.open(out, {}, resume=False, overwrite=False)
    try:
        for extra in ([], ["--overwrite"]):
            assert _predict(photos, "--checkpoint", checkpoint, "--out", out, *extra) == 2
            assert "rows.csv is being written by another phanet predict" in _one_line(capsys)
    finally:
        held.close(finished=False)
    assert not out.exists() and not partial_path(out).exists()
    drawn.mkdir()
    fd = os.open(drawn, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert _predict(photos, "--checkpoint", checkpoint, "--visualize", drawn, "--overwrite") == 2
        assert "is being drawn into by another phanet predict" in _one_line(capsys)
    finally:
        os.close(fd)
    assert list(drawn.iterdir()) == []


@pytest.mark.slow
def test_two_runs_started_together_write_one_table_and_refuse_the_other(checkpoint, photos, tmp_path):
    out = tmp_path / "rows.csv"
    argv = [sys.executable, "-m", "phanet", "predict", str(photos), "--checkpoint", str(checkpoint), "--no-detect"]
    argv += ["--out", str(out), "--visualize", str(tmp_path / "drawn"), "--no-progress"]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ended = [(run.wait(timeout=300), run.stdout.read(), run.stderr.read()) for run in runs]
    assert sorted(code for code, _, _ in ended) == [0, 2], ended
    refused = next(err for code, _, err in ended if code == 2)
    assert "another phanet predict" in refused or "already exists" in refused or "is not empty" in refused, refused
    assert len(pd.read_csv(out)) == 6 and len(list((tmp_path / "drawn").iterdir())) == 6


def test_drawings_into_the_input_folder_never_replace_a_photo(checkpoint, photos, capsys):
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    assert _predict(photos, "--checkpoint", checkpoint, "--visualize", photos, "--overwrite") == 0
    assert {name: (photos / name).read_bytes() for name in before} == before
    drawn = sorted(set(p.name for p in photos.iterdir()) - set(before))
    assert drawn == [f"p{i}-2.png" for i in range(6)]
    assert _predict(photos / "p0.png", "--checkpoint", checkpoint, "--visualize", photos, "--overwrite") == 0
    assert (photos / "p0.png").read_bytes() == before["p0.png"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["", "--checkpoint", "x.ckpt"], "INPUT: an empty value; give a name or leave the option out"),
        (["{photos}", "--checkpoint", "x.ckpt", "--batch-size", "0"], "--batch-size: expected 1 or more, got 0"),
        (["{photos}", "--checkpoint", "x", "--device", "tpu"], "--device: 'tpu' is not a device (expected cpu, cuda"),
        (["{photos}", "--checkpoint", "x", "--out", "a.txt"], "--out: expected a file name ending in .csv or .json, got a.txt"),
        (["{photos}", "--checkpoint", "x.ckpt", "--resume"], "--resume: give the --out of the stopped run"),
        (["absent.jpg", "--checkpoint", "x.ckpt"], "absent.jpg: no such file or folder"),
    ],
)
def test_argument_errors_come_before_pytorch_is_loaded(argv, message, photos):
    argv = [a.format(photos=photos) for a in argv]
    script = (
        "import sys, time; start = time.perf_counter(); from phanet.cli import main; "
        f"code = main(['predict', *{argv!r}]); "
        "print(code, 'torch' in sys.modules, round(time.perf_counter() - start, 3))"
    )
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=photos)
    code, torch_loaded, seconds = ended.stdout.split()
    assert (code, torch_loaded) == ("2", "False"), ended.stderr
    assert ended.stderr.strip().startswith(f"phanet predict: error: {message}")


def test_pictures_without_a_face_are_given_out_as_they_come_not_held_for_a_batch_of_faces(checkpoint, tmp_path, monkeypatch):
    """Rows come at least every batch of pictures, whether or not faces were found in them: a folder of
    photos without faces is written (and kept by a kill) as it goes, and at most a batch of pictures,
    with their images for --visualize, waits in memory."""
    import phanet.predict.predictor

    folder = tmp_path / "landscapes"
    folder.mkdir()
    for i in range(20):
        Image.new("RGB", (40, 32), (10 * i, 120, 200)).save(folder / f"p{i:02d}.png")
    read: list[int] = []
    real = phanet.predict.predictor.pictures

    def counted(*args, **kwargs):
        for picture in real(*args, **kwargs):
            read.append(picture[0])
            yield picture

    monkeypatch.setattr(phanet.predict.predictor, "pictures", counted)
    predictor = Predictor.from_checkpoint(checkpoint, batch_size=4)
    waiting = [len(read) - given for given, result in enumerate(predictor.iter_predict(folder, keep_images=True), start=1)]
    assert len(waiting) == 20 and max(waiting) == 3
    assert [result.status for result in predictor.iter_predict(folder)] == ["no_face"] * 20


@pytest.mark.slow
def test_a_killed_run_loses_no_row(checkpoint, tmp_path):
    photos = tmp_path / "many"
    photos.mkdir()
    for i in range(300):
        Image.new("RGB", (32, 32), (i % 250, 80, 60)).save(photos / f"p{i:03d}.png")
    out = tmp_path / "rows.csv"
    argv = [sys.executable, "-m", "phanet", "predict", str(photos), "--checkpoint", str(checkpoint), "--no-detect"]
    argv += ["--out", str(out), "--batch-size", "1", "--no-progress"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = partial_path(out)
    deadline = time.time() + 240
    try:
        while not (partial.exists() and len(partial.read_bytes().splitlines()) > 5):
            assert process.poll() is None, process.stderr.read()
            assert time.time() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    kept = [json.loads(line) for line in partial.read_text().splitlines()[1:] if line.endswith("}")]
    assert kept and not out.exists()
    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    table = pd.read_csv(out)
    assert table["file"].tolist() == [str(photos / f"p{i:03d}.png") for i in range(300)]
    assert not partial.exists()
