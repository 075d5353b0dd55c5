"""``phanet train``: a run folder with the resolved config, checkpoints, per-epoch metrics; resumable.

Run folder layout::

    OUT/config.yaml        the resolved configuration
    OUT/split.json         subjects of the train / val / test parts
    OUT/classes.json       expression and pose class lists
    OUT/metrics.csv        one row per epoch (every loss term, λe/λp, c1..c3, accuracies, lr)
    OUT/dynamics.csv       with train.dynamics > 0: gradients, updates and SAL per step (training/dynamics.py)
    OUT/checkpoints/best.ckpt, last.ckpt   written atomically
    OUT/.lock              held by the training that writes the folder (see :class:`RunLock`)

Every setting is checked before the folder is written: the config when it is loaded, the device,
strategy and precision by building Lightning's ``Trainer``, and on ``--resume`` the run's
``last.ckpt`` (readable, a checkpoint of this run, finite weights). A run that never finished an
epoch may be started again into the same folder; one that did is continued with ``--resume``.

SIGTERM and SIGINT stop a run. What is kept is the ``last.ckpt`` of the last finished epoch
(written after every epoch); the epoch in progress is dropped and runs again on resume, so every
epoch appears once in ``metrics.csv`` (a mid-epoch checkpoint would need the data order of the
epoch restored as well). :func:`train` then raises :class:`~phanet.runtime.Stopped`, which says how
far the run got and how to resume it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from phanet.checks import output_folder, shorten
from phanet.config import Config, config_from_dict, dump_yaml, read_yaml, show
from phanet.data.records import LabeledFaces
from phanet.data.splits import Split
from phanet.data.torch_data import FaceDataModule
from phanet.errors import PhanetError
from phanet.files import remove_temporaries, write_failed, write_json
from phanet.runtime import Stopped, resolve_precision, usable_cpus, uses_cuda
from phanet.training.callbacks import AdaptiveThreads, AtomicCheckpointIO, EpochMetricsCSV, PanInitialization, ResumedConfig
from phanet.training.dynamics import TrainingDynamics
from phanet.training.module import MONITOR, PhaNetModule
from phanet.training.progress import EpochBars, progress_callback

#: Config sections that must match when a run is resumed (the rest, e.g. epochs or devices, may change).
_RESUME_FIXED = ("data", "model", "loss", "seed")
#: Optimizer settings that shape the restored optimizer's state; the others (rates, decay, momentum,
#: milestones, patience) may change on resume and are applied to it.
_RESUME_FIXED_OPTIM = ("name", "scheduler")

_DDP_NAMES = {"ddp": "ddp_find_unused_parameters_true", "ddp_spawn": "ddp_spawn_find_unused_parameters_true"}

LOCK_FILE = ".lock"
#: What a run writes into its folder: a folder holding only these and no ``last.ckpt`` is a run that
#: never finished an epoch, which a fresh start may replace.
_RUN_FILES = {"config.yaml", "split.json", "classes.json", "metrics.csv", "dynamics.csv", "checkpoints", LOCK_FILE}
#: Words of Lightning's messages about the trainer settings, and the option each one is about.
_TRAINER_OPTIONS = (("precision", "precision"), ("strategy", "strategy"), ("deepspeed", "strategy"),
                    ("fsdp", "strategy"), ("num_nodes", "num_nodes"), ("devices", "devices"),
                    ("accelerator", "accelerator"), ("gpu", "accelerator"), ("xla", "accelerator"))


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    metrics_csv: Path
    best_score: float


class RunLock:
    """A run folder's writer: an exclusive ``flock`` on ``OUT/.lock``, kept while the training lives.

    The kernel drops the lock when its process ends, however it ends (``kill -9`` included), so a
    lock is never stale and the file is simply left in place. The file names the holder (process,
    host, start time) for the message a second writer gets. Only rank zero takes it.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        if self.fd is not None:
            return
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise write_failed(self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = shorten(os.read(fd, 200).decode("utf-8", "replace").strip(), 120) or "another process"
            os.close(fd)
            raise PhanetError(f"--out: {self.run_dir} is in use by another training ({holder}); wait for it to "
                              "end or choose another --out") from None
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _StopSignal(Callback):
    """Remembers the exception that interrupted ``fit``: Lightning turns SIGTERM and Ctrl+C into
    ``SystemExit`` after calling ``on_exception``."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, Stopped):
            self.signum = exception.signum
        elif isinstance(exception, SIGTERMException):
            self.signum = signal.SIGTERM
        elif isinstance(exception, KeyboardInterrupt):
            self.signum = signal.SIGINT


def _check_out(run_dir: Path) -> None:
    """``--out`` can be a run folder: a folder or a name that can be created."""
    output_folder(run_dir, "--out", overwrite=False)


def _check_fresh(run_dir: Path) -> None:
    """A fresh start writes into an empty folder or over a run that never finished an epoch."""
    if not run_dir.is_dir():
        return
    names = {p.name for p in run_dir.iterdir()} - {LOCK_FILE}
    if names and (not names <= _RUN_FILES or (run_dir / "checkpoints" / "last.ckpt").exists()):
        raise PhanetError(f"--out: {run_dir} already holds files; use --resume to continue that run or choose "
                          "another --out")


def _clear_unfinished(run_dir: Path) -> None:
    """Remove what a run that never finished an epoch left (its checkpoints would get ``-v1`` twins)."""
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    for name in ("metrics.csv", "dynamics.csv"):
        (run_dir / name).unlink(missing_ok=True)


def _check_resume(run_dir: Path, config: Config) -> None:
    """Check that ``config`` may continue the run in ``run_dir``."""
    stored_path = run_dir / "config.yaml"
    if not stored_path.exists():
        raise PhanetError(f"--resume: {run_dir} holds no run to resume (no config.yaml)")
    stored = config_from_dict(read_yaml(stored_path))
    old, current = stored.to_dict(), config.to_dict()
    for section in _RESUME_FIXED:
        if old[section] != current[section]:
            raise PhanetError(
                f"--resume: {_first_difference(old[section], current[section], section)} differs from the run "
                f"in {run_dir}; resume with the same settings or start a new run with another --out"
            )
    for key in _RESUME_FIXED_OPTIM:
        if old["optim"][key] != current["optim"][key]:
            raise PhanetError(f"--resume: optim.{key} ({show(old['optim'][key])} in the run, "
                              f"{show(current['optim'][key])} now) cannot change when resuming; start a new run "
                              "with another --out")
    if set(stored.optim.part_lr) != set(config.optim.part_lr):
        raise PhanetError(f"--resume: the parts named in optim.part_lr ({', '.join(stored.optim.part_lr) or 'none'} "
                          f"in the run) cannot change when resuming; their multipliers may")
    if not (run_dir / "checkpoints" / "last.ckpt").exists():
        raise PhanetError(f"--resume: {run_dir} never finished an epoch (no checkpoints/last.ckpt); start it again "
                          "without --resume")


def _first_difference(a: Any, b: Any, where: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}")
    return f"{where} ({show(a)} in the run, {show(b)} now)"


def read_checkpoint(path: Path, flag: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A phanet checkpoint's contents (``torch.load(weights_only=True)``), refused with one line naming
    ``flag`` and the file when it is unreadable, foreign, or holds a NaN or infinite weight."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a phanet checkpoint"
        raise PhanetError(f"{flag}: {path} is not a readable checkpoint ({type(exc).__name__})") from None
    params = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    if not isinstance(params, dict) or not {"config", "expressions", "poses"} <= set(params) \
            or not isinstance(payload.get("state_dict"), dict):
        raise PhanetError(f"{flag}: {path} is not a phanet checkpoint (no config and class lists inside)")
    for name, value in payload["state_dict"].items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise PhanetError(f"{flag}: {path} holds non-finite weights (NaN or infinity), first in {name!r}")
    return payload


def training_precision(config: Config) -> str:
    """The Lightning precision a run trains in (``train.precision``, with ``auto`` resolved for this
    machine and network: see :func:`phanet.runtime.resolve_precision`)."""
    m = config.model
    crop_attention = m.arch == "phanet" and any(scale != "N_S1" for scale in m.scales)
    return resolve_precision(config.train.precision, config.train.accelerator, crop_attention)


def make_trainer(config: Config, run_dir: Path, callbacks: list, progress: bool | None = True,
                 **trainer_args: Any) -> L.Trainer:
    """Lightning's ``Trainer`` for ``config``; ``trainer_args`` override or add ``Trainer`` arguments.

    ``progress``: True for bars on a terminal (one line per epoch otherwise), False for one line per
    epoch, None for no output (:mod:`phanet.training.progress`).
    """
    t = config.train
    devices: Any = t.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    strategy = _DDP_NAMES.get(t.strategy, t.strategy)
    shown = progress_callback(progress, max(1, t.log_every_n_steps)) if progress is not None else None
    callbacks = [*callbacks, shown] if shown is not None else callbacks
    arguments = dict(
        max_epochs=t.epochs,
        accelerator=t.accelerator,
        devices=devices,
        strategy=strategy,
        num_nodes=t.num_nodes,
        precision=training_precision(config),
        deterministic=t.deterministic,
        benchmark=not t.deterministic,
        gradient_clip_val=t.gradient_clip or None,
        log_every_n_steps=t.log_every_n_steps,
        callbacks=callbacks,
        logger=False,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=isinstance(shown, EpochBars),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        max_time={"minutes": t.max_minutes} if t.max_minutes else None,
    )
    return L.Trainer(**{**arguments, **trainer_args})


def cpu_thread_callbacks(config: Config) -> list[L.Callback]:
    """Set PyTorch's CPU threads: ``train.threads``, or every usable core (affinity mask, cgroup quota)
    with :class:`AdaptiveThreads` when one process trains on the CPU."""
    t = config.train
    cpus = usable_cpus()
    torch.set_num_threads(t.threads or cpus)
    single = str(t.devices) in ("auto", "1") and t.num_nodes == 1 and t.strategy in ("auto", "single_device")
    if t.threads is None and single and t.accelerator in ("auto", "cpu") and not uses_cuda(t.accelerator):
        return [AdaptiveThreads(cpus)]
    return []


def _checked_trainer(config: Config, run_dir: Path, callbacks: list, progress: bool) -> L.Trainer:
    """:func:`make_trainer`, with Lightning's refusal of an accelerator, device count, strategy or
    precision turned into one line naming the option."""
    try:
        return make_trainer(config, run_dir, callbacks, progress=progress)
    except (ValueError, TypeError, ImportError, MisconfigurationException) as exc:
        reason = shorten(" ".join(str(exc).split()), 200)
        words = reason.lower()
        key = next((key for word, key in _TRAINER_OPTIONS if word in words), None)
        keys = [key] if key else ["accelerator", "devices", "strategy", "precision"]
        where = ", ".join(f"train.{k} (--{k.replace('_', '-')}) {show(getattr(config.train, k))}" for k in keys)
        raise PhanetError(f"{where}: {reason}") from None


def _is_rank_zero() -> bool:
    """False in the processes a distributed launcher started for the other ranks."""
    return all(os.environ.get(key, "0") == "0" for key in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def train(config: Config, resume: bool = False, faces: LabeledFaces | None = None, split: Split | None = None,
          progress: bool = True) -> TrainResult:
    """Train ``config`` into the run folder ``config.out``; with ``resume`` continue from ``last.ckpt``.

    Raises :class:`~phanet.errors.PhanetError` for anything that makes the run impossible (nothing is
    written before every check has passed) and :class:`~phanet.runtime.Stopped` when SIGTERM or
    SIGINT stopped it."""
    run_dir = Path(config.out)
    _check_out(run_dir)
    lock = RunLock(run_dir) if _is_rank_zero() else None
    try:
        return _train(config, run_dir, lock, resume, faces, split, progress)
    finally:
        if lock is not None:
            lock.release()


def _train(config: Config, run_dir: Path, lock: RunLock | None, resume: bool, faces: LabeledFaces | None,
           split: Split | None, progress: bool) -> TrainResult:
    checkpoints = run_dir / "checkpoints"
    last = checkpoints / "last.ckpt"
    if lock is not None and run_dir.is_dir():
        lock.acquire()  # before looking at the folder: another training may be writing it
    if resume:
        _check_resume(run_dir, config)
    elif lock is not None:
        _check_fresh(run_dir)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*sync_dist=True.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*overridden `on_after_batch_transfer`.*")
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")  # every resume
    # Each file is replaced in place, never given a "-v1" twin (a run folder that was moved or copied
    # keeps writing the best.ckpt and last.ckpt that --resume and evaluation read).
    checkpoint = ModelCheckpoint(dirpath=checkpoints, filename="best", monitor=MONITOR, mode="max",
                                 save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False)
    # A second, unmonitored checkpoint rewritten after every epoch: the one --resume continues from.
    latest = ModelCheckpoint(dirpath=checkpoints, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                             enable_version_counter=False)
    stop = _StopSignal()
    # The thread callback logs before the metrics table is written at the end of each epoch.
    callbacks = [*cpu_thread_callbacks(config), checkpoint, latest, EpochMetricsCSV(run_dir / "metrics.csv"),
                 PanInitialization(config.train.pan_init), stop]
    if config.train.early_stop > 0:
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max", patience=config.train.early_stop))
    if config.train.dynamics > 0:
        callbacks.append(TrainingDynamics(run_dir / "dynamics.csv", config.train.dynamics))
    if resume and lock is not None:
        callbacks.append(ResumedConfig(config, run_dir / "config.yaml"))
    trainer = _checked_trainer(config, run_dir, callbacks, progress)

    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = FaceDataModule(config, faces=faces, split=split)
    datamodule.prepare()
    faces = datamodule.faces
    module = PhaNetModule(config.to_dict(), faces.expressions, faces.poses)
    module.optimizer_groups()  # a wrong optim.part_lr fails here, before the run folder is written
    done = _check_last(last, module) if resume else 0
    if done > config.train.epochs:
        raise PhanetError(f"--resume: {run_dir} has finished {done} epochs, more than train.epochs "
                          f"({config.train.epochs}); give train.epochs={done} or more")

    if lock is not None:
        lock.acquire()
        if resume:  # half-written files of the interrupted run
            remove_temporaries(run_dir)
        else:
            _check_fresh(run_dir)  # again: the folder may have appeared while the data loaded
            _clear_unfinished(run_dir)
            dump_yaml(config, run_dir / "config.yaml")
            write_json(run_dir / "split.json", datamodule.split.subjects)
            write_json(run_dir / "classes.json",
                       {"dataset": faces.name, "expressions": faces.expressions, "poses": faces.poses})

    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    except SystemExit:
        if stop.signum is None:
            raise
        raise _stopped(stop.signum, run_dir, trainer, done, config.train.epochs) from None
    score = checkpoint.best_model_score
    return TrainResult(run_dir, checkpoints / "best.ckpt", last, run_dir / "metrics.csv",
                       float(score) if score is not None else float("nan"))


def _check_last(last: Path, module: PhaNetModule) -> int:
    """Check that ``last`` can continue the run (readable, this run's network and classes, finite);
    returns the number of epochs it holds."""
    payload = read_checkpoint(last, "--resume")
    if "loops" not in payload or "optimizer_states" not in payload:
        raise PhanetError(f"--resume: {last} holds weights but no training state; start a new run with another --out")
    params = payload["hyper_parameters"]
    if list(params["expressions"]) != module.expressions or list(params["poses"]) != module.poses:
        raise PhanetError(f"--resume: {last} was trained on other classes than the data now gives "
                          f"({', '.join(map(str, params['expressions']))}); resume on the same data")
    try:
        module.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise PhanetError(f"--resume: {last} does not match the run's config in {last.parent.parent} "
                          f"({shorten(str(exc).splitlines()[0])})") from None
    return int(payload.get("epoch", -1)) + 1


def _stopped(signum: int, run_dir: Path, trainer: L.Trainer, done: int, epochs: int) -> Stopped:
    """How far a stopped run got: the epochs its ``last.ckpt`` holds, and how to go on."""
    io = trainer.strategy.checkpoint_io
    saved = getattr(io, "saved_epochs", {}).get("last.ckpt")
    done = done if saved is None else saved + 1
    name = signal.Signals(signum).name
    if done == 0:
        return Stopped(signum, f"stopped by {name} before the first epoch of {run_dir} finished; nothing was kept, "
                               "start it again")
    return Stopped(signum, f"stopped by {name} after epoch {done} of {epochs} ({run_dir / 'checkpoints' / 'last.ckpt'} "
                           f"holds it); resume with: phanet train --out {run_dir} --resume")


def load_module(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> PhaNetModule:
    """Rebuild the trained module from a checkpoint (``torch.load(weights_only=True)``); a checkpoint with
    a NaN or infinite weight is refused."""
    path = Path(checkpoint)
    if not path.is_file():
        raise PhanetError(f"--checkpoint: {path} not found")
    payload = read_checkpoint(path, "--checkpoint", map_location)
    params = payload["hyper_parameters"]
    try:
        module = PhaNetModule(params["config"], params["expressions"], params["poses"])
        missing, unexpected = module.load_state_dict(payload["state_dict"], strict=False)
    except (RuntimeError, KeyError) as exc:
        raise PhanetError(f"--checkpoint: {path} does not match its config ({str(exc).splitlines()[0][:200]})") from None
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise PhanetError(f"--checkpoint: {path} does not match its config (parameter {key!r} "
                          f"{'missing' if missing else 'unexpected'})")
    module.eval()
    return module
