"""What a training prints while it runs: a bar per epoch on a terminal, one line per epoch in a log.

On a terminal each epoch gets its own bar, ``Epoch 3/8``, which stays on screen when the epoch ends,
followed by a line of that epoch's own results (training loss, training and validation accuracy),
written out whole rather than cut to the terminal's width. When the output is a file or a pipe (or
with ``--no-progress``) nothing is redrawn: each epoch prints one line,

    epoch 3/8: loss 2.914, train FER 41.2 %, pose 88.0 %; val FER 39.5 %, pose 86.1 %; 52 s

Both read the epoch's values when Lightning has finished aggregating them (``on_train_epoch_end``,
after validation), so no number shown belongs to an earlier epoch.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

#: (metric, label, percent) in the order the summary shows them.
_SUMMARY = (
    ("train/loss", "loss", False),
    ("train/expression_acc", "train FER", True),
    ("train/pose_acc", "pose", True),
    ("val/expression_acc", "val FER", True),
    ("val/pose_acc", "pose", True),
)


def epoch_summary(metrics: dict[str, Any], fraction: float = 1.0) -> str:
    """The epoch's results in words, from Lightning's ``callback_metrics`` (absent metrics are left out).

    An epoch cut short (``fraction`` of its batches ran: ``train.max_minutes`` stopped it) has no
    validation of its own, so the validation values Lightning still holds, the previous epoch's, are
    left out and the cut is said."""
    parts: dict[str, list[str]] = {"train": [], "val": []}
    for key, label, percent in _SUMMARY:
        if key not in metrics or (fraction < 1 and key.startswith("val/")):
            continue
        value = float(metrics[key])
        text = f"{label} {100 * value:.1f} %" if percent else f"{label} {value:.3f}"
        parts[key.split("/")[0]].append(text if math.isfinite(value) else f"{label} nan")
    text = "; ".join(", ".join(items) for items in parts.values() if items)
    return text if fraction >= 1 else f"{text}; cut at {fraction:.0%} of the epoch by train.max_minutes, not validated"


def epoch_fraction(trainer: L.Trainer, batches: int) -> float:
    """The share of the epoch's training batches that ran, ``batches`` of them."""
    total = trainer.num_training_batches
    return min(1.0, batches / total) if 0 < total < math.inf else 1.0


def epoch_label(trainer: L.Trainer) -> str:
    """``3/8`` for the third of eight epochs (counted from one, as people count); ``3`` when the run
    is bounded by steps or time instead of epochs."""
    total = trainer.max_epochs
    return f"{trainer.current_epoch + 1}/{total}" if total is not None and total > 0 else f"{trainer.current_epoch + 1}"


class EpochBars(TQDMProgressBar):
    """Lightning's progress bar, one bar per epoch named ``Epoch k/N``, the epoch's results on a line of
    their own below it (a bar's text is cut at the terminal's width).

    There is no bar before the first epoch (Lightning's default opens an empty ``Training`` bar), and
    the bar shows no metrics while the epoch runs: the only epoch values that exist then are the
    previous epoch's.
    """

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=True)
        self.batches = 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        self.batches = batch_idx + 1

    def on_train_start(self, *_: Any) -> None:
        """No bar yet: each epoch opens its own."""

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        self.batches = 0
        total = self.total_train_batches
        self.train_progress_bar = Tqdm(
            desc=f"Epoch {epoch_label(trainer)}",
            total=None if total == float("inf") else total,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def get_metrics(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Any]:
        return {}

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.train_progress_bar.close()
        if trainer.is_global_zero:
            summary = epoch_summary(trainer.callback_metrics, epoch_fraction(trainer, self.batches))
            print(f"  epoch {epoch_label(trainer)}: {summary}", file=sys.stdout, flush=True)

    def on_train_end(self, *_: Any) -> None:
        """Every bar was closed at the end of its epoch."""


class EpochLines(Callback):
    """One line per finished epoch on ``stream`` (standard output by default, like the bars), for logs
    and pipes."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.batches = 0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.started = time.monotonic()
        self.batches = 0

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.batches = batch_idx + 1

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        seconds = time.monotonic() - self.started
        summary = epoch_summary(trainer.callback_metrics, epoch_fraction(trainer, self.batches))
        print(f"epoch {epoch_label(trainer)}: {summary}; {seconds:.0f} s", file=self.stream or sys.stdout, flush=True)


def progress_callback(progress: bool, refresh_rate: int, stream: IO[str] | None = None) -> Callback:
    """Bars when ``progress`` is asked for and the output is a terminal, else one line per epoch."""
    if progress and (stream or sys.stdout).isatty():
        return EpochBars(refresh_rate)
    return EpochLines(stream)
