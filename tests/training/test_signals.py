"""SIGTERM, SIGINT, SIGHUP and SIGQUIT during training: the last finished epoch is kept, one line says
so and how to resume, the exit status is 128 + the signal, and resuming finishes every epoch exactly
once. Ctrl+C pressed twice stops it the same way."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from conftest import tiny_overrides
from phanet.cli import main


def _stop_after_first_epoch(out, args: list[str], signum: int, times: int = 1) -> tuple[int, str]:
    """Start ``phanet ARGS``, send ``signum`` (``times`` times, 0.2 s apart) once the first epoch's
    ``last.ckpt`` and metrics row are written; returns the exit status and stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "phanet", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    metrics = out / "metrics.csv"
    deadline = time.time() + 240
    try:
        while not (metrics.exists() and (out / "checkpoints" / "last.ckpt").exists()):
            assert process.poll() is None, process.stderr.read()[-2000:]
            assert time.time() < deadline, "the first epoch never finished"
            time.sleep(0.05)
        for _ in range(times):
            process.send_signal(signum)
            time.sleep(0.2)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, times, status",
    [
        (signal.SIGTERM, 1, 143),
        (signal.SIGINT, 1, 130),
        (signal.SIGHUP, 1, 129),
        (signal.SIGQUIT, 1, 131),
        (signal.SIGINT, 2, 130),  # Ctrl+C twice, 0.2 s apart
    ],
)
def test_a_signal_keeps_the_last_epoch_says_so_and_resume_finishes_the_run(signum, times, status, tiny_manifest, tmp_path):
    out = tmp_path / signal.Signals(signum).name
    args = ["train", "--config", "demo", *tiny_overrides(tiny_manifest, out, "train.epochs=3"), "--no-progress"]
    returncode, err = _stop_after_first_epoch(out, args, signum, times)
    assert returncode == status, err[-2000:]
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"phanet train: stopped by {signal.Signals(signum).name} after epoch (\d) of 3 "
        rf"\({re.escape(str(out / 'checkpoints' / 'last.ckpt'))} holds it\); "
        rf"resume with: phanet train --out {re.escape(str(out))} --resume",
        line,
    )
    assert match, line
    done = int(match.group(1))
    assert done in (1, 2)
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == done - 1
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == list(range(done))
    assert not list(out.rglob("*.tmp"))
    if signum in (signal.SIGTERM, signal.SIGHUP) or times == 2:
        assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
        assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [0, 1, 2]
        assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_sigterm_stops_the_processes_of_a_spawned_data_parallel_training_too(tiny_manifest, tmp_path):
    """With ddp_spawn the processes it started train while the command waits: a SIGTERM sent to the
    command alone (as ``kill`` sends it) reaches them, the command says what was kept, nothing trains
    on behind it, and resuming finishes the run."""
    out = tmp_path / "spawned"
    overrides = tiny_overrides(tiny_manifest, out, "train.epochs=8", "train.threads=1", "train.pan_init.warmup_epochs=0")
    parallel = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp_spawn", "--no-progress"]
    returncode, err = _stop_after_first_epoch(out, ["train", "--config", "demo", *overrides, *parallel], signal.SIGTERM)
    assert returncode == 143, err[-2000:]
    assert "Traceback" not in err and "reducer.cpp" not in err
    line = err.strip().splitlines()[-1]
    match = re.fullmatch(r"phanet train: stopped by SIGTERM after epoch (\d) of 8 \(.*\); resume with: .*", line)
    assert match, line
    kept = (out / "metrics.csv").read_text()
    time.sleep(5)  # an epoch takes about a second here: a process left training would write another row
    assert (out / "metrics.csv").read_text() == kept
    done = int(match.group(1))
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == list(range(done)) and done < 8
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == list(range(8))


@pytest.mark.slow
def test_sigterm_outside_training_stops_the_command_with_one_line(tmp_path):
    """A SIGTERM before any epoch (here: while rendering data) ends the command the same way."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phanet",
            "synth",
            "--preset",
            "bu3dfe",
            "--subjects",
            "200",
            "--size",
            "64",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "synth"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().startswith("rendering 200 subjects")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert err.strip().splitlines()[-1] == "phanet synth: stopped by SIGTERM" and "Traceback" not in err
    assert not list((tmp_path / "synth").rglob("*.tmp"))
