"""A run folder survives what users do to it: a second training into it, resuming with new settings,
broken or diverged checkpoints, a full disk; its files follow the umask."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import stat
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml

from conftest import tiny_overrides
from phanet.cli import main
from phanet.config import load_config
from phanet.errors import PhanetError
from phanet.training.run import load_module, train
from phanet.training.run_folder import LOCK_FILE, RunLock


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _contents(run) -> dict:
    """The bytes of every file of a run folder but its lock (which names the latest holder)."""
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != LOCK_FILE}


@pytest.fixture(scope="module")
def one_epoch(tiny_manifest, tmp_path_factory):
    """A finished one-epoch tiny run, trained with umask 022, SAL at a tenth of the rate (a part multiplier
    for the resume tests to change)."""
    out = tmp_path_factory.mktemp("hardening") / "run"
    previous = os.umask(0o022)
    try:
        train(
            load_config("demo", tiny_overrides(tiny_manifest, out, "train.epochs=1", "optim.part_lr={SAL: 0.1}")), progress=False
        )
    finally:
        os.umask(previous)
    return out


@pytest.fixture
def run_copy(one_epoch, tmp_path):
    """A copy of the one-epoch run that a test may change."""
    return shutil.copytree(one_epoch, tmp_path / "run")


@pytest.mark.slow
def test_run_files_follow_the_umask(one_epoch):
    modes = {p.relative_to(one_epoch).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in one_epoch.rglob("*")}
    assert {"config.yaml", "split.json", "classes.json", "metrics.csv", "checkpoints/best.ckpt", "checkpoints/last.ckpt"} == set(
        modes
    ) - {"checkpoints"}  # the lock is removed once the training ends
    assert {name: mode for name, mode in modes.items() if mode != (0o755 if name == "checkpoints" else 0o644)} == {}


def test_a_second_training_into_a_locked_folder_is_refused(run_copy, tiny_manifest, capsys):
    holder = RunLock(run_copy)
    holder.acquire()  # another open file description conflicts as another process would
    try:
        before = _contents(run_copy)
        err = _error(capsys, ["train", "--out", str(run_copy), "--resume", "train.epochs=2", "--no-progress"])
        assert f"--out: {run_copy} is in use by another training (pid {os.getpid()} on " in err and "\\n" not in err
        err = _error(capsys, ["train", "--config", "demo", *tiny_overrides(tiny_manifest, run_copy)])
        assert "is in use by another training" in err
        assert _contents(run_copy) == before
    finally:
        holder.release()


@pytest.mark.slow
def test_a_lock_whose_holder_was_killed_is_free(run_copy, capsys):
    # A process holding the folder's lock as a training does (flock on OUT/.lock), then killed with SIGKILL.
    code = (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
        "print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(run_copy / LOCK_FILE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert "is in use" in _error(capsys, ["train", "--out", str(run_copy), "--resume", "--no-progress"])
    finally:
        holder.kill()
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    assert main(["train", "--out", str(run_copy), "--resume", "train.epochs=2", "--no-progress"]) == 0
    assert pd.read_csv(run_copy / "metrics.csv")["epoch"].tolist() == [0, 1]
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert torch.load(run_copy / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    assert not (run_copy / LOCK_FILE).exists()


@pytest.mark.slow
def test_resume_applies_a_new_learning_rate(run_copy, capsys):
    assert (
        main(
            [
                "train",
                "--out",
                str(run_copy),
                "--resume",
                "train.epochs=2",
                "optim.lr=0.005",
                "optim.part_lr={SAL: 0.2}",
                "optim.weight_decay=0.001",
                "--no-progress",
            ]
        )
        == 0
    )
    metrics = pd.read_csv(run_copy / "metrics.csv")
    assert metrics["epoch"].tolist() == [0, 1]
    assert metrics["lr"].tolist() == pytest.approx([0.001, 0.005])
    groups = torch.load(run_copy / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"][0]["param_groups"]
    assert [g.get("name") for g in groups] == [None, "SAL"]
    assert [(g["lr"], g["initial_lr"], g["weight_decay"]) for g in groups] == [
        pytest.approx((0.005, 0.005, 0.001)),
        pytest.approx((0.001, 0.001, 0.001)),
    ]
    stored = yaml.safe_load((run_copy / "config.yaml").read_text())
    assert stored["optim"]["lr"] == 0.005 and stored["train"]["epochs"] == 2
    # Fewer epochs than the run has finished: refused before anything changes.
    before = _contents(run_copy)
    assert main(["train", "--out", str(run_copy), "--resume", "train.epochs=1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"phanet train: error: --resume: {run_copy} has finished 2 epochs, "
        "more than train.epochs (1); give train.epochs=2 or more"
    )
    assert _contents(run_copy) == before


@pytest.mark.slow
def test_resume_keeps_the_multistep_schedule_position(tiny_manifest, tmp_path):
    # SGD whose rate drops x0.1 after epoch 1: resumed at epoch 2 with a new base rate and milestone.
    out = tmp_path / "sgd"
    base = tiny_overrides(
        tiny_manifest,
        out,
        "optim.name=sgd",
        "optim.scheduler=multistep",
        "optim.lr=0.01",
        "optim.milestones=[1]",
        "train.pan_init.enabled=false",
    )
    train(load_config("demo", [*base, "train.epochs=2"]), progress=False)
    assert (
        main(
            [
                "train",
                "--out",
                str(out),
                "--resume",
                "train.epochs=3",
                "optim.lr=0.04",
                "optim.milestones=[1, 2]",
                "optim.momentum=0.5",
                "--no-progress",
            ]
        )
        == 0
    )
    # epoch 0: 0.01; epoch 1: 0.001 (milestone 1); epoch 2: 0.04 x 0.1 x 0.1 (milestones 1 and 2 passed)
    assert pd.read_csv(out / "metrics.csv")["lr"].tolist() == pytest.approx([0.01, 0.001, 0.0004])
    group = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"][0]["param_groups"][0]
    assert group["momentum"] == 0.5 and group["initial_lr"] == pytest.approx(0.04)


@pytest.mark.slow
def test_the_cosine_schedule_falls_to_its_floor_and_resumes_where_a_run_with_the_new_settings_would_be(tiny_manifest, tmp_path):
    from phanet.training.optim import cosine_factor

    assert [cosine_factor(e, 4, 0.1) for e in range(6)] == pytest.approx(
        [1, 0.1 + 0.9 * (1 + 0.5**0.5) / 2, 0.55, 0.1 + 0.9 * (1 - 0.5**0.5) / 2, 0.1, 0.1]
    )
    out = tmp_path / "cosine"
    base = tiny_overrides(tiny_manifest, out, "optim.scheduler=cosine", "optim.lr=0.01", "optim.lr_decay=0.1")
    train(load_config("demo", [*base, "train.pan_init.enabled=false", "train.epochs=2"]), progress=False)
    # epoch 0 at the full rate, epoch 1 halfway down to x0.1 of it
    assert pd.read_csv(out / "metrics.csv")["lr"].tolist() == pytest.approx([0.01, 0.0055])
    assert main(["train", "--out", str(out), "--resume", "train.epochs=4", "optim.lr=0.02", "--no-progress"]) == 0
    # resumed as if the run had had 4 epochs at 0.02 from the start: epoch 2 of 4 is halfway down
    assert pd.read_csv(out / "metrics.csv")["lr"].tolist() == pytest.approx(
        [0.01, 0.0055, 0.011, 0.02 * cosine_factor(3, 4, 0.1)]
    )


def _best_state(payload: dict) -> dict:
    return next(v for k, v in payload["callbacks"].items() if k.startswith("ModelCheckpoint{'monitor': 'val/"))


@pytest.mark.slow
def test_a_moved_run_keeps_its_best_score_on_resume(one_epoch, run_copy):
    # The run's best so far is a perfect validation accuracy, which no later epoch can beat: resumed in
    # the copy (another path than the one it was trained in), best.ckpt must stay the epoch-0 model.
    last = run_copy / "checkpoints" / "last.ckpt"
    payload = torch.load(last, weights_only=True)
    state = _best_state(payload)
    assert state["dirpath"] == str((one_epoch / "checkpoints").resolve())
    perfect = torch.tensor(1.0)
    state.update(best_model_score=perfect, kth_value=perfect, best_k_models={state["best_model_path"]: perfect})
    torch.save(payload, last)
    best = (run_copy / "checkpoints" / "best.ckpt").read_bytes()
    original = _contents(one_epoch)
    config = load_config(run_copy / "config.yaml", [f"out={run_copy}", "train.epochs=2"])
    result = train(config, resume=True, progress=False)
    assert pd.read_csv(run_copy / "metrics.csv")["epoch"].tolist() == [0, 1]
    assert result.best_score == 1.0 and result.finished is None
    assert (run_copy / "checkpoints" / "best.ckpt").read_bytes() == best
    state = _best_state(torch.load(last, weights_only=True))
    assert state["dirpath"] == str((run_copy / "checkpoints").resolve()) and float(state["best_model_score"]) == 1.0
    assert state["best_model_path"] == str((run_copy / "checkpoints" / "best.ckpt").resolve())
    assert _contents(one_epoch) == original  # the folder it was copied from is not touched


def test_resuming_a_run_that_trained_every_epoch_says_so(run_copy, capsys):
    before = _contents(run_copy)
    assert main(["train", "--out", str(run_copy), "--resume", "optim.lr=0.5", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"{run_copy} had already trained every epoch of train.epochs (1); nothing was trained. "
        "To train on, resume with train.epochs above 1"
    )
    assert out[1] == f"run folder: {run_copy}"
    assert _contents(run_copy) == before  # config.yaml keeps the settings the run was trained with


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.name=sgd"], "--resume: optim.name ('adam' in the run, 'sgd' now) differs from the run"),
        (["optim.scheduler=multistep"], "--resume: optim.scheduler ('plateau' in the run, 'multistep' now) differs"),
        (
            ["optim.part_lr={PAN_S2: 0.5, SAL: 0.1}"],
            "--resume: the set of parts in optim.part_lr (SAL in the run, PAN_S2, SAL now) differs",
        ),
        (["model.backbone.growth_rate=8"], "--resume: model.backbone.growth_rate (6 in the run, 8 now) differs"),
        (["train.schedule=alternating"], "--resume: train.schedule ('joint' in the run, 'alternating' now) differs"),
        (["train.ema=0.99"], "--resume: train.ema (0.0 in the run, 0.99 now) differs"),
    ],
)
def test_a_refused_resume_leaves_the_run_unchanged(overrides, message, run_copy, capsys):
    before = _contents(run_copy)
    assert message in _error(capsys, ["train", "--out", str(run_copy), "--resume", "optim.lr=0.5", *overrides])
    assert _contents(run_copy) == before


def _damage(last, how: str) -> None:
    payload = torch.load(last, weights_only=True)
    if how == "junk":
        last.write_bytes(b"not a checkpoint at all")
    elif how == "truncated":
        last.write_bytes(last.read_bytes()[:5000])
    elif how == "foreign":
        torch.save({"weights": torch.zeros(3)}, last)
    elif how == "weights only":
        torch.save({"hyper_parameters": payload["hyper_parameters"], "state_dict": payload["state_dict"]}, last)
    elif how == "other network":
        payload["state_dict"].pop(next(iter(payload["state_dict"])))
        torch.save(payload, last)
    elif how == "nan":
        name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
        payload["state_dict"][name][0] = float("nan")
        torch.save(payload, last)


@pytest.mark.slow
@pytest.mark.parametrize(
    "how, message",
    [
        ("junk", "is not a readable checkpoint"),
        ("truncated", "is not a readable checkpoint"),
        ("foreign", "is not a phanet checkpoint"),
        ("weights only", "holds weights but no training state"),
        ("other network", "does not match the run's config"),
        ("nan", "holds non-finite weights (NaN or infinity), first in 'model."),
    ],
)
def test_a_broken_last_checkpoint_is_refused_and_config_yaml_stays(how, message, run_copy, capsys):
    last = run_copy / "checkpoints" / "last.ckpt"
    _damage(last, how)
    config = (run_copy / "config.yaml").read_bytes()
    err = _error(capsys, ["train", "--out", str(run_copy), "--resume", "train.epochs=2", "optim.lr=0.5"])
    assert err.startswith(f"phanet train: error: --resume: {last} ") and message in err
    assert (run_copy / "config.yaml").read_bytes() == config


def test_non_finite_weights_are_refused_when_a_checkpoint_loads(one_epoch, tmp_path, capsys):
    payload = torch.load(one_epoch / "checkpoints" / "best.ckpt", weights_only=True)
    name = [k for k, v in payload["state_dict"].items() if v.is_floating_point()][3]
    payload["state_dict"][name].view(-1)[-1] = float("inf")
    torch.save(payload, tmp_path / "diverged.ckpt")
    with pytest.raises(PhanetError, match=rf"diverged.ckpt holds non-finite weights .*first in '{name}'"):
        load_module(tmp_path / "diverged.ckpt")
    err = _error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "diverged.ckpt")])
    assert "holds non-finite weights" in err
    assert load_module(one_epoch / "checkpoints" / "best.ckpt").config.train.epochs == 1


@pytest.mark.slow
def test_a_run_that_never_finished_an_epoch_starts_again(run_copy, tiny_manifest, capsys):
    (run_copy / "checkpoints" / "last.ckpt").unlink()
    err = _error(capsys, ["train", "--out", str(run_copy), "--resume"])
    assert "never finished an epoch (no checkpoints/last.ckpt); start it again without --resume" in err
    assert main(["train", "--config", "demo", *tiny_overrides(tiny_manifest, run_copy, "train.epochs=1"), "--no-progress"]) == 0
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert pd.read_csv(run_copy / "metrics.csv")["epoch"].tolist() == [0]
    (run_copy / "notes.txt").write_text("mine")
    err = _error(capsys, ["train", "--config", "demo", *tiny_overrides(tiny_manifest, run_copy)])
    assert "already holds files" in err


def _with_file_limit(limit: int, *args: str) -> subprocess.CompletedProcess:
    """``phanet ARGS`` where no file may grow beyond ``limit`` bytes: writes fail as on a full disk."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-large write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "phanet", *args], capture_output=True, text=True, timeout=240, preexec_fn=limit_files
    )


@pytest.mark.slow
def test_synth_on_a_full_disk_ends_with_one_line(tmp_path):
    out = tmp_path / "synth"
    result = _with_file_limit(
        1000, "synth", "--preset", "kdef", "--subjects", "1", "--size", "32", "--workers", "1", "--out", str(out)
    )
    assert result.returncode == 2, result.stderr[-2000:]
    err = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert err[-1].startswith(f"phanet synth: error: {out}/") and "could not write (File too large" in err[-1]
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_training_on_a_full_disk_ends_with_one_line_and_can_start_again(tiny_manifest, tmp_path, capsys):
    out = tmp_path / "full"
    args = ["train", "--config", "demo", *tiny_overrides(tiny_manifest, out, "train.epochs=1"), "--no-progress"]
    result = _with_file_limit(100_000, *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"phanet train: error: {out / 'checkpoints'}/") and "could not write" in last_line
    assert not list(out.rglob("*.tmp")) and not (out / "checkpoints" / "last.ckpt").exists()
    assert main(args) == 0
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [0]


@pytest.mark.slow
def test_a_last_checkpoint_that_is_a_named_pipe_is_refused_at_once(run_copy, capsys):
    last = run_copy / "checkpoints" / "last.ckpt"
    last.unlink()
    os.mkfifo(last)  # reading it would wait for a writer forever
    before = _contents(run_copy)
    err = _error(capsys, ["train", "--out", str(run_copy), "--resume", "train.epochs=2", "--no-progress"])
    assert err == f"phanet train: error: --resume: {last}: a named pipe (FIFO), not a regular file"
    assert _contents(run_copy) == before
