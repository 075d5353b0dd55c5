"""``phanet train``: a run folder with the resolved config, checkpoints, per-epoch metrics; resumable.

The folder's layout, and which settings make a config the same run, are
:class:`~phanet.training.run_folder.RunFolder`'s.

Every setting is checked before the folder is written: the config when it is loaded, the device,
strategy and precision by building Lightning's ``Trainer``, and with ``resume`` the run's
``last.ckpt`` (readable, a checkpoint of this run, finite weights). A run that never finished an
epoch may be started again into the same folder; one that did is continued with ``resume``, and
one that has nothing left to train (every epoch done, early stopping, ``train.max_minutes`` used)
is left as it is and says so (:attr:`TrainResult.finished`).

SIGTERM and SIGINT stop a run. What is kept is the ``last.ckpt`` of the last finished epoch
(written after every epoch); the epoch in progress is dropped and runs again on resume, so every
epoch appears once in ``metrics.csv`` (a mid-epoch checkpoint would need the data order of the
epoch restored as well). :func:`train` then raises :class:`~phanet.runtime.Stopped`, which says how
far the run got and how to resume it.
"""

from __future__ import annotations

import os
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.plugins import LayerSync, TorchSyncBatchNorm

from phanet.checkpoints import check_memory, read_checkpoint
from phanet.checks import output_folder, shorten
from phanet.config import Config, config_from_dict, show
from phanet.data.datasets import FaceDataModule
from phanet.data.records import LabeledFaces
from phanet.data.splits import Split
from phanet.errors import PhanetError, PhanetWarning
from phanet.files import remove_temporaries
from phanet.models.info import PAPER_EXPRESSIONS, PAPER_POSES
from phanet.runtime import Stopped, bounded_by_cpus, lightning_precision, started_processes, usable_cpus, uses_cuda
from phanet.training.callbacks import (
    AdaptiveThreads,
    AtomicCheckpointIO,
    EpochMetricsCSV,
    Quiet,
    ResumedConfig,
    WeightAverage,
    run_checkpoints,
)
from phanet.training.dynamics import TrainingDynamics
from phanet.training.module import MONITOR, PhaNetModule, training_precision
from phanet.training.optim import patience_floor
from phanet.training.progress import EpochBars, progress_callback
from phanet.training.run_folder import RunFolder, RunLock, epochs_without_better, training_end
from phanet.training.stopping import PatienceStop, StopSignal
from phanet.training.sync_norm import SyncBatchNormEverywhere

_DDP_NAMES = {"ddp": "ddp_find_unused_parameters_true", "ddp_spawn": "ddp_spawn_find_unused_parameters_true"}

#: Words of Lightning's messages about the trainer settings, and the option each one is about.
#: Strategies that shard the parameters: refused, since the PAN initialisation steps the PAN
#: parameters with an optimiser of its own (training/callbacks.py).
UNSUPPORTED_STRATEGIES = ("fsdp", "deepspeed")
_TRAINER_OPTIONS = (
    ("precision", "precision"),
    ("strategy", "strategy"),
    ("deepspeed", "strategy"),
    ("fsdp", "strategy"),
    ("num_nodes", "num_nodes"),
    ("devices", "devices"),
    ("accelerator", "accelerator"),
    ("gpu", "accelerator"),
    ("xla", "accelerator"),
)


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    metrics_csv: Path
    best_score: float
    #: Set when a resumed run had nothing left to train: why it had finished and how to train on.
    finished: str | None = None


def make_trainer(config: Config, run_dir: Path, callbacks: list, progress: bool | None = True, **trainer_args: Any) -> L.Trainer:
    """Lightning's ``Trainer`` for ``config``; ``trainer_args`` override or add ``Trainer`` arguments.

    ``progress``: True for bars on a terminal (one line per epoch otherwise), False for one line per
    epoch, None for no output (:mod:`phanet.training.progress`).
    """
    t = config.train
    devices: Any = t.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    # PhaNet's phases leave parameters without a gradient (the PAN initialisation trains only the PANs)
    unused = config.model.arch == "phanet" or t.schedule != "joint"
    strategy = _DDP_NAMES.get(t.strategy, t.strategy) if unused else t.strategy
    shown = progress_callback(progress, max(1, t.log_every_n_steps)) if progress is not None else None
    callbacks = [*callbacks, shown] if shown is not None else callbacks
    arguments = dict(
        max_epochs=t.epochs,
        accelerator=t.accelerator,
        devices=devices,
        strategy=strategy,
        num_nodes=t.num_nodes,
        precision=lightning_precision(training_precision(config)),
        deterministic=t.deterministic,
        benchmark=not t.deterministic,
        log_every_n_steps=t.log_every_n_steps,
        callbacks=callbacks,
        logger=False,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO(), *layer_sync(config)],
        enable_progress_bar=isinstance(shown, EpochBars),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        max_time={"minutes": t.max_minutes} if t.max_minutes else None,
    )
    return L.Trainer(**{**arguments, **trainer_args})


def layer_sync(config: Config) -> list[LayerSync]:
    """The batch-norm synchronisation that ``train.sync_batchnorm`` asks for: PyTorch's on CUDA,
    :class:`~phanet.training.sync_norm.SyncBatchNormEverywhere` elsewhere."""
    if not config.train.sync_batchnorm:
        return []
    return [TorchSyncBatchNorm() if uses_cuda(config.train.accelerator) else SyncBatchNormEverywhere()]


def cpu_thread_callbacks(config: Config) -> list[L.Callback]:
    """Set PyTorch's CPU threads: ``train.threads``, or every usable core (affinity mask, cgroup quota)
    with :class:`AdaptiveThreads` when one process trains on the CPU."""
    t = config.train
    cpus = usable_cpus()
    torch.set_num_threads(bounded_by_cpus(t.threads, "train.threads") if t.threads else cpus)
    single = str(t.devices) in ("auto", "1") and t.num_nodes == 1 and t.strategy in ("auto", "single_device")
    if t.threads is None and single and t.accelerator in ("auto", "cpu") and not uses_cuda(t.accelerator):
        return [AdaptiveThreads(cpus)]
    return []


def _checked_trainer(config: Config, run_dir: Path, callbacks: list, progress: bool) -> L.Trainer:
    """:func:`make_trainer`, with Lightning's refusal of an accelerator, device count, strategy or
    precision turned into one line naming the setting."""
    if config.train.strategy.lower().startswith(UNSUPPORTED_STRATEGIES):
        raise PhanetError.about(
            "train.strategy",
            "{value} is not supported: training freezes parameter groups by phase "
            "(warm-up, PAN initialisation, alternating schedule), untested with sharded "
            "parameters (use ddp)",
            value=show(config.train.strategy),
        )
    try:
        return make_trainer(config, run_dir, callbacks, progress=progress)
    except (ValueError, TypeError, ImportError, MisconfigurationException) as exc:
        reason = shorten(" ".join(str(exc).split()), 200)
        words = reason.lower()
        key = next((key for word, key in _TRAINER_OPTIONS if word in words), None)
        if key is not None:
            raise PhanetError.about(
                f"train.{key}", "{value} cannot be used ({reason})", value=show(getattr(config.train, key)), reason=reason
            ) from None
        keys = ["accelerator", "devices", "strategy", "precision"]
        settings = ", ".join(f"{{train.{k}}} {{{k}}}" for k in keys)
        raise PhanetError.about(
            None, settings + ": {reason}", reason=reason, **{k: show(getattr(config.train, k)) for k in keys}
        ) from None


def is_rank_zero() -> bool:
    """False in the processes a distributed launcher started for the other ranks."""
    return all(os.environ.get(key, "0") == "0" for key in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def train(
    config: Config, resume: bool = False, faces: LabeledFaces | None = None, split: Split | None = None, progress: bool = True
) -> TrainResult:
    """Train ``config`` into the run folder ``config.out``; with ``resume`` continue from ``last.ckpt``.

    Raises :class:`~phanet.errors.PhanetError` for anything that makes the run impossible (nothing is
    written before every check has passed) and :class:`~phanet.runtime.Stopped` when SIGTERM or
    SIGINT stopped it."""
    folder = RunFolder(config.out)
    output_folder(folder.path, "out", overwrite=False)
    lock = RunLock(folder.path) if is_rank_zero() else None
    try:
        return _train(config, folder, lock, resume, faces, split, progress)
    finally:
        if lock is not None:
            lock.release()


def _callbacks(config: Config, folder: RunFolder, resumed: bool, *always: L.Callback) -> list[L.Callback]:
    """The run's callbacks: Lightning's notes quieted (:class:`Quiet`, here and in any process ``ddp_spawn``
    starts), CPU threads, ``always`` (checkpoints, the stop signal), the metrics table, and what the
    config asks for (weight averaging, early stopping, dynamics; the config of a resumed run)."""
    # The thread callback logs before the metrics table is written at the end of each epoch.
    callbacks = [Quiet(), *cpu_thread_callbacks(config), *always, EpochMetricsCSV(folder.metrics_file)]
    if config.train.ema > 0:
        callbacks.append(WeightAverage(config.train.ema))
    if config.train.early_stop > 0:
        callbacks.append(PatienceStop(MONITOR, config.train.early_stop))
    if config.train.dynamics > 0:
        callbacks.append(TrainingDynamics(folder.dynamics_file, config.train.dynamics))
    if resumed:
        callbacks.append(ResumedConfig(config, folder.config_file))
    return callbacks


def _train(
    config: Config,
    folder: RunFolder,
    lock: RunLock | None,
    resume: bool,
    faces: LabeledFaces | None,
    split: Split | None,
    progress: bool,
) -> TrainResult:
    if lock is not None and folder.path.is_dir():
        lock.acquire()  # before looking at the folder: another training may be writing it
    if resume:
        folder.check_resume(config)
    elif lock is not None:
        folder.check_fresh()

    best, latest = run_checkpoints(folder)
    stop = StopSignal()
    callbacks = _callbacks(config, folder, resume and lock is not None, best, latest, stop)
    trainer = _checked_trainer(config, folder.path, callbacks, progress)
    _check_memory(config)

    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = FaceDataModule(config, faces=faces, split=split)
    datamodule.prepare()
    faces = datamodule.faces
    module = PhaNetModule(config.to_dict(), faces.expressions, faces.poses, faces.expression_counts(datamodule.split.train))
    module.patience_floor = patience_floor(faces.expression_counts(datamodule.split.val), config.train.chance_margin)
    module.optimizer_groups()  # a wrong optim.part_lr fails here, before the run folder is written
    done = 0
    if resume:
        payload = _check_last(folder, module)
        done = int(payload.get("epoch", -1)) + 1
        if done > config.train.epochs:
            raise PhanetError.about(
                "resume",
                "{run} has finished {done} epochs, more than train.epochs ({epochs}); give train.epochs={done} or more",
                run=folder.path,
                done=done,
                epochs=config.train.epochs,
            )
        finished = _finished(payload, config, done)
        if finished is not None:
            score = payload["callbacks"].get(best.state_key, {}).get("best_model_score")
            return TrainResult(
                folder.path,
                folder.best,
                folder.last,
                folder.metrics_file,
                float(score) if score is not None else float("nan"),
                f"{folder.path} {finished}",
            )

    if lock is not None:
        lock.acquire()
        if resume:  # half-written files of the interrupted run
            remove_temporaries(folder.path)
        else:
            folder.check_fresh()  # again: the folder may have appeared while the data loaded
            folder.clear_unfinished()
            folder.write_start(config, datamodule.split.subjects, faces.name, faces.expressions, faces.poses)

    try:
        with started_processes(config.train.strategy.startswith("ddp_spawn")):
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(folder.last) if resume else None)
    except SystemExit:
        if stop.signum is None:
            raise
        raise _stopped(stop.signum, folder, trainer, done, config.train.epochs) from None
    cap = time_cap(folder, config)
    if cap is not None:
        warnings.warn(cap, PhanetWarning, stacklevel=2)
    score = best.best_model_score
    return TrainResult(
        folder.path, folder.best, folder.last, folder.metrics_file, float(score) if score is not None else float("nan")
    )


def time_cap(folder: RunFolder, config: Config) -> str | None:
    """What ``train.max_minutes`` did to the run in ``folder``, in words, when it ended it; None otherwise."""
    if not config.train.max_minutes or folder.ended_by() != "max_minutes":
        return None
    last = folder.read_metrics().iloc[-1]
    epoch, fraction = int(last["epoch"]) + 1, float(last.get("epoch_fraction", 1.0))
    where = f"{fraction:.0%} into epoch {epoch}" if fraction < 1 else f"after epoch {epoch}"
    return (
        f"{folder.path} stopped at its time limit, train.max_minutes {config.train.max_minutes:g}, {where} of "
        f"{config.train.epochs}: its network is less trained than the budget allowed"
    )


def _check_memory(config: Config) -> None:
    """Refuse, before the data load, a network whose training does not fit this machine's memory (the
    GPU's on CUDA): with the paper's class lists, as the data's are not known yet and hardly matter."""
    available = None
    if uses_cuda(config.train.accelerator):
        available = torch.cuda.mem_get_info()[0]
    check_memory(config, list(PAPER_EXPRESSIONS), list(PAPER_POSES), config.train.batch_size, True, available=available)


def _check_last(folder: RunFolder, module: PhaNetModule) -> dict[str, Any]:
    """The contents of ``last.ckpt`` once it is known to continue the run (readable, this run's
    network and classes, finite, with the training state)."""
    last = folder.last
    payload = read_checkpoint(last, "resume")
    if "loops" not in payload or "optimizer_states" not in payload:
        raise PhanetError.about(
            "resume", "{last} holds weights but no training state; start a new run with another {out}", last=last
        )
    params = payload["hyper_parameters"]
    if list(params["expressions"]) != module.expressions or list(params["poses"]) != module.poses:
        raise PhanetError.about(
            "resume",
            "{last} was trained on other classes than the data now gives ({classes}); resume on the same data",
            last=last,
            classes=", ".join(map(str, params["expressions"])),
        )
    try:
        module.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise PhanetError.about(
            "resume",
            "{last} does not match the run's config in {run} ({reason})",
            last=last,
            run=folder.path,
            reason=shorten(str(exc).splitlines()[0]),
        ) from None
    return payload


def _finished(payload: dict[str, Any], config: Config, done: int) -> str | None:
    """Why the run whose ``last.ckpt`` holds ``payload`` has nothing left to train under ``config``,
    and which setting would give it more; None when it has epochs to train."""
    t = config.train
    ended = training_end(payload, t)
    if ended == "epochs":
        return (
            f"had already trained every epoch of train.epochs ({t.epochs}); nothing was trained. To train on, "
            f"resume with train.epochs above {t.epochs}"
        )
    if ended == "early_stop":
        wait = epochs_without_better(payload)
        return (
            f"had already stopped early after epoch {done} of {t.epochs} ({wait} epochs "
            f"without a better validation FER accuracy, train.early_stop {t.early_stop}); nothing was "
            f"trained. To train on, resume with train.early_stop above {wait} (0 turns "
            "early stopping off)"
        )
    if ended == "max_minutes":
        return (
            f"had already used train.max_minutes ({t.max_minutes:g}) after epoch {done} of {t.epochs}; "
            "nothing was trained. To train on, resume with a larger train.max_minutes"
        )
    return None


def _stopped(signum: int, folder: RunFolder, trainer: L.Trainer, done: int, epochs: int) -> Stopped:
    """How far a stopped run got: the epochs its ``last.ckpt`` holds, and how to go on."""
    io = trainer.strategy.checkpoint_io
    saved = getattr(io, "saved_epochs", {}).get(folder.last.name)
    done = done if saved is None else saved + 1
    if saved is None:  # ddp_spawn: the processes it started wrote last.ckpt, if any
        done = max(done, folder.epochs_in_last())
    name = signal.Signals(signum).name
    if done == 0:
        return Stopped(
            signum, f"stopped by {name} before the first epoch of {folder.path} finished; nothing was kept, start it again"
        )
    return Stopped(
        signum,
        f"stopped by {name} after epoch {done} of {epochs} ({folder.last} holds it); resume "
        f"with: phanet train --out {folder.path} --resume",
    )


def load_module(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> PhaNetModule:
    """The training module of a checkpoint, with its loss and config (for analyses of the training; to run
    the network, use :class:`phanet.inference.TrainedModel`); a checkpoint with a NaN or infinite weight
    is refused."""
    path = Path(checkpoint)
    if not path.is_file():
        raise PhanetError.about("checkpoint", "{path} not found", path=path)
    payload = read_checkpoint(path, "checkpoint", map_location)
    params = payload["hyper_parameters"]
    check_memory(config_from_dict(params["config"]), params["expressions"], params["poses"], 1, False, "checkpoint")
    try:
        module = PhaNetModule(params["config"], params["expressions"], params["poses"], params.get("class_counts"))
        module.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise PhanetError.about(
            "checkpoint", "{path} does not match its config ({reason})", path=path, reason=str(exc).splitlines()[0][:200]
        ) from None
    return module.eval()
