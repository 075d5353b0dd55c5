"""``phanet train``: a run folder with the resolved config, checkpoints, per-epoch metrics; resumable.

Run folder layout::

    OUT/config.yaml        the resolved configuration
    OUT/split.json         subjects of the train / val / test parts
    OUT/classes.json       expression and pose class lists
    OUT/metrics.csv        one row per epoch (every loss term, λe/λp, c1..c3, accuracies, lr)
    OUT/dynamics.csv       with train.dynamics > 0: gradients, updates and SAL per step (training/dynamics.py)
    OUT/checkpoints/best.ckpt, last.ckpt   written atomically
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

from phanet.config import Config, config_from_dict, dump_yaml, read_yaml
from phanet.data.records import LabeledFaces
from phanet.data.splits import Split
from phanet.data.torch_data import FaceDataModule
from phanet.errors import PhanetError
from phanet.runtime import resolve_precision, usable_cpus, uses_cuda
from phanet.training.callbacks import (AdaptiveThreads, AtomicCheckpointIO, EpochMetricsCSV, PanInitialization,
                                       atomic_write_bytes)
from phanet.training.dynamics import TrainingDynamics
from phanet.training.module import MONITOR, PhaNetModule

#: Config sections that must match when a run is resumed (the rest, e.g. epochs or devices, may change).
_RESUME_FIXED = ("data", "model", "loss", "seed")

_DDP_NAMES = {"ddp": "ddp_find_unused_parameters_true", "ddp_spawn": "ddp_spawn_find_unused_parameters_true"}


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    metrics_csv: Path
    best_score: float


def _check_resume(run_dir: Path, config: Config) -> None:
    stored_path = run_dir / "config.yaml"
    if not stored_path.exists():
        raise PhanetError(f"--resume: {run_dir} holds no run to resume (no config.yaml)")
    stored = config_from_dict(read_yaml(stored_path)).to_dict()
    current = config.to_dict()
    for section in _RESUME_FIXED:
        if stored[section] != current[section]:
            raise PhanetError(
                f"--resume: {_first_difference(stored[section], current[section], section)} differs from the run "
                f"in {run_dir}; resume with the same settings or start a new run with another --out"
            )


def _first_difference(a: Any, b: Any, where: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{where}.{key}")
    return f"{where} ({a!r} in the run, {b!r} now)"


def _write_json(path: Path, payload: Any) -> None:
    atomic_write_bytes(path, lambda handle: handle.write(json.dumps(payload, indent=2).encode()))


def training_precision(config: Config) -> str:
    """The Lightning precision a run trains in (``train.precision``, with ``auto`` resolved for this
    machine and network: see :func:`phanet.runtime.resolve_precision`)."""
    m = config.model
    crop_attention = m.arch == "phanet" and any(scale != "N_S1" for scale in m.scales)
    return resolve_precision(config.train.precision, config.train.accelerator, crop_attention)


def make_trainer(config: Config, run_dir: Path, callbacks: list, enable_progress_bar: bool = True,
                 **trainer_args: Any) -> L.Trainer:
    """Lightning's ``Trainer`` for ``config``; ``trainer_args`` override or add ``Trainer`` arguments."""
    t = config.train
    devices: Any = t.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    strategy = _DDP_NAMES.get(t.strategy, t.strategy)
    if enable_progress_bar:
        callbacks = [*callbacks, TQDMProgressBar(refresh_rate=max(1, t.log_every_n_steps))]
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
        enable_progress_bar=enable_progress_bar,
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


def _is_rank_zero() -> bool:
    """False in the processes a distributed launcher started for the other ranks."""
    return all(os.environ.get(key, "0") == "0" for key in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def train(config: Config, resume: bool = False, faces: LabeledFaces | None = None, split: Split | None = None,
          progress: bool = True) -> TrainResult:
    """Train ``config`` into the run folder ``config.out``; with ``resume`` continue from ``last.ckpt``."""
    run_dir = Path(config.out)
    checkpoints = run_dir / "checkpoints"
    last = checkpoints / "last.ckpt"
    rank_zero = _is_rank_zero()
    if resume:
        _check_resume(run_dir, config)
        if not last.exists():
            raise PhanetError(f"--resume: {last} not found; the run never finished an epoch, start it again")
        if rank_zero:  # half-written files of the interrupted run (the finished ones were never touched)
            for stale in run_dir.rglob(".*.tmp"):
                stale.unlink()
    elif rank_zero and run_dir.exists() and any(run_dir.iterdir()):
        raise PhanetError(f"--out: {run_dir} already holds files; use --resume to continue that run or choose another --out")

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*sync_dist=True.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")
    warnings.filterwarnings("ignore", ".*overridden `on_after_batch_transfer`.*")
    L.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = FaceDataModule(config, faces=faces, split=split)
    datamodule.prepare()
    faces = datamodule.faces
    module = PhaNetModule(config.to_dict(), faces.expressions, faces.poses)
    module.optimizer_groups()  # a wrong optim.part_lr fails here, before the run folder is written

    if rank_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_yaml(config, run_dir / "config.yaml")
        _write_json(run_dir / "split.json", datamodule.split.subjects)
        _write_json(run_dir / "classes.json",
                    {"dataset": faces.name, "expressions": faces.expressions, "poses": faces.poses})

    checkpoint = ModelCheckpoint(dirpath=checkpoints, filename="best", monitor=MONITOR, mode="max",
                                 save_top_k=1, auto_insert_metric_name=False)
    # A second, unmonitored checkpoint rewritten after every epoch: the one --resume continues from.
    latest = ModelCheckpoint(dirpath=checkpoints, filename="last", monitor=None, save_top_k=1, every_n_epochs=1)
    # The thread callback logs before the metrics table is written at the end of each epoch.
    callbacks = [*cpu_thread_callbacks(config), checkpoint, latest, EpochMetricsCSV(run_dir / "metrics.csv"),
                 PanInitialization(config.train.pan_init)]
    if config.train.early_stop > 0:
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max", patience=config.train.early_stop))
    if config.train.dynamics > 0:
        callbacks.append(TrainingDynamics(run_dir / "dynamics.csv", config.train.dynamics))
    trainer = make_trainer(config, run_dir, callbacks, enable_progress_bar=progress)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    score = checkpoint.best_model_score
    return TrainResult(run_dir, checkpoints / "best.ckpt", last, run_dir / "metrics.csv",
                       float(score) if score is not None else float("nan"))


def load_module(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> PhaNetModule:
    """Rebuild the trained module from a checkpoint (``torch.load(weights_only=True)``)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise PhanetError(f"--checkpoint: {path} not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a phanet checkpoint"
        raise PhanetError(f"--checkpoint: {path} is not a readable checkpoint ({type(exc).__name__})") from None
    params = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    if not params or not {"config", "expressions", "poses"} <= set(params):
        raise PhanetError(f"--checkpoint: {path} is not a phanet checkpoint (no config and class lists inside)")
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
