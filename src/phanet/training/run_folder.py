"""A run folder: where each file of a training run lies, what makes a config the same run, its lock.

Layout::

    RUN/config.yaml        the resolved configuration
    RUN/split.json         subjects of the train / val / test parts
    RUN/classes.json       expression and pose class lists
    RUN/metrics.csv        one row per epoch
    RUN/dynamics.csv       with train.dynamics > 0: gradients, updates and SAL per step
    RUN/checkpoints/best.ckpt, last.ckpt
    RUN/evaluation/predictions.csv, evaluation.json   the test of best.ckpt (phanet evaluate, experiments)
    RUN/.lock              held by the training that writes the folder (see :class:`RunLock`)

Every file is written through :mod:`phanet.files` (a temporary file renamed into place).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phanet.checks import shorten
from phanet.config import Config, config_from_dict, dump_yaml, read_yaml, show
from phanet.errors import PhanetError
from phanet.files import FileLock, open_regular, write_csv, write_json

if TYPE_CHECKING:
    import pandas as pd

LOCK_FILE = ".lock"
EVALUATION_FILE = "evaluation.json"
PREDICTIONS_FILE = "predictions.csv"

#: What a run is: the data it learns from, the network, the loss, the seed, and the kind of
#: optimiser, learning-rate schedule and training schedule. A resume keeps every one of them, and an
#: experiment continues or reuses a folder only for a config that matches them; anything else (the
#: rates, epochs, devices, data loading) may change on resume.
SAME_RUN = (
    "seed",
    "data.dataset",
    "data.root",
    "data.options",
    "data.split",
    "data.flip",
    "data.jitter",
    "data.colour",
    "model",
    "loss",
    "optim.name",
    "optim.scheduler",
    "train.schedule",
    "train.ema",
)
#: The training budget: what a resume may change and applies from its first epoch. A finished run is
#: reused only for a config with the same budget, so that no result is reported under a budget it was
#: not trained with.
BUDGET = (
    "optim",
    "train.epochs",
    "train.batch_size",
    "train.sync_batchnorm",
    "train.early_stop",
    "train.chance_margin",
    "train.gradient_clip",
    "train.gradient_clip_by",
    "train.pan_init",
)


def training_end(payload: dict[str, Any], train: Any) -> str | None:
    """The setting of ``train`` (a config's ``train`` section) that leaves nothing to train in the run
    whose ``last.ckpt`` holds ``payload``: ``epochs`` (every epoch done), ``early_stop`` (that many
    epochs without a better validation FER accuracy) or ``max_minutes`` (the training time used);
    None when it has epochs left."""
    if int(payload.get("epoch", -1)) + 1 >= train.epochs:
        return "epochs"
    if train.early_stop > 0 and epochs_without_better(payload) >= train.early_stop:
        return "early_stop"
    if train.max_minutes and training_seconds(payload) >= 60 * train.max_minutes:
        return "max_minutes"
    return None


def epochs_without_better(payload: dict[str, Any]) -> int:
    """The early stopping count of the run whose ``last.ckpt`` holds ``payload``: epochs since its last
    better validation FER accuracy (0 without early stopping)."""
    states = payload.get("callbacks", {})
    stopping: dict[str, Any] = next((v for k, v in states.items() if k.startswith("EarlyStopping")), {})
    return int(stopping.get("wait_count", 0))


def training_seconds(payload: dict[str, Any]) -> float:
    """The training time of every attempt of the run whose ``last.ckpt`` holds ``payload`` (Lightning's
    Timer, which ``train.max_minutes`` is measured by)."""
    return float(payload.get("callbacks", {}).get("Timer", {}).get("time_elapsed", {}).get("train", 0.0))


def _get(values: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        values = values[part]
    return values


def _first_difference(a: Any, b: Any, where: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}")
    return f"{where} ({show(a)} in the run, {show(b)} now)"


class RunLock:
    """A run folder's writer: an exclusive ``flock`` on ``RUN/.lock`` (:class:`~phanet.files.FileLock`),
    kept while the training lives.

    The kernel drops the lock when its process ends, however it ends (``kill -9`` included), so a
    lock is never stale; a training that ends removes the file while it still holds the lock, and one
    that was killed leaves it for the next to take. The file names the holder (process, host, start
    time) for the message a second writer gets. Only rank zero takes it.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.lock = FileLock(self.path)

    def acquire(self) -> None:
        if self.lock.fd is not None:
            return
        if not self.lock.acquire():
            raise PhanetError.about(
                "out",
                "{run} is in use by another training ({holder}); wait for it to end or choose another {out}",
                run=self.run_dir,
                holder=self._holder(),
            )
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        fd = self.lock.fd
        if fd is not None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode(), 0)

    def _holder(self) -> str:
        """Who holds the lock, as its file says."""
        try:
            with open_regular(self.path) as handle:
                text = handle.read(200).decode("utf-8", "replace").strip()
        except (OSError, PhanetError):
            text = ""
        return shorten(text, 120) or "another process"

    def release(self) -> None:
        self.lock.release(remove=True)


def write_evaluation(folder: Path, summary: dict[str, Any], predictions: pd.DataFrame) -> None:
    """``predictions.csv`` and ``evaluation.json`` in ``folder``; ``evaluation.json`` last, since its
    presence marks a finished evaluation."""
    write_csv(folder / PREDICTIONS_FILE, predictions)
    write_json(folder / EVALUATION_FILE, summary)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A predictions.csv with class-name columns kept as text (pose names like "-30", '' when unknown)."""
    import pandas as pd

    text = {"true_expression": str, "expression": str, "true_pose": str, "pose": str, "subject": str}
    with open_regular(path) as handle:
        frame = pd.read_csv(handle, dtype=text)
    for column in text:
        if column in frame:
            frame[column] = frame[column].fillna("")
    return frame


class RunFolder:
    """The folder of one training run (layout in the module's docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_file = self.path / "config.yaml"
        self.split_file = self.path / "split.json"
        self.classes_file = self.path / "classes.json"
        self.metrics_file = self.path / "metrics.csv"
        self.dynamics_file = self.path / "dynamics.csv"
        self.checkpoints = self.path / "checkpoints"
        self.best = self.checkpoints / "best.ckpt"
        self.last = self.checkpoints / "last.ckpt"
        self.evaluation_dir = self.path / "evaluation"
        self.evaluation_file = self.evaluation_dir / EVALUATION_FILE
        self.predictions_file = self.evaluation_dir / PREDICTIONS_FILE

    @classmethod
    def holding(cls, checkpoint: str | Path) -> RunFolder:
        """The run folder a checkpoint lies in (``RUN/checkpoints/NAME.ckpt``)."""
        return cls(Path(checkpoint).parent.parent)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # --- what the folder holds -------------------------------------------------------------------

    def holds_files(self) -> bool:
        """Anything but the lock."""
        return self.path.is_dir() and any(item.name != LOCK_FILE for item in self.path.iterdir())

    def finished_an_epoch(self) -> bool:
        return self.last.exists()

    def evaluated(self) -> bool:
        return self.evaluation_file.exists()

    def ended_by(self) -> str | None:
        """What ended the run's training under the budget of its ``config.yaml`` (the last attempt's):
        ``epochs``, ``early_stop`` or ``max_minutes`` (:func:`training_end`), ``interrupted`` when its
        ``last.ckpt`` has epochs left (a signal or a failure stopped it, or it is still training); None
        before its first epoch."""
        config = self.stored_config()
        if config is None or not self.last.exists():
            return None
        return training_end(self._last_payload(), config.train) or "interrupted"

    def epochs_in_last(self) -> int:
        """The finished epochs ``last.ckpt`` holds; 0 without one, or with one that cannot be read."""
        try:
            return int(self._last_payload()["epoch"]) + 1 if self.last.exists() else 0
        except (PhanetError, OSError, RuntimeError, KeyError, ValueError):
            return 0

    def _last_payload(self) -> dict[str, Any]:
        import torch

        from phanet.checkpoints import check_archive

        check_archive(self.last, "resume")
        return torch.load(self.last, map_location="cpu", weights_only=True, mmap=True)

    def stored_config(self) -> Config | None:
        if not self.config_file.exists():
            return None
        values = read_yaml(self.config_file)
        train = values.get("train")
        if isinstance(train, dict) and "chance_margin" not in train:
            train["chance_margin"] = None  # written before the setting existed: patience counted from the first epoch
        return config_from_dict(values)

    def difference(self, config: Config, budget: bool = False) -> str | None:
        """The first setting of :data:`SAME_RUN` (and, with ``budget``, of :data:`BUDGET`) in which
        ``config`` differs from the run's ``config.yaml``, e.g. ``model.scales (['N_S1'] in the run,
        ['H_S2'] now)``; None when it is the same run.

        Another ``train.epochs`` is no difference for a run that early stopping ended before that limit
        under a plateau schedule: nothing in its training depended on the limit."""
        stored = self.stored_config()
        if stored is None:
            raise PhanetError.about("out", "{run} holds no config.yaml", run=self.path)
        old, new = stored.to_dict(), config.to_dict()
        for key in SAME_RUN + (BUDGET if budget else ()):
            if _get(old, key) != _get(new, key) and not (key == "train.epochs" and self._early_stopped_under(config)):
                return _first_difference(_get(old, key), _get(new, key), key)
        before, now = sorted(old["optim"]["part_lr"]), sorted(new["optim"]["part_lr"])
        if before != now:
            return f"the set of parts in optim.part_lr ({', '.join(before) or 'none'} in the run, {', '.join(now) or 'none'} now)"
        return None

    def _early_stopped_under(self, config: Config) -> bool:
        """Whether early stopping ends this run before ``config``'s epoch limit, with a learning-rate
        schedule that does not depend on that limit (a multistep schedule places its steps by it)."""
        return (
            config.optim.scheduler == "plateau"
            and self.last.exists()
            and training_end(self._last_payload(), config.train) == "early_stop"
        )

    # --- checks before a training writes ---------------------------------------------------------

    def check_fresh(self) -> None:
        """A fresh start writes into an empty folder or over a run that never finished an epoch."""
        if not self.path.is_dir():
            return
        names = {p.name for p in self.path.iterdir()} - {LOCK_FILE}
        written = {
            p.name
            for p in (
                self.config_file,
                self.split_file,
                self.classes_file,
                self.metrics_file,
                self.dynamics_file,
                self.checkpoints,
            )
        }
        if names and (not names <= written or self.finished_an_epoch()):
            raise PhanetError.about(
                "out", "{run} already holds files; use {resume} to continue that run or choose another {out}", run=self.path
            )

    def check_resume(self, config: Config) -> None:
        """Check that ``config`` may continue the run in this folder."""
        if not self.config_file.exists():
            raise PhanetError.about("resume", "{run} holds no run to resume (no config.yaml)", run=self.path)
        difference = self.difference(config)
        if difference is not None:
            raise PhanetError.about(
                "resume",
                "{difference} differs from the run in {run}; resume with the same settings or start a new run with another {out}",
                difference=difference,
                run=self.path,
            )
        if not self.finished_an_epoch():
            raise PhanetError.about(
                "resume",
                "{run} never finished an epoch (no checkpoints/last.ckpt); start it again without {resume}",
                run=self.path,
            )

    # --- writing -----------------------------------------------------------------------------------

    def clear_unfinished(self) -> None:
        """Remove what a run that never finished an epoch left (its checkpoints would get ``-v1`` twins)."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        self.metrics_file.unlink(missing_ok=True)
        self.dynamics_file.unlink(missing_ok=True)

    def write_start(
        self, config: Config, subjects: dict[str, list[str]], dataset: str, expressions: list[str], poses: list[str]
    ) -> None:
        """What a fresh run writes before its first epoch: its config, split and class lists."""
        dump_yaml(config, self.config_file)
        write_json(self.split_file, subjects)
        write_json(self.classes_file, {"dataset": dataset, "expressions": expressions, "poses": poses})

    def write_evaluation(self, summary: dict[str, Any], predictions: pd.DataFrame) -> None:
        write_evaluation(self.evaluation_dir, summary, predictions)

    def read_evaluation(self) -> tuple[dict[str, Any], pd.DataFrame]:
        """The summary (missing numbers as NaN) and the per-image predictions of the evaluation."""
        with open_regular(self.evaluation_file) as handle:
            summary = json.loads(handle.read())
        summary = {k: (math.nan if v is None else v) for k, v in summary.items()}
        return summary, read_predictions(self.predictions_file)

    def read_metrics(self) -> pd.DataFrame:
        import pandas as pd

        with open_regular(self.metrics_file) as handle:
            return pd.read_csv(handle)
