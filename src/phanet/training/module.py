"""The LightningModule: PhaNet (or a baseline), its loss, optimiser, schedules and metrics.

The network itself stays a plain ``nn.Module`` (:mod:`phanet.models`); devices, precision,
distribution, checkpoints and progress belong to Lightning's ``Trainer``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from phanet.config import Config, config_from_dict
from phanet.data.records import MISSING
from phanet.data.transforms import augment, check_flip, to_network_input
from phanet.errors import PhanetError
from phanet.losses import LossTerms, balanced_class_weights, pan_init_loss, phanet_loss
from phanet.models import build_model
from phanet.models.output import PhaNetOutput
from phanet.models.phanet import PhaNet
from phanet.training.dynamics import PART_NAMES, parameter_groups

#: The validation metric that selects the best checkpoint, drives the plateau schedule and early stopping.
MONITOR = "val/expression_acc"


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


class PhaNetModule(L.LightningModule):
    """Trains any :func:`~phanet.models.build_model` network on expression and pose labels.

    Hyper-parameters saved in every checkpoint: the resolved ``config`` (plain data) and the class
    lists ``expressions`` and ``poses``, enough to rebuild the model for evaluation and prediction.

    Training runs in phases, each one optimisation step per batch (manual optimisation, so every
    phase goes through the strategy, the precision and gradient clipping like any other step):

    - ``warmup``: the first ``train.pan_init.warmup_epochs`` epochs train everything but the PANs
      (squares fixed at the centre) on every term but the ranking loss (with
      ``train.pan_init.hold_sal`` SAL is held at its initial c = 0.5 too);
    - ``pan_init``: the next ``train.pan_init.steps`` batches regress the PANs alone onto the
      highest response of the coarser scale (:func:`~phanet.losses.pan_init_loss`, Adam at
      ``train.pan_init.lr``; the rest of the network in evaluation mode), the paper's initialisation;
    - then ``train.schedule``: ``joint``, one loss (L_total of the chosen setting) updates every
      parameter; ``alternating`` (RA-CNN), batches alternate between ``classification`` (every term
      but the ranking loss; the PANs frozen) and ``ranking`` (the ranking loss alone; only the PANs).

    A frozen parameter takes no part in the backward pass (``requires_grad`` off for the step), so
    the optimiser leaves it untouched (no momentum, no decay). ``pan_init.enabled: false`` skips
    the warm-up and the initialisation. The number of initialisation steps done is kept in every
    checkpoint, so ``--resume`` neither repeats nor skips it.
    """

    def __init__(self, config: dict[str, Any], expressions: list[str], poses: list[str],
                 class_counts: list[int] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config: Config = config_from_dict(config)
        self.expressions = list(expressions)
        self.poses = list(poses)
        if self.config.loss.class_weights == "balanced":
            if class_counts is None or len(class_counts) != len(expressions):
                raise PhanetError.about("loss.class_weights", "balanced weights need the training set's count of "
                                        "each of the {n} expressions", n=len(expressions))
            self.register_buffer("class_weights", balanced_class_weights(torch.tensor(class_counts)), persistent=False)
        else:
            self.class_weights = None
        self.model = build_model(self.config.model, len(expressions), len(poses))
        mirror = check_flip(self.poses) if self.config.data.flip and self.poses else []
        self.flip = self.config.data.flip
        self.register_buffer("mirror", torch.tensor(mirror, dtype=torch.long), persistent=False)
        self.channels_last = False
        self.__dict__["network"] = self.model  # the compiled model when train.compile is on (not a submodule)
        self.automatic_optimization = False  # the phases choose their loss, parameters and optimiser
        self.pan_init_steps = 0  # initialisation steps done so far (kept in checkpoints)
        self.pan_init_loss = math.nan  # the initialisation loss of its last step
        self.phase = ""  # the phase of the current training step
        self._epoch_complete = False
        self._parts = parameter_groups(self.model)  # before any phase freezes a part
        self.dynamics = None  # a TrainingDynamics callback sets itself here while it records
        self._trained_with: Config | None = None  # on resume: the settings of the run so far
        #: The validation FER accuracy that the plateau schedule and early stopping wait for before they
        #: count epochs without a better one (chance plus ``train.chance_margin``; set by the training).
        self.patience_floor: float | None = None
        for part in ("train", "val"):
            # validate_args would read the labels back from the device at every step
            setattr(self, f"{part}_expression_acc", MulticlassAccuracy(len(expressions), average="micro",
                                                                       validate_args=False))
            if poses:
                setattr(self, f"{part}_pose_acc", MulticlassAccuracy(len(poses), average="micro", ignore_index=MISSING,
                                                                     validate_args=False))

    def attention_parameters(self) -> list[nn.Parameter]:
        getter = getattr(self.model, "attention_parameters", None)
        return getter() if getter else []

    def forward(self, images: torch.Tensor, **kwargs: Any) -> PhaNetOutput:
        return self.model(images, **kwargs)

    def prepare_batch(self, batch: dict[str, torch.Tensor], train: bool) -> dict[str, torch.Tensor]:
        """The uint8 ``pixels`` of a batch on the device → the network's ``image``: normalised and, when
        ``train``, augmented (scale/shift ``data.jitter``, and with ``data.flip`` a flip that mirrors
        the pose label), with one ``grid_sample`` for the whole batch."""
        if "pixels" not in batch:
            return batch
        batch = dict(batch)
        images = to_network_input(batch.pop("pixels"), channels_last=self.channels_last)
        if train:
            images, batch["pose"] = augment(images, batch["pose"], self.config.data.jitter,
                                            self.mirror if self.flip else None)
        batch["image"] = images
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = self._trainer
        return self.prepare_batch(batch, train=trainer is not None and trainer.training)

    def setup(self, stage: str) -> None:
        t = self.config.train
        on_cuda = self.device.type == "cuda" or (self._trainer is not None and
                                                  self.trainer.strategy.root_device.type == "cuda")
        self.channels_last = on_cuda if t.channels_last is None else t.channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if t.compile != "off" and stage == "fit":
            # Static shapes: one graph per batch shape (training drops its partial batch, so there are
            # few); symbolic batch sizes would also break affine_grid's backward in crop-and-zoom.
            self.__dict__["network"] = torch.compile(self.model, dynamic=False,
                                                     mode=None if t.compile == "default" else t.compile)

    def _log_output(self, part: str, output: PhaNetOutput, terms: LossTerms, batch: dict[str, torch.Tensor],
                    loss: torch.Tensor) -> None:
        size = batch["expression"].shape[0]
        values = {f"{part}/loss": loss.detach(), **{f"{part}/{k}": v.detach() for k, v in terms.terms.items()}}
        # Which weights exist is known from the architecture: no test of the values (a device sync).
        weights = output.scale_weights.detach()
        for i in getattr(self.model, "used", []):
            values[f"{part}/c{i + 1}"] = weights[:, i].mean()
            if size > 1:  # the spread over the samples (the epoch value is the mean over batches)
                values[f"{part}/c{i + 1}_std"] = weights[:, i].std()
        if not isinstance(self.model, PhaNet):
            values.pop(f"{part}/lambda_e", None)
            values.pop(f"{part}/lambda_p", None)
        self.log_dict(values, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        expression_acc = getattr(self, f"{part}_expression_acc")
        expression_acc(output.expression_logits.detach(), batch["expression"])
        self.log(f"{part}/expression_acc", expression_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        if self.poses:
            pose_acc = getattr(self, f"{part}_pose_acc")
            pose_acc(output.pose_logits.detach(), batch["pose"])
            self.log(f"{part}/pose_acc", pose_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)

    def phase_of(self, batch_idx: int) -> str:
        """The phase of the training step with ``batch_idx`` in the current epoch (class docstring)."""
        if self.attention_parameters():
            init = self.config.train.pan_init
            if init.enabled and self.pan_init_steps == 0 and self.current_epoch < init.warmup_epochs:
                return "warmup"
            if init.enabled and self.pan_init_steps < init.steps:
                return "pan_init"
            if self.config.train.schedule == "alternating":
                return "classification" if batch_idx % 2 == 0 else "ranking"
        return "joint"

    def frozen_in(self, phase: str) -> list[nn.Parameter]:
        """The parameters a phase leaves untouched."""
        pans = self.attention_parameters()
        if phase == "warmup":
            held = getattr(self.model, "scale_attention_parameters", list)() if self.config.train.pan_init.hold_sal else []
            return pans + held
        if phase == "classification":
            return pans
        if phase in ("ranking", "pan_init"):
            pan_ids = {id(p) for p in pans}
            return [p for p in self.parameters() if id(p) not in pan_ids]
        return []

    @staticmethod
    def loss_of(phase: str, terms: LossTerms) -> torch.Tensor:
        """The loss a phase minimises (all but ``pan_init``, which has its own)."""
        if phase in ("warmup", "classification"):
            return terms.classification
        return terms.ranking if phase == "ranking" else terms.total

    @contextmanager
    def frozen(self, parameters: list[nn.Parameter]) -> Iterator[None]:
        """``parameters`` out of the backward pass for the duration (each keeps its own flag after)."""
        flags = [p.requires_grad for p in parameters]
        for p in parameters:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in zip(parameters, flags):
                p.requires_grad_(flag)

    def _optimizer(self, index: int) -> Any:
        optimizers = self.optimizers()
        return optimizers[index] if isinstance(optimizers, list) else optimizers

    def _step(self, optimizer: Any, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        self._epoch_complete = batch_idx + 1 >= self.trainer.num_training_batches
        if "image" not in batch:
            return None
        self.log("train/skipped", batch["skipped"].float(), on_step=False, on_epoch=True, reduce_fx="sum")
        self.phase = phase = self.phase_of(batch_idx)
        with self.frozen(self.frozen_in(phase)):
            if phase == "pan_init":
                return self._pan_init_step(batch, batch_idx)
            output = self.network(batch["image"])
            terms = phanet_loss(output, batch["expression"], batch["pose"], self.config.loss, self.class_weights)
            loss = self.loss_of(phase, terms)
            if self.dynamics is not None and self.dynamics.due(self.global_step):
                self.dynamics.record_parts(self, terms.parts, output)
            self._check_finite(loss, terms.terms, batch_idx)
            self._log_output("train", output, terms, batch, terms.total)
            self._step(self._optimizer(0), loss)
        return loss.detach()

    def _pan_init_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One step of the PAN initialisation: the PANs regressed onto the highest response of the
        class activation map of the true expression (Section III-B), the backbones in evaluation mode."""
        training = self.model.training
        self.model.eval()
        try:
            output = self.model(batch["image"], return_maps=True, map_classes=batch["expression"])
            loss = pan_init_loss(output)
            if self.dynamics is not None and self.dynamics.due(self.global_step):
                self.dynamics.record_parts(self, {"pan_init": loss}, output)
            self._check_finite(loss, {"pan_init": loss}, batch_idx)
            self._step(self._optimizer(1), loss)
        finally:
            self.model.train(training)
        self.pan_init_steps += 1
        if self.pan_init_steps == self.config.train.pan_init.steps:  # read once: reading waits for the device
            self.pan_init_loss = float(loss.detach())
        return loss.detach()

    def _check_finite(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Stop at a non-finite loss. Reading the loss waits for the device, so on a GPU it is read
        every ``train.log_every_n_steps`` steps and at the end of each epoch (before validation and
        checkpoints), not at every step; a diverged network stays non-finite until then."""
        if self.device.type == "cuda" and batch_idx % self.config.train.log_every_n_steps \
                and batch_idx + 1 != self.trainer.num_training_batches:
            return
        if not torch.isfinite(loss):
            bad = [name for name, value in terms.items() if not torch.isfinite(value)]
            raise PhanetError(
                f"training step {self.global_step} (epoch {self.current_epoch}): the loss is {loss.item()} "
                f"(non-finite terms: {', '.join(bad) or 'none'}); lower optim.lr or check the input data"
            )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Called inside the optimiser's step, after the precision plugin has unscaled the gradients.
        clip = self.config.train.gradient_clip
        if clip <= 0 or optimizer is not self.trainer.optimizers[0]:
            return
        if self.config.train.gradient_clip_by == "part":
            for parameters in self._parts.values():
                present = [p for p in parameters if p.grad is not None]
                if present:
                    torch.nn.utils.clip_grad_norm_(present, clip)
        else:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")

    def on_train_epoch_end(self) -> None:
        """Step the learning-rate schedule after a complete epoch (after validation, which a plateau
        schedule reads; before the epoch's checkpoints, so that a resumed run has the same rate)."""
        if not self._epoch_complete:
            return
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            value = self.trainer.callback_metrics.get(MONITOR)
            if value is not None:  # a run without validation (benchmarks) keeps its rate
                step_plateau(scheduler, float(value), self.patience_floor)
        elif scheduler is not None:
            scheduler.step()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if "image" not in batch:
            return
        output = self.network(batch["image"])
        terms = phanet_loss(output, batch["expression"], batch["pose"], self.config.loss, self.class_weights)
        self._log_output("val", output, terms, batch, terms.total)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["pan_init"] = {"steps": self.pan_init_steps, "loss": self.pan_init_loss}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._trained_with = config_from_dict(checkpoint["hyper_parameters"]["config"])
        state = checkpoint.get("pan_init")
        if state is None:  # written when a callback ran the initialisation: it kept only whether it had
            done = checkpoint.get("callbacks", {}).get("PanInitialization", {}).get("done", False)
            state = {"steps": max(self.config.train.pan_init.steps, 1) if done else 0, "loss": math.nan}
        self.pan_init_steps, self.pan_init_loss = int(state["steps"]), float(state["loss"])

    def on_train_start(self) -> None:
        before = self._trained_with
        if before is not None and (before.optim != self.config.optim or before.train.epochs != self.config.train.epochs):
            self._apply_optim_settings(before)

    def _apply_optim_settings(self, before: Config) -> None:
        """Give the optimizer and schedule that Lightning restored the settings of this config (the rates,
        decay, momentum, milestones, patience; the optimizer and schedule kinds and the parts of
        ``optim.part_lr`` are the same, as resuming checks): the learning rate is then the one a run
        with these settings from the start would have now, with the plateau reductions made so far."""
        optim = self.config.optim
        optimizer = self.trainer.optimizers[0]
        scheduler = self.lr_schedulers()
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        steps = milestones(self.config.train.epochs, optim.milestones)
        bases = []
        for group in optimizer.param_groups:
            part = group.get("name")
            base = optim.lr * optim.part_lr.get(part, 1.0)
            if plateau:
                old_base = before.optim.lr * before.optim.part_lr.get(part, 1.0)
                reductions = round(math.log(group["lr"] / old_base) / math.log(before.optim.lr_decay))
                group["lr"] = base * optim.lr_decay ** max(0, reductions)
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
        else:
            scheduler.milestones = Counter(steps)
            scheduler.gamma = optim.lr_decay
            scheduler.base_lrs = bases
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups: everything at ``optim.lr``, the parts named in
        ``optim.part_lr`` at their multiple of it (a part of PhaNet that this network lacks, such as
        SAL in a baseline or without J_SA, is skipped; a name that is no part is an error)."""
        optim = self.config.optim
        if not optim.part_lr:
            return [{"params": list(self.parameters())}]
        parts = self._parts
        unknown = sorted(set(optim.part_lr) - set(parts) - set(PART_NAMES))
        if unknown:
            raise PhanetError(f"config: optim.part_lr: no part {unknown[0]!r} (parts: {', '.join(PART_NAMES)})")
        named = [name for name in parts if name in optim.part_lr]  # the network's order, whatever the config's
        scaled = {id(p) for name in named for p in parts[name]}
        groups = [{"params": [p for p in self.parameters() if id(p) not in scaled]}]
        for name in named:
            groups.append({"params": parts[name], "lr": optim.lr * optim.part_lr[name], "name": name})
        return groups

    def configure_optimizers(self) -> Any:
        optim, epochs = self.config.optim, self.config.train.epochs
        groups = self.optimizer_groups()
        if optim.name == "sgd":
            optimizer = torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum,
                                        nesterov=optim.nesterov and optim.momentum > 0,
                                        weight_decay=optim.weight_decay)
        elif optim.name == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
        else:
            optimizer = torch.optim.Adam(groups, lr=optim.lr, weight_decay=optim.weight_decay)
        if optim.scheduler == "plateau":
            scheduler: Any = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=optim.lr_decay,
                                                                        patience=optim.plateau_patience)
        else:
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones(epochs, optim.milestones),
                                                             gamma=optim.lr_decay)
        # stepped by on_train_epoch_end (manual optimisation)
        configured = [{"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}]
        pans = self.attention_parameters()
        if pans and self.config.train.pan_init.enabled:
            configured.append({"optimizer": torch.optim.Adam(pans, lr=self.config.train.pan_init.lr)})
        return configured
