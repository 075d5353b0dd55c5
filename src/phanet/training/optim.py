"""The optimiser and the learning-rate schedule: parameter groups with their own rates, the plateau
rule that waits for the network to leave chance, and new settings applied on resume."""

from __future__ import annotations

import math
from collections import Counter
from functools import partial
from typing import Any

import torch
from torch import nn

from phanet.config import Config, OptimConfig
from phanet.errors import PhanetError


def milestones(epochs: int, values: list[float]) -> list[int]:
    """Learning-rate decay epochs: fractions of the run (< 1) or epoch numbers (>= 1)."""
    return sorted({int(round(v * epochs)) if v < 1 else int(v) for v in values})


def at_chance(best: float, value: float, floor: float | None) -> bool:
    """Whether a validation score ``value`` (higher is better) and the best one so far are both at or
    below ``floor``: the network has not yet left chance, so no epoch counts against its patience."""
    return floor is not None and max(best, value) <= floor


def patience_floor(val_counts: list[int], margin: float | None) -> float | None:
    """The validation FER accuracy to exceed before patience counts: chance, the share of the most
    frequent expression in the validation set (``val_counts``, per expression), plus ``margin``; None
    without a margin or without validation samples."""
    total = sum(val_counts)
    if margin is None or total == 0:
        return None
    return max(val_counts) / total + margin


def step_plateau(scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau, value: float, floor: float | None) -> None:
    """One epoch of a plateau schedule (mode ``max``) that waits for ``floor``: while the network is at
    chance (:func:`at_chance`) the epoch is recorded as the best so far and never as a bad one, so the
    count of epochs without a better score starts at the first one above the floor."""
    if at_chance(scheduler.best, value, floor):
        scheduler.best = max(scheduler.best, value)
        scheduler.num_bad_epochs = 0
        scheduler.last_epoch += 1
    else:
        scheduler.step(value)


def optimizer_groups(
    optim: OptimConfig, parameters: list[nn.Parameter], parts: dict[str, list[nn.Parameter]], part_names: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: ``parameters`` at ``optim.lr``, the ``parts`` (the network's
    parameter groups) named in ``optim.part_lr`` at their multiple of it. A part of PhaNet
    (``part_names``) that this network lacks, such as SAL in a baseline or without J_SA, is skipped; a
    name that is no part is an error."""
    if not optim.part_lr:
        return [{"params": parameters}]
    unknown = sorted(set(optim.part_lr) - set(parts) - set(part_names))
    if unknown:
        raise PhanetError(f"config: optim.part_lr: no part {unknown[0]!r} (parts: {', '.join(part_names)})")
    named = [name for name in parts if name in optim.part_lr]  # the network's order, whatever the config's
    scaled = {id(p) for name in named for p in parts[name]}
    groups: list[dict[str, Any]] = [{"params": [p for p in parameters if id(p) not in scaled]}]
    for name in named:
        groups.append({"params": parts[name], "lr": optim.lr * optim.part_lr[name], "name": name})
    return groups


def make_optimizer(optim: OptimConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    if optim.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=optim.lr,
            momentum=optim.momentum,
            nesterov=optim.nesterov and optim.momentum > 0,
            weight_decay=optim.weight_decay,
        )
    if optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.Adam(groups, lr=optim.lr, weight_decay=optim.weight_decay)


def make_scheduler(optim: OptimConfig, optimizer: torch.optim.Optimizer, epochs: int) -> Any:
    """The learning-rate schedule, stepped once per epoch (``plateau`` with the validation FER accuracy)."""
    if optim.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=optim.lr_decay, patience=optim.plateau_patience
        )
    if optim.scheduler == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, partial(cosine_factor, epochs=epochs, floor=optim.lr_decay))
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones(epochs, optim.milestones), gamma=optim.lr_decay)


def cosine_factor(epoch: int, epochs: int, floor: float) -> float:
    """The ``cosine`` schedule's multiplier of the base rate after ``epoch`` of ``epochs`` epochs: 1 at
    the start, ``floor`` at the end and after it, along half a cosine in between."""
    done = min(epoch, epochs) / max(epochs, 1)
    return floor + (1 - floor) * (1 + math.cos(math.pi * done)) / 2


def apply_settings(optimizer: torch.optim.Optimizer, scheduler: Any, before: Config, config: Config) -> None:
    """Give an optimizer and schedule restored from a run trained with ``before`` the settings of
    ``config`` (the rates, decay, momentum, milestones, patience; the optimizer and schedule kinds and
    the parts of ``optim.part_lr`` are the same, as resuming checks): the learning rate is then the one
    a run with these settings from the start would have now, with the plateau reductions made so far."""
    optim = config.optim
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    steps = milestones(config.train.epochs, optim.milestones)
    bases = []
    for group in optimizer.param_groups:
        part = str(group.get("name", ""))  # the groups without a part have no name, and no multiplier
        base = optim.lr * optim.part_lr.get(part, 1.0)
        if plateau:
            old_base = before.optim.lr * before.optim.part_lr.get(part, 1.0)
            reductions = round(math.log(group["lr"] / old_base) / math.log(before.optim.lr_decay))
            group["lr"] = base * optim.lr_decay ** max(0, reductions)
        elif optim.scheduler == "cosine":
            group["lr"] = base * cosine_factor(scheduler.last_epoch, config.train.epochs, optim.lr_decay)
        else:
            group["lr"] = base * optim.lr_decay ** sum(1 for m in steps if m <= scheduler.last_epoch)
        bases.append(base)
        group["initial_lr"] = base
        group["weight_decay"] = optim.weight_decay
        if optim.name == "sgd":
            group["momentum"] = optim.momentum
            group["nesterov"] = optim.nesterov and optim.momentum > 0
    if plateau:
        scheduler.factor, scheduler.patience = optim.lr_decay, optim.plateau_patience
    elif optim.scheduler == "cosine":
        scheduler.lr_lambdas = [partial(cosine_factor, epochs=config.train.epochs, floor=optim.lr_decay)] * len(bases)
        scheduler.base_lrs = bases
    else:
        scheduler.milestones = Counter(steps)
        scheduler.gamma = optim.lr_decay
        scheduler.base_lrs = bases
