"""Training dynamics: what every part of the network receives and does, step by step.

``train.dynamics: N`` (0 = off) writes ``dynamics.csv`` into the run folder, one row every N
training steps (and at the first step), with

- ``grad/<group>``: the norm of the gradient each parameter group receives (before clipping);
- ``grad/<part>/<group>``: the same, from each additive part of the loss alone (λe L(e), λp L(p),
  the constraint factor, the per-scale expression losses, the ranking losses): which term drives
  or drowns which part (one extra backward pass per part on such steps);
- ``update/<group>``: the relative size of the optimiser's step, ‖Δw‖ / ‖w‖;
- ``sal/z<i>_*``: SAL's pre-activations per scale (W_2 ReLU(W_1 M_F), what Eq. 7 passes to
  ReLU and sigmoid): mean, standard deviation and the fraction of samples above zero;
  ``sal/c<i>_mean`` and ``_std``: the coefficients themselves;
- ``pan/S<s>_a<x|y|l>_mean`` and ``_std``: the raw outputs of the PAN choosing the S<s> square (its
  centre is the tanh of a_x and a_y, its side a sigmoid of a_l), and ``pan/S<s>_pinned``: the share
  of samples whose square is at the end of its range (:func:`~phanet.models.attention.pinned`);
- ``lambda_p_mean``, ``lr``, the ``loss/<part>`` values and the training ``phase`` (warmup,
  pan_init, joint, classification, ranking; see :class:`~phanet.training.module.PhaNetModule`).

Groups are the network's parts (:meth:`~phanet.models.phanet.PhaNet.parameter_groups`): each scale's
backbone and classifier, the PANs, SAL, the DCML fully connected layer, its expression and pose
classifiers and the λ regressor.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from phanet.models.attention import pinned
from phanet.training.callbacks import rows_before, write_rows


def _norm(tensors: list[torch.Tensor | None]) -> float:
    present = [t.detach().float() for t in tensors if t is not None]
    if not present:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in present])))


def part_gradient_norms(parts: dict[str, torch.Tensor], groups: dict[str, list[nn.Parameter]]) -> dict[str, float]:
    """``grad/<part>/<group>``: the gradient norm that each loss part alone gives each group (the
    graph is kept for the training step's own backward pass)."""
    row: dict[str, float] = {}
    names = [name for name in groups if all(p.requires_grad for p in groups[name])]  # frozen ones: no path
    flat = [p for name in names for p in groups[name]]
    for part, value in parts.items():
        if not value.requires_grad:
            continue
        grads = torch.autograd.grad(value, flat, retain_graph=True, allow_unused=True)
        start = 0
        for name in names:
            count = len(groups[name])
            row[f"grad/{part}/{name}"] = _norm(list(grads[start : start + count]))
            start += count
        row.update({f"grad/{part}/{name}": 0.0 for name in groups if name not in names})
    return row


def _mean_std(name: str, values: torch.Tensor) -> dict[str, float]:
    """``NAME_mean`` and ``NAME_std`` of a batch's values (std 0 for a single sample)."""
    return {f"{name}_mean": float(values.mean()), f"{name}_std": float(values.std()) if values.shape[0] > 1 else 0.0}


class TrainingDynamics(Callback):
    """Record gradients, updates, SAL pre-activations and λ every ``every`` steps into ``path``.

    The module calls :meth:`due` and :meth:`record_parts` from its training step (the loss graph
    is only there); the rest is read from hooks. Rows of epochs run again after ``--resume`` are
    replaced.
    """

    def __init__(self, path: str | Path, every: int) -> None:
        self.path = Path(path)
        self.every = max(1, int(every))
        self.rows: list[dict[str, Any]] = []
        self.row: dict[str, Any] | None = None
        self.groups: dict[str, list[nn.Parameter]] = {}
        self.before: dict[str, list[torch.Tensor]] = {}

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.groups = module.model.parameter_groups()
        self.rows = rows_before(self.path, trainer.current_epoch)
        module.dynamics = self

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        module.dynamics = None
        self._write(trainer)

    def record_parts(self, module: L.LightningModule, parts: dict[str, torch.Tensor], output: Any) -> None:
        """Called by the training step on a due step, before its backward pass."""
        row: dict[str, Any] = {"epoch": module.current_epoch, "step": module.global_step}
        row.update({f"loss/{k}": float(v.detach()) for k, v in parts.items()})
        row.update(part_gradient_norms(parts, self.groups))
        c = output.scale_weights.detach().float()
        for i in range(c.shape[1]):
            if not torch.isnan(c[:, i]).all():
                row.update(_mean_std(f"sal/c{i + 1}", c[:, i]))
        z = getattr(output, "sal_logits", None)
        for i in range(z.shape[1] if z is not None else 0):
            values = z[:, i].detach().float()
            if not torch.isnan(values).all():
                row.update(_mean_std(f"sal/z{i + 1}", values))
                row[f"sal/z{i + 1}_positive"] = float((values > 0).float().mean())
        raw = getattr(output, "pan_outputs", None)
        for s in range(raw.shape[1] if raw is not None else 0):
            values = raw[:, s].detach().float()
            if torch.isnan(values).all():
                continue
            for j, axis in enumerate("xyl"):
                row.update(_mean_std(f"pan/S{s + 2}_a{axis}", values[:, j]))
            row[f"pan/S{s + 2}_pinned"] = float(pinned(values).float().mean())
        row["lambda_p_mean"] = float(output.task_weights[:, 1].detach().float().mean())
        row["phase"] = getattr(module, "phase", "")
        self.row = row

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule, optimizer: Any) -> None:
        if self.row is None:
            return
        for name, params in self.groups.items():
            self.row[f"grad/{name}"] = _norm([p.grad for p in params])
            self.before[name] = [p.detach().clone() for p in params]
        self.row["lr"] = optimizer.param_groups[0]["lr"]
        for group in optimizer.param_groups[1:]:  # parts with their own rate (optim.part_lr)
            self.row[f"lr/{group.get('name', len(self.row))}"] = group["lr"]

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.row is None:
            return
        for name, params in self.groups.items():
            old = self.before.get(name)
            if old is None:
                continue
            change = _norm([p.detach() - o for p, o in zip(params, old)])
            size = _norm(old)
            self.row[f"update/{name}"] = change / size if size else math.nan
        self.rows.append(self.row)
        self.row, self.before = None, {}

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero and self.rows:
            write_rows(self.path, self.rows)
