"""The training phases: what each step minimises, which parts of the network it moves, and with which optimiser.

Training runs in phases, each one optimisation step per batch:

- ``warmup``: the first ``train.pan_init.warmup_epochs`` epochs train everything but the PANs
  (squares fixed at the centre) on every term but the ranking loss (with ``train.pan_init.hold_sal``
  SAL is held at its initial c = 0.5 too);
- ``pan_init``: the next ``train.pan_init.steps`` batches regress the PANs alone onto the highest
  response of the coarser scale (:func:`~phanet.losses.pan_init_loss`, with an optimiser of its own:
  Adam at ``train.pan_init.lr``), the paper's initialisation;
- then ``train.schedule``: ``joint``, one loss (L_total of the chosen setting) updates every part;
  ``alternating`` (RA-CNN), batches alternate between ``classification`` (every term but the ranking
  loss; the PANs frozen) and ``ranking`` (the ranking loss alone; only the PANs).

A network without PANs (a baseline, or PhaNet with S1 alone) trains ``joint`` from the first step;
``pan_init.enabled: false`` skips the warm-up and the initialisation. :class:`PhaseSchedule` is plain
data, so the schedule is tested without a trainer; the LightningModule asks it for the phase of each
step and freezes the parts it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phanet.config import TrainConfig


@dataclass(frozen=True)
class Phase:
    """One kind of training step.

    Attributes:
        name: ``warmup``, ``pan_init``, ``joint``, ``classification`` or ``ranking``.
        loss: what the step minimises: a field of :class:`~phanet.losses.LossTerms` (``total``,
            ``classification``, ``ranking``) or ``pan_init`` (:func:`~phanet.losses.pan_init_loss`).
        optimizer: 0, the network's optimiser, or 1, the PAN initialisation's own.
        moves: the parts the step updates: ``all``, ``all_but_attention`` or ``attention`` (the PANs).
    """

    name: str
    loss: str
    optimizer: int
    moves: str


WARMUP = Phase("warmup", "classification", 0, "all_but_attention")
PAN_INIT = Phase("pan_init", "pan_init", 1, "attention")
JOINT = Phase("joint", "total", 0, "all")
CLASSIFICATION = Phase("classification", "classification", 0, "all_but_attention")
RANKING = Phase("ranking", "ranking", 0, "attention")
PHASES = (WARMUP, PAN_INIT, JOINT, CLASSIFICATION, RANKING)

#: The parameter groups (:meth:`~phanet.models.phanet.PhaNet.parameter_groups`) that are attention: the PANs.
ATTENTION_PREFIX = "PAN_"
#: SAL's group, which the warm-up holds with ``train.pan_init.hold_sal``.
SAL_PART = "SAL"


@dataclass(frozen=True)
class PhaseSchedule:
    """Which phase each training step is in (module docstring).

    Attributes:
        schedule: ``joint`` or ``alternating`` (``train.schedule``).
        initialise: run the warm-up and the PAN initialisation (``train.pan_init.enabled``).
        warmup_epochs: epochs of warm-up before the initialisation.
        init_steps: steps of the initialisation.
        hold_sal: the warm-up holds SAL too.
        has_attention: the network has PANs; without them every step is ``joint``.
    """

    schedule: str = "joint"
    initialise: bool = True
    warmup_epochs: int = 1
    init_steps: int = 50
    hold_sal: bool = False
    has_attention: bool = True

    @classmethod
    def from_config(cls, train: TrainConfig, has_attention: bool) -> PhaseSchedule:
        init = train.pan_init
        return cls(train.schedule, init.enabled, init.warmup_epochs, init.steps, init.hold_sal, has_attention)

    @property
    def needs_init_optimizer(self) -> bool:
        """Whether some step uses the PAN initialisation's optimiser (optimizer 1)."""
        return self.has_attention and self.initialise

    def phase(self, epoch: int, batch_idx: int, init_steps_done: int) -> Phase:
        """The phase of the step with ``batch_idx`` in ``epoch`` (both from 0), when ``init_steps_done``
        initialisation steps have been taken so far (kept in checkpoints, so that a resumed run neither
        repeats nor skips them)."""
        if not self.has_attention:
            return JOINT
        if self.initialise and init_steps_done == 0 and epoch < self.warmup_epochs:
            return WARMUP
        if self.initialise and init_steps_done < self.init_steps:
            return PAN_INIT
        if self.schedule == "alternating":
            return CLASSIFICATION if batch_idx % 2 == 0 else RANKING
        return JOINT

    def frozen_parts(self, phase: Phase, parts: Sequence[str]) -> list[str]:
        """The names among ``parts`` (the network's parameter groups) that ``phase`` leaves untouched."""
        attention = [p for p in parts if p.startswith(ATTENTION_PREFIX)]
        if phase.moves == "attention":
            return [p for p in parts if p not in attention]
        if phase.moves == "all_but_attention":
            held = [SAL_PART] if phase.name == "warmup" and self.hold_sal and SAL_PART in parts else []
            return attention + held
        return []
