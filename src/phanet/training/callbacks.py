"""Training callbacks: the per-epoch metrics table, atomic checkpoints, CPU threads on a shared machine,
the weight average."""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, WeightAveraging

from phanet.config import Config, dump_yaml
from phanet.files import atomic_write, write_csv
from phanet.training.module import MONITOR
from phanet.training.progress import epoch_fraction
from phanet.training.run_folder import RunFolder


def quiet_lightning() -> None:
    """Lightning's notes that say nothing about a phanet run (its data loaders, logging, folders, the
    start of its distributed processes)."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*sync_dist=True.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*overridden `on_after_batch_transfer`.*")
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")  # every resume


class Quiet(Callback):
    """:func:`quiet_lightning` where it is made, and in the processes that ``ddp_spawn`` starts: they
    unpickle the callbacks, which makes them again, before Lightning first speaks there."""

    def __init__(self) -> None:
        quiet_lightning()

    def __reduce__(self) -> tuple[type, tuple]:
        return (Quiet, ())


@torch.no_grad()
def ema_update(average: torch.Tensor, weight: torch.Tensor, num_averaged: Any, decay: float) -> torch.Tensor:
    """One step of the exponential moving average: ``decay × average + (1 − decay) × weight``."""
    return decay * average + (1 - decay) * weight


class WeightAverage(WeightAveraging):
    """Lightning's exponential moving average of the weights, updated after every optimiser step, with
    an update that can be pickled (a module-level function): ``ddp_spawn`` pickles the callbacks into
    the processes it starts, and Lightning's own ``EMAWeightAveraging`` holds a closure. Its state
    keeps ``EMAWeightAveraging``'s key, so that run folders of every version resume alike."""

    def __init__(self, decay: float) -> None:
        super().__init__(avg_fn=functools.partial(ema_update, decay=decay))

    @property
    def state_key(self) -> str:
        return "EMAWeightAveraging"


def rows_before(path: Path, epoch: int) -> list[dict[str, Any]]:
    """The rows of an earlier per-epoch or per-step table at ``path`` (a CSV with an ``epoch`` column)
    of the epochs before ``epoch``: on resume, the epochs that will run again are dropped."""
    if not (path.exists() and path.stat().st_size):
        return []
    return [r for r in pd.read_csv(path).to_dict("records") if r["epoch"] < epoch]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``path`` atomically as a CSV of ``rows``."""
    table = pd.DataFrame(rows)
    write_csv(path, table)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file and renamed, so a kill never leaves half a file.

    The checkpoint is serialised in memory first: a failed write (a full disk) is then the
    operating system's error on the file, which becomes one line naming it. ``saved_epochs`` maps
    each file name to the epoch of the last checkpoint written to it completely.
    """

    def __init__(self) -> None:
        super().__init__()
        self.saved_epochs: dict[str, int] = {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write(path, lambda handle: handle.write(buffer.getbuffer()))
        self.saved_epochs[Path(path).name] = int(checkpoint.get("epoch", -1))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


class ResumedConfig(Callback):
    """Writes a resumed run's ``config.yaml`` once Lightning has restored its checkpoint, so that a
    resume that fails to start leaves the run's config as it was."""

    def __init__(self, config: Config, path: Path) -> None:
        self.config = config
        self.path = path

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            dump_yaml(self.config, self.path)


class EpochMetricsCSV(Callback):
    """One row per epoch in ``path``: every logged epoch metric (losses, λ, c1..c3, accuracies), the lr,
    ``seconds``, the epoch's wall time (training and validation), and ``epoch_fraction``, the share of
    the epoch's training batches that ran (below 1 for an epoch that ``train.max_minutes`` cut short,
    whose validation did not run: its ``val/`` values are empty).

    The file is rewritten atomically after each epoch; on resume, rows of epochs that will be run
    again are dropped so that every epoch appears exactly once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self.lr = math.nan
        self.started = time.monotonic()
        self.batches = 0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.rows = rows_before(self.path, trainer.current_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        self.started = time.monotonic()
        self.batches = 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.batches = batch_idx + 1

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        fraction = epoch_fraction(trainer, self.batches)
        for key, value in sorted(trainer.callback_metrics.items()):
            # A cut epoch has no validation of its own: what Lightning still holds is the last epoch's.
            row[key] = math.nan if fraction < 1 and key.startswith("val/") else float(value)
        row["lr"] = self.lr
        row["seconds"] = round(time.monotonic() - self.started, 2)
        row["epoch_fraction"] = fraction
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            write_rows(self.path, self.rows)


class AdaptiveThreads(Callback):
    """Fewer CPU threads while other processes compete for the cores; all of them when they are free.

    PyTorch's CPU kernels run on an OpenMP team whose threads wait for each other at every
    operation. When another process takes one of the cores, the thread that was pushed off it
    holds up the whole team at each of the thousands of operations of a step, and a step can take
    many times its share of the machine (docs/benchmarks.md). Every ``period``
    training steps this callback times two steps with half as many threads (or, after it went
    down, twice as many) against the median of the steps before and keeps the faster count. The
    first trial comes after ``first_period`` steps (two processes started together would otherwise
    both run their first ``start_period`` steps with every thread, several times slower each); the
    period then grows from ``start_period`` to ``max_period`` while the count stays and starts short
    again when it changes or when the step time moves by more than a quarter.
    """

    def __init__(
        self, cpus: int, start_period: int = 20, max_period: int = 160, probe_steps: int = 2, first_period: int = 1
    ) -> None:
        self.cpus = max(1, cpus)
        self.start_period, self.max_period, self.probe_steps = start_period, max_period, probe_steps
        self.threads = self.cpus
        self.period = min(first_period, start_period)
        self.since = 0
        self.recent: list[float] = []
        self.baseline = math.nan
        self.probe: int | None = None
        self.probes = 0
        self.probe_times: list[float] = []
        self._start = 0.0

    def _set(self, threads: int) -> None:
        torch.set_num_threads(threads)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._set(self.threads)

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        images = int(batch["expression"].shape[0]) if isinstance(batch, dict) and "expression" in batch else 0
        if not images or self.cpus == 1:
            return
        per_image = (time.perf_counter() - self._start) / images
        if self.probe is not None:
            self.probe_times.append(per_image)
            if len(self.probe_times) == self.probe_steps:
                self._decide()
            return
        self.recent = (self.recent + [per_image])[-8:]
        self.since += 1
        current = statistics.median(self.recent)
        moved = len(self.recent) == 8 and not math.isnan(self.baseline) and abs(current / self.baseline - 1) > 0.25
        if self.since >= self.period or moved:
            if moved:
                self.period = self.start_period
            options = [t for t in (self.threads // 2, min(self.cpus, self.threads * 2)) if 1 <= t != self.threads]
            self.probes += 1
            self.probe, self.probe_times = options[self.probes % len(options)], []
            self._set(self.probe)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        module.log("cpu_threads", float(self.threads))

    def _decide(self) -> None:
        current = statistics.median(self.recent)
        trial = statistics.median(self.probe_times)
        if self.probe is not None and trial < 0.95 * current:
            self.threads = self.probe
            self.period = self.start_period
            self.recent = [trial]
            self.baseline = trial
        else:
            self.period = min(self.max_period, max(self.start_period, 2 * self.period))
            self.baseline = current
        self._set(self.threads)
        self.probe, self.probe_times, self.since = None, [], 0


def _lightning_key(key: str, subclass: type, lightning_class: type) -> str:
    """A subclass's state key as Lightning's own class has it: Lightning keys a callback's state by the
    class name, and the checkpoints of every run (earlier ones included) hold it under that name."""
    return key.replace(subclass.__qualname__, lightning_class.__qualname__, 1)


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that keeps its state when the run folder was moved or copied.

    Lightning restores the best score only when the checkpoint folder is where it was when the state
    was saved; elsewhere the score is dropped and the first resumed epoch replaces ``best.ckpt``
    whatever its score. The files it tracks are the run's own ``checkpoints/*.ckpt``, so their paths
    move with the folder.
    """

    @property
    def state_key(self) -> str:
        return _lightning_key(super().state_key, RunCheckpoint, ModelCheckpoint)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_in = state_dict.get("dirpath")
        if saved_in and self.dirpath and saved_in != self.dirpath:
            folder = str(self.dirpath)

            def moved(path: str | None) -> str | None:
                return os.path.join(folder, os.path.basename(path)) if path else path

            state_dict = {
                **state_dict,
                "dirpath": self.dirpath,
                **{key: moved(state_dict.get(key)) for key in ("best_model_path", "kth_best_model_path", "last_model_path")},
                "best_k_models": {moved(k): v for k, v in state_dict.get("best_k_models", {}).items()},
            }
        super().load_state_dict(state_dict)


def run_checkpoints(folder: RunFolder) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """(``best.ckpt``: the best validation FER accuracy so far, ``last.ckpt``: rewritten after every epoch)."""
    # Each file is replaced in place, never given a "-v1" twin (a run folder that was moved or copied
    # keeps writing the best.ckpt and last.ckpt that resume and evaluation read).
    best = RunCheckpoint(
        dirpath=folder.checkpoints,
        filename=folder.best.stem,
        monitor=MONITOR,
        mode="max",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    last = RunCheckpoint(
        dirpath=folder.checkpoints,
        filename=folder.last.stem,
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        enable_version_counter=False,
    )
    return best, last
