"""Training callbacks: the paper's PAN initialisation, the per-epoch metrics table, atomic checkpoints."""

from __future__ import annotations

import itertools
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
import torch.distributed as dist
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from phanet.config import PanInitConfig
from phanet.losses import pan_init_loss


def atomic_write_bytes(path: str | Path, write) -> None:
    """Write a file via a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file and renamed, so a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        atomic_write_bytes(path, lambda handle: torch.save(checkpoint, handle))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def _repeat(loader):
    while True:
        yield from loader


class PanInitialization(Callback):
    """Place each PAN's square on the highest response of its input map (Section III-B).

    After ``warmup_epochs`` of classification-only training (the PANs frozen at the centred square),
    the PANs alone are regressed for ``steps`` batches onto the square centred on the highest
    response (the class activation map of the true expression) of the coarser scale's last
    convolutional map (:func:`~phanet.losses.pan_init_loss`);
    then the configured schedule starts. Runs once per run, also across ``--resume``.
    """

    def __init__(self, config: PanInitConfig) -> None:
        self.config = config
        self.done = False
        self.final_loss = math.nan

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done, "final_loss": self.final_loss}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = bool(state_dict.get("done", False))
        self.final_loss = float(state_dict.get("final_loss", math.nan))

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.done or not module.attention_parameters():
            module.pan_frozen = False
            return
        if self.config.warmup_epochs <= 0 or trainer.current_epoch >= self.config.warmup_epochs:
            self._initialise(trainer, module)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.done and module.attention_parameters() and trainer.current_epoch + 1 >= self.config.warmup_epochs:
            self._initialise(trainer, module)

    def _initialise(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        pans = module.attention_parameters()
        optimizer = torch.optim.Adam(pans, lr=self.config.lr)
        loader = trainer.datamodule.train_dataloader() if trainer.datamodule else trainer.train_dataloader
        was_training = module.training
        module.eval()
        loss = torch.zeros(())
        batches = (b for b in _repeat(loader) if "image" in b)
        with torch.enable_grad():
            for batch in itertools.islice(batches, self.config.steps):
                output = module.model(batch["image"].to(module.device), return_maps=True,
                                      map_classes=batch["expression"].to(module.device))
                loss = pan_init_loss(output)
                optimizer.zero_grad(set_to_none=True)
                for p in module.parameters():
                    p.grad = None
                loss.backward()
                if dist.is_available() and dist.is_initialized():
                    for p in pans:
                        if p.grad is not None:
                            dist.all_reduce(p.grad)
                            p.grad /= dist.get_world_size()
                optimizer.step()
        for p in module.parameters():
            p.grad = None
        module.train(was_training)
        module.pan_frozen = False
        self.done = True
        self.final_loss = float(loss.detach())


class EpochMetricsCSV(Callback):
    """One row per epoch in ``path``: every logged epoch metric (losses, λ, c1..c3, accuracies) and the lr.

    The file is rewritten atomically after each epoch; on resume, rows of epochs that will be run
    again are dropped so that every epoch appears exactly once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self.lr = math.nan

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.path.exists() and self.path.stat().st_size:
            table = pd.read_csv(self.path)
            self.rows = [r for r in table.to_dict("records") if r["epoch"] < trainer.current_epoch]
        else:
            self.rows = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in sorted(trainer.callback_metrics.items()):
            row[key] = float(value)
        row["lr"] = self.lr
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            table = pd.DataFrame(self.rows)
            atomic_write_bytes(self.path, lambda handle: handle.write(table.to_csv(index=False).encode()))
