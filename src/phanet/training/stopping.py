"""What ends a training before its last epoch: early stopping that waits for the network to leave chance,
and the signals that interrupt it."""

from __future__ import annotations

import math
import signal
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException

from phanet.runtime import Stopped
from phanet.training.optim import at_chance


class PatienceStop(Callback):
    """Early stopping on a validation score (higher is better) after ``patience`` epochs without a better one.

    Epochs count only once the score has exceeded the module's ``patience_floor`` (chance plus
    ``train.chance_margin``; :func:`~phanet.training.optim.at_chance`): a network still at chance is
    not stopped. The patience is ``train.early_stop`` also on resume, so that a resume can give a
    stopped run more patience. A non-finite score stops the run.

    The state is kept in checkpoints under Lightning's ``EarlyStopping`` key and with its fields, so
    that the runs of every version (which used Lightning's callback) resume and report alike.
    """

    def __init__(self, monitor: str, patience: int) -> None:
        self.monitor = monitor
        self.patience = patience
        self.floor: float | None = None
        self.best_score = -math.inf
        self.wait_count = 0
        self.stopped_epoch = 0
        self._state_key = EarlyStopping(monitor=monitor, mode="max").state_key

    @property
    def state_key(self) -> str:
        return self._state_key

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.floor = getattr(pl_module, "patience_floor", None)

    def decide(self, current: float) -> bool:
        """Record the epoch's score ``current``; whether the run should stop."""
        if not math.isfinite(current):
            return True
        if at_chance(self.best_score, current, self.floor) or current > self.best_score:
            self.best_score = max(self.best_score, current)
            self.wait_count = 0
            return False
        self.wait_count += 1
        return self.wait_count >= self.patience

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking:
            return
        stop = trainer.strategy.reduce_boolean_decision(self.decide(float(value)), all=False)
        if stop:
            self.stopped_epoch = trainer.current_epoch
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "wait_count": self.wait_count,
            "stopped_epoch": self.stopped_epoch,
            "best_score": torch.tensor(self.best_score),
            "patience": self.patience,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.wait_count = int(state_dict["wait_count"])
        self.stopped_epoch = int(state_dict["stopped_epoch"])
        self.best_score = float(state_dict["best_score"])


class StopSignal(Callback):
    """Remembers the signal that interrupted ``fit``: Lightning turns SIGTERM and Ctrl+C into
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
