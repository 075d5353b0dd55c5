"""PhaNet's losses: per-scale expression loss, attention ranking loss, L_att and DCML's L_Multi.

Equation numbers refer to the paper. Every function works on the one :class:`PhaNetOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from phanet.config import POSE_LOSS_SETTINGS, LossConfig
from phanet.data.records import MISSING
from phanet.models.attention import peak_square
from phanet.models.output import PhaNetOutput
from phanet.models.precision import at_least_float32


def true_class_probability(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """p(e, y^e | s): softmax probability of the true class, (B,)."""
    return torch.softmax(logits, dim=1).gather(1, target[:, None])[:, 0]


def ranking_loss(
    coarse_logits: torch.Tensor, fine_logits: torch.Tensor, target: torch.Tensor, margin: float = 0.05
) -> torch.Tensor:
    """Attention ranking loss L^R_s (Eq. 4), averaged over the batch.

    ``max(0, p(y|s-1) - p(y|s) + margin)`` on softmax probabilities of the true class. The coarse
    probability is a fixed reference (detached): the loss asks the finer scale — its network and
    the PAN that chose its region — to become more confident, never the coarser one to become less.
    """
    coarse = true_class_probability(coarse_logits, target).detach()
    fine = true_class_probability(fine_logits, target)
    return torch.clamp(coarse - fine + margin, min=0).mean()


def expression_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-sample expression cross-entropy, (B,), times the weight of each sample's class when
    ``class_weights`` (C,) is given (see :func:`balanced_class_weights`)."""
    ce = F.cross_entropy(logits, target, reduction="none")
    return ce if class_weights is None else ce * class_weights.to(ce.dtype)[target]


def balanced_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """Inverse-frequency class weights ``N / (C n_c)`` from the training set's class counts ``n_c``:
    every class weighs the same in the loss, and the weight averages 1 over the training samples
    (so a weighted loss keeps the scale of the unweighted one). A class without samples gets 0."""
    counts = torch.as_tensor(counts, dtype=torch.float32)
    present = counts > 0
    weights = counts.sum() / (present.sum() * counts.clamp(min=1))
    return torch.where(present, weights, torch.zeros_like(weights))


def attention_loss(
    coarse_logits: torch.Tensor,
    fine_logits: torch.Tensor,
    target: torch.Tensor,
    margin: float = 0.05,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L^att_s (Eq. 3) as its two parts: (expression loss L_s at scale s, ranking loss L^R_s)."""
    return (
        expression_cross_entropy(fine_logits, target, class_weights).mean(),
        ranking_loss(coarse_logits, fine_logits, target, margin),
    )


def constraint_factor(lambda_p: torch.Tensor, scale: float = 12.0) -> torch.Tensor:
    """The weighting constraint factor of Eq. 9, ``exp(-12 λp (1 - λp))``: 1 at λp = 0, e^-3 at λp = 0.5."""
    return torch.exp(-scale * lambda_p * (1 - lambda_p))


def pan_limit_loss(pan_outputs: torch.Tensor, limit: float) -> torch.Tensor:
    """Squared excess of the PANs' raw outputs over ``± limit``, summed over the outputs and PANs,
    averaged over the batch.

    ``pan_outputs`` (B, 2, 3): the raw (a_x, a_y, a_l) of each PAN (NaN for a scale not computed;
    left out). The square's centre is ``tanh`` and its side a ``sigmoid`` of these: beyond a few
    units they saturate, the square no longer moves with its losses (the derivatives of Eq. 4 with
    respect to x, y and l vanish) and stays wherever it is. Zero inside the bound.
    """
    raw = at_least_float32(pan_outputs)
    used = ~torch.isnan(raw[0, :, 0])
    excess = torch.relu(raw[:, used].abs() - limit)
    return excess.square().sum(dim=(1, 2)).mean()


def sal_limit_loss(sal_logits: torch.Tensor, limit: float) -> torch.Tensor:
    """Squared excess of the batch mean of each SAL pre-activation over ``± limit``, summed over the
    scales.

    ``sal_logits`` (B, 3): z of Eq. 7 per sample and scale (NaN for a scale not fused; left out).
    The mean alone is bounded: the weights may still differ from face to face as much as they
    like, but on average they stay where the sigmoid is steep. Zero inside the bound.
    """
    z = at_least_float32(sal_logits)
    used = ~torch.isnan(z[0])
    return torch.relu(z[:, used].mean(dim=0).abs() - limit).square().sum()


def pose_cross_entropy(pose_logits: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Per-sample pose loss with missing labels (``MISSING``) contributing exactly zero, (B,)."""
    if pose_logits.shape[1] == 0:
        return pose_logits.new_zeros(pose_logits.shape[0])
    labelled = pose != MISSING
    safe = torch.where(labelled, pose, torch.zeros_like(pose))
    per_sample = F.cross_entropy(pose_logits, safe, reduction="none")
    return per_sample * labelled.to(per_sample.dtype)


@dataclass
class LossTerms:
    """The total loss, its split for the alternating schedule, and every term for logging."""

    total: torch.Tensor
    classification: torch.Tensor
    ranking: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    #: The additive parts of ``total`` as they enter it (weighted by λ where they are): their sum is ``total``.
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


def phanet_loss(
    output: PhaNetOutput,
    expression: torch.Tensor,
    pose: torch.Tensor,
    config: LossConfig,
    class_weights: torch.Tensor | None = None,
) -> LossTerms:
    """The training objective of one of the loss settings of Table VIII.

    - ``e``: L(e), the expression loss on f.
    - ``att_e``: L_att + L(e).
    - ``p_e``: L(p) + L(e).
    - ``att_e_p``: L_att + L(e) + L(p), fixed unit weights.
    - ``multi``: L_Multi of Eq. 9, ``λe L(e) + λp L(p) + Σ_{s=S2,S3} L^att_s + exp(-12 λp(1 - λp))``
      with per-sample λ, the factor switched by ``constraint_factor``.

    "L_att" is Σ_{s=S2,S3} (L_s + L^R_s) over the computed scales, plus the S1 expression loss when
    ``s1_loss`` is set (it trains the S1 network the first PAN looks at), and, with ``pan_limit``, the
    bound on the PANs' raw outputs (:func:`pan_limit_loss`, counted with the ranking loss); with ``sal_limit``,
    the bound on SAL's mean pre-activations (:func:`sal_limit_loss`, counted with the classification). Pose losses average over
    the samples that have a pose label; a batch with none contributes zero. With ``class_weights`` (C,),
    each expression cross-entropy (L(e) and the per-scale L_s) weighs a sample by its class's weight
    (``loss.class_weights``); the ranking and pose losses do not.
    """
    setting = config.setting
    use_att = setting in ("att_e", "att_e_p", "multi")
    use_pose = setting in POSE_LOSS_SETTINGS
    # Every term in float32, also when the network ran under bfloat16/float16 autocast.
    lambda_e, lambda_p = output.task_weights[:, 0], output.task_weights[:, 1]
    expr_ce = expression_cross_entropy(at_least_float32(output.expression_logits), expression, class_weights)
    pose_ce = pose_cross_entropy(at_least_float32(output.pose_logits), pose)
    labelled = (pose != MISSING).sum().clamp(min=1)  # a tensor: no wait for the device
    zero = expr_ce.new_zeros(())
    terms: dict[str, torch.Tensor] = {"expression": expr_ce.mean(), "pose": pose_ce.sum() / labelled}

    parts: dict[str, torch.Tensor] = {}
    if setting == "multi":
        parts["expression"] = (lambda_e * expr_ce).mean()
        parts["pose"] = (lambda_p * pose_ce).sum() / labelled
    else:
        parts["expression"] = expr_ce.mean()
        if use_pose:
            parts["pose"] = pose_ce.sum() / labelled
    factor = constraint_factor(lambda_p, config.factor_scale).mean()
    terms["factor"] = factor
    if setting == "multi" and config.constraint_factor:
        parts["factor"] = factor
    task = sum(parts.values(), zero)

    scale_ce, ranking = zero, zero
    logits = [None if x is None else at_least_float32(x) for x in output.scale_logits]
    if use_att:
        if config.s1_loss and logits[0] is not None:
            terms["scale1"] = parts["scale1"] = expression_cross_entropy(logits[0], expression, class_weights).mean()
            scale_ce = scale_ce + terms["scale1"]
        for s in (1, 2):
            coarse, fine = logits[s - 1], logits[s]
            if coarse is None or fine is None:  # a finer scale is computed only with every coarser one
                continue
            ce, rank = attention_loss(coarse, fine, expression, config.margin, class_weights)
            terms[f"scale{s + 1}"], terms[f"rank{s + 1}"] = ce, rank
            parts[f"scale{s + 1}"], parts[f"rank{s + 1}"] = ce, rank
            scale_ce, ranking = scale_ce + ce, ranking + rank
    if config.pan_limit is not None and output.pan_outputs is not None:
        # With the ranking loss: the part that moves the squares (the PANs' step when alternating).
        terms["pan_limit"] = parts["pan_limit"] = pan_limit_loss(output.pan_outputs, config.pan_limit)
        ranking = ranking + terms["pan_limit"]
    classification = task + scale_ce
    if config.sal_limit is not None and output.sal_logits is not None:
        # With the classification part: SAL learns there (its step when alternating).
        terms["sal_limit"] = parts["sal_limit"] = sal_limit_loss(output.sal_logits, config.sal_limit)
        classification = classification + terms["sal_limit"]
    terms["lambda_e"] = lambda_e.mean()
    terms["lambda_p"] = lambda_p.mean()
    return LossTerms(total=classification + ranking, classification=classification, ranking=ranking, terms=terms, parts=parts)


def pan_init_loss(output: PhaNetOutput, reach: float = 0.8) -> torch.Tensor:
    """Smooth-L1 between each PAN's square centre and the highest response of its input map.

    The paper selects the square "with the highest response value in the last convolutional
    layer". The response used is the class activation map that the forward pass returns with
    ``return_maps=True`` (pass ``map_classes`` = the true expressions). Centres are compared as
    offsets from the image centre in units of the room the square has to move (−1 … 1), and the
    target is kept within ``reach`` of that room: a peak on the border would otherwise drive the
    PAN's bounded output into saturation, where it can no longer move. The regression is on the
    PAN's raw outputs (``pan_outputs``) against ``atanh`` of that target, so that a square which
    overshoots into the saturated range is pulled back (in the bounded coordinates its gradient
    would vanish there). Zero without PANs.
    """
    maps, local, raw = output.cams, output.local_boxes, output.pan_outputs
    if maps is None:
        raise ValueError("pan_init_loss needs the forward pass to return feature maps (return_maps=True)")
    if raw is None:
        raise ValueError("pan_init_loss needs the PANs' raw outputs (PhaNetOutput.pan_outputs)")
    loss = output.expression_logits.new_zeros(())
    for s in range(2):
        response = maps[s]
        if response is None or bool(torch.isnan(local[0, s, 0].detach())):
            continue
        room = (0.5 - local[:, s, 2].detach()).clamp(min=1e-3)[:, None]
        peak = peak_square(response[:, None].detach(), 0.0)[:, :2]
        target = torch.atanh(((peak - 0.5) / room).clamp(-reach, reach))
        loss = loss + F.smooth_l1_loss(raw[:, s, :2], target)
    return loss
