"""The LightningModule: PhaNet (or a baseline), its loss, optimiser, schedules and metrics.

The network itself stays a plain ``nn.Module`` (:mod:`phanet.models`); devices, precision,
distribution, checkpoints and progress belong to Lightning's ``Trainer``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from phanet.config import Config, config_from_dict
from phanet.data.records import MISSING
from phanet.errors import PhanetError
from phanet.losses import LossTerms, phanet_loss
from phanet.models import build_model
from phanet.models.output import PhaNetOutput


def milestones(epochs: int, values: list[float]) -> list[int]:
    """Learning-rate decay epochs: fractions of the run (< 1) or epoch numbers (>= 1)."""
    return sorted({int(round(v * epochs)) if v < 1 else int(v) for v in values})


class PhaNetModule(L.LightningModule):
    """Trains any :func:`~phanet.models.build_model` network on expression and pose labels.

    Hyper-parameters saved in every checkpoint: the resolved ``config`` (plain data) and the class
    lists ``expressions`` and ``poses``, enough to rebuild the model for evaluation and prediction.

    Schedules (``train.schedule``):

    - ``joint``: one loss, L_total of the chosen setting, updates every parameter.
    - ``alternating`` (RA-CNN): batches alternate between a classification step (every term but the
      ranking loss; the PANs are frozen) and a ranking step (the ranking loss alone; only the PANs
      are updated).

    During the first ``train.pan_init.warmup_epochs`` the PANs are frozen and the ranking loss is
    off; :class:`~phanet.training.callbacks.PanInitialization` then places the squares.
    """

    def __init__(self, config: dict[str, Any], expressions: list[str], poses: list[str]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config: Config = config_from_dict(config)
        self.expressions = list(expressions)
        self.poses = list(poses)
        self.model = build_model(self.config.model, len(expressions), len(poses))
        self.pan_frozen = bool(self.attention_parameters()) and self.config.train.pan_init.enabled \
            and self.config.train.pan_init.warmup_epochs > 0
        self._frozen: list[nn.Parameter] = []
        for part in ("train", "val"):
            setattr(self, f"{part}_expression_acc", MulticlassAccuracy(len(expressions), average="micro"))
            if poses:
                setattr(self, f"{part}_pose_acc", MulticlassAccuracy(len(poses), average="micro", ignore_index=MISSING))

    def attention_parameters(self) -> list[nn.Parameter]:
        getter = getattr(self.model, "attention_parameters", None)
        return getter() if getter else []

    def forward(self, images: torch.Tensor, **kwargs: Any) -> PhaNetOutput:
        return self.model(images, **kwargs)

    def _log_output(self, part: str, output: PhaNetOutput, terms: LossTerms, batch: dict[str, torch.Tensor],
                    loss: torch.Tensor) -> None:
        size = batch["expression"].shape[0]
        values = {f"{part}/loss": loss.detach(), **{f"{part}/{k}": v.detach() for k, v in terms.terms.items()}}
        weights = output.scale_weights.detach()
        for i in range(3):
            column = weights[:, i]
            if not torch.isnan(column).all():
                values[f"{part}/c{i + 1}"] = column.nanmean()
        if torch.isnan(output.task_weights).all():
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

    def _select_loss(self, terms: LossTerms, batch_idx: int) -> torch.Tensor:
        pans = self.attention_parameters()
        if self.pan_frozen:
            self._frozen = pans
            return terms.classification
        if self.config.train.schedule == "alternating" and pans:
            if batch_idx % 2 == 0:
                self._frozen = pans
                return terms.classification
            pan_ids = {id(p) for p in pans}
            self._frozen = [p for p in self.parameters() if id(p) not in pan_ids]
            return terms.ranking
        self._frozen = []
        return terms.total

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        if "image" not in batch:
            return None
        output = self.model(batch["image"])
        terms = phanet_loss(output, batch["expression"], batch["pose"], self.config.loss)
        loss = self._select_loss(terms, batch_idx)
        if not torch.isfinite(loss):
            bad = [name for name, value in terms.terms.items() if not torch.isfinite(value)]
            raise PhanetError(
                f"training step {self.global_step} (epoch {self.current_epoch}): the loss is {loss.item()} "
                f"(non-finite terms: {', '.join(bad) or 'none'}); lower optim.lr or check the input data"
            )
        self._log_output("train", output, terms, batch, terms.total)
        self.log("train/skipped", batch["skipped"].float(), on_step=False, on_epoch=True, reduce_fx="sum")
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # A frozen parameter gets no gradient at all, so SGD leaves it untouched (no momentum, no decay).
        for parameter in self._frozen:
            parameter.grad = None

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if "image" not in batch:
            return
        output = self.model(batch["image"])
        terms = phanet_loss(output, batch["expression"], batch["pose"], self.config.loss)
        self._log_output("val", output, terms, batch, terms.total)

    def configure_optimizers(self) -> Any:
        optim, epochs = self.config.optim, self.config.train.epochs
        if optim.name == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=optim.lr, momentum=optim.momentum,
                                        nesterov=optim.nesterov and optim.momentum > 0,
                                        weight_decay=optim.weight_decay)
        else:
            optimizer = torch.optim.Adam(self.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones(epochs, optim.milestones),
                                                         gamma=optim.lr_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
