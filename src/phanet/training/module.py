"""The LightningModule: PhaNet (or a baseline), its loss, optimiser, schedules and metrics.

The network itself stays a plain ``nn.Module`` (:mod:`phanet.models`); devices, precision,
distribution, checkpoints and progress belong to Lightning's ``Trainer``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from phanet.config import Config, config_from_dict
from phanet.data.records import MISSING
from phanet.data.transforms import augment, check_flip, recolour, to_network_input
from phanet.errors import PhanetError
from phanet.losses import LossTerms, balanced_class_weights, pan_init_loss, phanet_loss
from phanet.models import create_model
from phanet.models.output import PhaNetOutput
from phanet.models.phanet import PART_NAMES
from phanet.runtime import BF16_BACKBONES, resolve_precision
from phanet.training.optim import apply_settings, make_optimizer, make_scheduler, optimizer_groups, step_plateau
from phanet.training.phases import ATTENTION_PREFIX, Phase, PhaseSchedule

#: The validation metric that selects the best checkpoint, drives the plateau schedule and early stopping.
MONITOR = "val/expression_acc"


def training_precision(config: Config) -> str:
    """The precision a run trains in (``train.precision``, with ``auto`` resolved for this machine and
    network: see :func:`phanet.runtime.resolve_precision`)."""
    m = config.model
    crop_attention = m.arch == "phanet" and any(scale != "N_S1" for scale in m.scales)
    return resolve_precision(config.train.precision, config.train.accelerator, crop_attention)


class PhaNetModule(L.LightningModule):
    """Trains any network of :func:`~phanet.models.create_model` on expression and pose labels.

    Hyper-parameters saved in every checkpoint: the resolved ``config`` (plain data) and the class
    lists ``expressions`` and ``poses``, enough to rebuild the model for evaluation and prediction.

    Training runs in the phases of :class:`~phanet.training.phases.PhaseSchedule` (warm-up, PAN
    initialisation, then the joint or alternating schedule), each one optimisation step per batch
    (manual optimisation, so every phase goes through the strategy, the precision and gradient
    clipping like any other step). A frozen parameter takes no part in the backward pass
    (``requires_grad`` off for the step), so the optimiser leaves it untouched (no momentum, no
    decay). The number of initialisation steps done is kept in every checkpoint, so ``--resume``
    neither repeats nor skips it.
    """

    def __init__(
        self, config: dict[str, Any], expressions: list[str], poses: list[str], class_counts: list[int] | None = None
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config: Config = config_from_dict(config)
        self.expressions = list(expressions)
        self.poses = list(poses)
        if self.config.loss.class_weights == "balanced":
            if class_counts is None or len(class_counts) != len(expressions):
                raise PhanetError.about(
                    "loss.class_weights",
                    "balanced weights need the training set's count of each of the {n} expressions",
                    n=len(expressions),
                )
            self.register_buffer("class_weights", balanced_class_weights(torch.tensor(class_counts)), persistent=False)
        else:
            self.class_weights = None
        self.model = create_model(
            self.config.model.arch, expressions=self.expressions, poses=self.poses, **self.config.model.arguments()
        )
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
        self._parts = self.model.parameter_groups()  # before any phase freezes a part
        self.phases = PhaseSchedule.from_config(self.config.train, has_attention=bool(self.attention_parameters()))
        self.dynamics = None  # a TrainingDynamics callback sets itself here while it records
        self._trained_with: Config | None = None  # on resume: the settings of the run so far
        #: The validation FER accuracy that the plateau schedule and early stopping wait for before they
        #: count epochs without a better one (chance plus ``train.chance_margin``; set by the training).
        self.patience_floor: float | None = None
        for part in ("train", "val"):
            # validate_args would read the labels back from the device at every step
            setattr(self, f"{part}_expression_acc", MulticlassAccuracy(len(expressions), average="micro", validate_args=False))
            if poses:
                setattr(
                    self,
                    f"{part}_pose_acc",
                    MulticlassAccuracy(len(poses), average="micro", ignore_index=MISSING, validate_args=False),
                )

    def attention_parameters(self) -> list[nn.Parameter]:
        """The PANs' parameters (none in a network without attention)."""
        return [p for name, params in self._parts.items() if name.startswith(ATTENTION_PREFIX) for p in params]

    def forward(self, images: torch.Tensor, **kwargs: Any) -> PhaNetOutput:
        return self.model(images, **kwargs)

    def prepare_batch(self, batch: dict[str, torch.Tensor], train: bool) -> dict[str, torch.Tensor]:
        """The uint8 ``pixels`` of a batch on the device → the network's ``image``: normalised and, when
        ``train``, augmented (scale/shift ``data.jitter``, and with ``data.flip`` a flip that mirrors
        the pose label, with one ``grid_sample`` for the whole batch; then ``data.colour``)."""
        if "pixels" not in batch:
            return batch
        batch = dict(batch)
        images = to_network_input(batch.pop("pixels"), channels_last=self.channels_last)
        if train:
            images, batch["pose"] = augment(images, batch["pose"], self.config.data.jitter, self.mirror if self.flip else None)
            images = recolour(images, self.config.data.colour)
        batch["image"] = images
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.prepare_batch(batch, train=self.trainer.training)

    def setup(self, stage: str) -> None:
        t = self.config.train
        if stage == "fit" and training_precision(self.config) == BF16_BACKBONES:
            self.model.backbone_dtype = torch.bfloat16  # validation during the fit too; evaluation in 32 bits
        on_cuda = self.device.type == "cuda" or self.trainer.strategy.root_device.type == "cuda"
        self.channels_last = on_cuda if t.channels_last is None else t.channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if t.compile != "off" and stage == "fit":
            # Static shapes: one graph per batch shape (training drops its partial batch, so there are
            # few); symbolic batch sizes would also break affine_grid's backward in crop-and-zoom.
            self.__dict__["network"] = torch.compile(
                self.model, dynamic=False, mode=None if t.compile == "default" else t.compile
            )

    def _log_output(
        self, part: str, output: PhaNetOutput, terms: LossTerms, batch: dict[str, torch.Tensor], loss: torch.Tensor
    ) -> None:
        size = batch["expression"].shape[0]
        values = {f"{part}/loss": loss.detach(), **{f"{part}/{k}": v.detach() for k, v in terms.terms.items()}}
        # Which weights exist is known from the architecture: no test of the values (a device sync).
        weights = output.scale_weights.detach()
        for i in getattr(self.model, "used", []):
            values[f"{part}/c{i + 1}"] = weights[:, i].mean()
            if size > 1:  # the spread over the samples (the epoch value is the mean over batches)
                values[f"{part}/c{i + 1}_std"] = weights[:, i].std()
        if self.model.info.arch != "phanet":
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

    def phase_of(self, batch_idx: int) -> Phase:
        """The phase of the training step with ``batch_idx`` in the current epoch."""
        return self.phases.phase(self.current_epoch, batch_idx, self.pan_init_steps)

    def frozen_in(self, phase: Phase) -> list[nn.Parameter]:
        """The parameters a phase leaves untouched."""
        return [p for name in self.phases.frozen_parts(phase, list(self._parts)) for p in self._parts[name]]

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
        self.log("train/skipped", batch["skipped"].float(), on_step=False, on_epoch=True, reduce_fx="sum", sync_dist=True)
        phase = self.phase_of(batch_idx)
        self.phase = phase.name
        with self.frozen(self.frozen_in(phase)):
            if phase.loss == "pan_init":
                return self._pan_init_step(batch, batch_idx, phase.optimizer)
            output = self.network(batch["image"])
            terms = phanet_loss(output, batch["expression"], batch["pose"], self.config.loss, self.class_weights)
            loss = getattr(terms, phase.loss)
            if self.dynamics is not None and self.dynamics.due(self.global_step):
                self.dynamics.record_parts(self, terms.parts, output)
            self._check_finite(loss, terms.terms, batch_idx)
            self._log_output("train", output, terms, batch, terms.total)
            self._step(self._optimizer(phase.optimizer), loss)
        return loss.detach()

    def _pan_init_step(self, batch: dict[str, torch.Tensor], batch_idx: int, optimizer: int) -> torch.Tensor:
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
            self._step(self._optimizer(optimizer), loss)
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
        if (
            self.device.type == "cuda"
            and batch_idx % self.config.train.log_every_n_steps
            and batch_idx + 1 != self.trainer.num_training_batches
        ):
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
        state = checkpoint.get("pan_init", {"steps": 0, "loss": math.nan})
        self.pan_init_steps, self.pan_init_loss = int(state["steps"]), float(state["loss"])

    def on_train_start(self) -> None:
        before = self._trained_with
        if before is not None and (before.optim != self.config.optim or before.train.epochs != self.config.train.epochs):
            apply_settings(self.trainer.optimizers[0], self.lr_schedulers(), before, self.config)

    def optimizer_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups (:func:`~phanet.training.optim.optimizer_groups`)."""
        return optimizer_groups(self.config.optim, list(self.parameters()), self._parts, PART_NAMES)

    def configure_optimizers(self) -> Any:
        optimizer = make_optimizer(self.config.optim, self.optimizer_groups())
        scheduler = make_scheduler(self.config.optim, optimizer, self.config.train.epochs)
        # stepped by on_train_epoch_end (manual optimisation)
        configured = [{"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}]
        if self.phases.needs_init_optimizer:
            configured.append({"optimizer": torch.optim.Adam(self.attention_parameters(), lr=self.config.train.pan_init.lr)})
        return configured
