"""Losses of Eq. 3, 4, 9 and 10 against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from phanet.config import LossConfig
from phanet.data.records import MISSING
from phanet.losses import (
    attention_loss,
    balanced_class_weights,
    constraint_factor,
    pan_init_loss,
    pan_limit_loss,
    phanet_loss,
    pose_cross_entropy,
    ranking_loss,
    sal_limit_loss,
)
from phanet.models.output import PhaNetOutput

LN3 = math.log(3.0)


def test_ranking_loss_uses_true_class_probabilities_and_the_margin():
    coarse = torch.zeros(2, 2)  # p(true) = 1/2 for both samples
    fine = torch.tensor([[LN3, 0.0], [0.0, LN3]])  # p(true=0) = 3/4, then 1/4
    target = torch.tensor([0, 0])
    # sample 1: max(0, 1/2 - 3/4 + 0.05) = 0; sample 2: 1/2 - 1/4 + 0.05 = 0.3
    assert math.isclose(float(ranking_loss(coarse, fine, target, 0.05)), 0.15, rel_tol=1e-6)
    assert math.isclose(float(ranking_loss(coarse, fine, target, 0.5)), (0.25 + 0.75) / 2, rel_tol=1e-6)


def test_ranking_loss_pushes_the_finer_scale_only():
    coarse = torch.zeros(1, 3, requires_grad=True)
    fine = torch.zeros(1, 3, requires_grad=True)
    ranking_loss(coarse, fine, torch.tensor([1])).backward()
    assert coarse.grad is None or torch.all(coarse.grad == 0)
    assert fine.grad[0, 1] < 0  # raising the true class lowers the loss


def test_attention_loss_is_scale_cross_entropy_plus_ranking():
    ce, rank = attention_loss(torch.zeros(1, 2), torch.tensor([[0.0, LN3]]), torch.tensor([0]))
    assert math.isclose(float(ce), math.log(4.0), rel_tol=1e-6)
    assert math.isclose(float(rank), 0.5 - 0.25 + 0.05, rel_tol=1e-6)


def test_constraint_factor_values():
    assert float(constraint_factor(torch.tensor(0.0))) == 1.0
    assert math.isclose(float(constraint_factor(torch.tensor(0.5))), math.exp(-3), rel_tol=1e-6)
    assert math.isclose(float(constraint_factor(torch.tensor(0.2))), math.exp(-12 * 0.2 * 0.8), rel_tol=1e-6)


def _output() -> PhaNetOutput:
    nan = torch.full((2, 2, 3), float("nan"))
    return PhaNetOutput(
        expression_logits=torch.tensor([[LN3, 0.0], [0.0, 0.0]]),
        pose_logits=torch.tensor([[0.0, 0.0], [0.0, LN3]]),
        scale_logits=[torch.zeros(2, 2), torch.tensor([[LN3, 0.0], [0.0, LN3]]), torch.tensor([[0.0, LN3], [0.0, 0.0]])],
        boxes=nan,
        local_boxes=nan,
        scale_weights=torch.full((2, 3), 0.5),
        task_weights=torch.tensor([[0.8, 0.2], [0.6, 0.4]]),
        features=torch.zeros(2, 4),
    )


EXPRESSION = torch.tensor([0, 1])
POSE = torch.tensor([0, MISSING])
CE_E = [math.log(4 / 3), math.log(2)]
CE_P = math.log(2)  # only the first sample has a pose label
ATT = math.log(2) + math.log(4 / 3) + 0.0 + (math.log(4) + math.log(2)) / 2 + (0.55 + 0.3) / 2
FACTOR = (math.exp(-12 * 0.2 * 0.8) + math.exp(-12 * 0.4 * 0.6)) / 2


@pytest.mark.parametrize(
    "setting,expected",
    [
        ("e", sum(CE_E) / 2),
        ("att_e", sum(CE_E) / 2 + ATT),
        ("p_e", sum(CE_E) / 2 + CE_P),
        ("att_e_p", sum(CE_E) / 2 + CE_P + ATT),
        ("multi", (0.8 * CE_E[0] + 0.6 * CE_E[1]) / 2 + 0.2 * CE_P + ATT + FACTOR),
    ],
)
def test_loss_settings_of_table8_match_hand_computation(setting, expected):
    terms = phanet_loss(_output(), EXPRESSION, POSE, LossConfig(setting=setting))
    assert math.isclose(float(terms.total), expected, rel_tol=1e-5)


def test_balanced_class_weights_equalise_the_classes_and_average_one():
    # 4 samples over the 2 classes present: 4 / (2 * 1) = 2 and 4 / (2 * 3) = 2/3; an absent class 0.
    weights = balanced_class_weights(torch.tensor([1, 3, 0]))
    assert torch.allclose(weights, torch.tensor([2.0, 2.0 / 3.0, 0.0]))
    assert math.isclose(float(1 * weights[0] + 3 * weights[1]) / 4, 1.0, rel_tol=1e-6)
    assert torch.allclose(balanced_class_weights(torch.tensor([5, 5, 5])), torch.ones(3))


def test_class_weights_scale_each_expression_cross_entropy_of_its_samples():
    weights = torch.tensor([2.0, 0.5])  # sample 0 is class 0, sample 1 class 1
    plain = phanet_loss(_output(), EXPRESSION, POSE, LossConfig(setting="att_e_p"))
    weighted = phanet_loss(_output(), EXPRESSION, POSE, LossConfig(setting="att_e_p"), weights)
    assert math.isclose(float(weighted.terms["expression"]), (2 * CE_E[0] + 0.5 * CE_E[1]) / 2, rel_tol=1e-6)
    # S1 reads [0, 0] for both samples; S2 ln(4/3) for both; S3 ln 4 for the first and ln 2 for the second.
    assert math.isclose(float(weighted.terms["scale1"]), 1.25 * math.log(2), rel_tol=1e-6)
    assert math.isclose(float(weighted.terms["scale2"]), 1.25 * math.log(4 / 3), rel_tol=1e-6)
    assert math.isclose(float(weighted.terms["scale3"]), (2 * math.log(4) + 0.5 * math.log(2)) / 2, rel_tol=1e-6)
    # The ranking and pose losses are not weighted; weights of 1 are the plain loss.
    for term in ("rank2", "rank3", "pose"):
        assert float(weighted.terms[term]) == float(plain.terms[term])
    ones = phanet_loss(_output(), EXPRESSION, POSE, LossConfig(setting="att_e_p"), torch.ones(2))
    assert math.isclose(float(ones.total), float(plain.total), rel_tol=1e-7)


def test_multi_loss_without_the_constraint_factor_and_the_alternating_split():
    terms = phanet_loss(_output(), EXPRESSION, POSE, LossConfig(setting="multi", constraint_factor=False))
    assert math.isclose(float(terms.total), (0.8 * CE_E[0] + 0.6 * CE_E[1]) / 2 + 0.2 * CE_P + ATT, rel_tol=1e-5)
    ranking = (0.55 + 0.3) / 2
    assert math.isclose(float(terms.ranking), ranking, rel_tol=1e-5)
    assert math.isclose(float(terms.classification + terms.ranking), float(terms.total), rel_tol=1e-6)
    assert math.isclose(float(terms.terms["factor"]), FACTOR, rel_tol=1e-5)


def test_missing_poses_contribute_nothing_and_keep_gradients_finite():
    logits = torch.randn(4, 5, requires_grad=True)
    pose = torch.full((4,), MISSING)
    per_sample = pose_cross_entropy(logits, pose)
    assert torch.equal(per_sample, torch.zeros(4))
    out = _output()
    out.pose_logits = out.pose_logits.clone().requires_grad_(True)
    terms = phanet_loss(out, EXPRESSION, torch.tensor([MISSING, MISSING]), LossConfig())
    terms.total.backward()
    assert float(terms.terms["pose"].detach()) == 0.0
    assert torch.equal(out.pose_logits.grad, torch.zeros(2, 2))


def test_pan_init_loss_pulls_the_square_to_the_peak_but_not_into_the_border():
    fmap = torch.zeros(1, 4, 4)
    fmap[0, 0, 3] = 1.0  # peak at column 3, row 0: centre (0.875, 0.125), beyond the reach of a 0.2 square
    out = _output()
    out.expression_logits = out.expression_logits[:1]
    out.cams = [fmap, None, None]
    nan = [float("nan")] * 3

    def square(raw_x: float, raw_y: float) -> None:  # the PAN's raw outputs and the square they bound to
        out.pan_outputs = torch.tensor([[[raw_x, raw_y, 0.0], nan]], requires_grad=True)
        out.local_boxes = torch.tensor([[[0.5 + 0.3 * math.tanh(raw_x), 0.5 + 0.3 * math.tanh(raw_y), 0.2], nan]])

    # room = 0.5 - 0.2 = 0.3; the offset (±1.25 rooms) is held at ±0.8 rooms: x = 0.74, y = 0.26,
    # i.e. raw outputs ±atanh(0.8)
    square(math.atanh(0.8), -math.atanh(0.8))
    assert float(pan_init_loss(out).detach()) < 1e-10
    square(0.0, 0.0)  # centred: |d| = atanh(0.8) = 1.0986 > 1, smooth L1 = |d| - 0.5 for x and y
    assert math.isclose(float(pan_init_loss(out).detach()), math.atanh(0.8) - 0.5, rel_tol=1e-5)
    square(12.0, -12.0)  # saturated past the target (tanh(12) = 1 in float32): still pulled back
    loss = pan_init_loss(out)
    loss.backward()
    assert math.isclose(float(loss.detach()), 12 - math.atanh(0.8) - 0.5, rel_tol=1e-5)
    assert out.pan_outputs.grad[0, 0, 0] > 0.4 and out.pan_outputs.grad[0, 0, 1] < -0.4
    fmap[0, 1, 1] = 2.0  # a higher peak at (0.375, 0.375): offsets (-0.125 / 0.3) within reach
    square(math.atanh(-0.125 / 0.3), math.atanh(-0.125 / 0.3))
    assert float(pan_init_loss(out).detach()) < 1e-10


def test_pan_limit_loss_is_the_squared_excess_over_the_bound():
    nan = [float("nan")] * 3
    raw = torch.tensor([[[3.0, 0.5, -2.5], nan], [[-1.0, 2.0, 0.0], nan]], requires_grad=True)
    loss = pan_limit_loss(raw, 2.0)  # sample 1: 1² + 0.5² = 1.25, sample 2: nothing beyond ±2
    loss.backward()
    assert math.isclose(float(loss.detach()), 1.25 / 2, rel_tol=1e-6)
    # d/da of (|a| - 2)² / 2 (the batch mean): pulls each output beyond the bound back, nothing else
    expected = torch.tensor([[[1.0, 0.0, -0.5], [0.0] * 3], [[0.0] * 3, [0.0] * 3]])
    assert torch.equal(raw.grad, expected)
    both = torch.tensor([[[0.0, 0.0, 5.0], [-4.0, 0.0, 0.0]]])  # both PANs count
    assert math.isclose(float(pan_limit_loss(both, 2.0)), 9.0 + 4.0, rel_tol=1e-6)


def test_pan_limit_is_part_of_the_ranking_loss_only_when_set():
    out = _output()
    nan = [float("nan")] * 3
    out.pan_outputs = torch.tensor([[[3.0, 0.0, 0.0], nan], [[0.0, 0.0, 0.0], nan]])
    plain = phanet_loss(out, EXPRESSION, POSE, LossConfig())
    bounded = phanet_loss(out, EXPRESSION, POSE, LossConfig(pan_limit=2.0))
    assert "pan_limit" not in plain.terms
    assert math.isclose(float(bounded.terms["pan_limit"]), 0.5, rel_tol=1e-6)
    assert math.isclose(float(bounded.ranking - plain.ranking), 0.5, rel_tol=1e-6)
    assert math.isclose(float(bounded.total - plain.total), 0.5, rel_tol=1e-6)
    assert float(bounded.classification) == float(plain.classification)
    assert math.isclose(
        float(phanet_loss(out, EXPRESSION, POSE, LossConfig(pan_limit=3.5)).ranking), float(plain.ranking), rel_tol=1e-6
    )


def test_sal_limit_loss_bounds_the_batch_mean_of_each_pre_activation():
    nan = float("nan")
    z = torch.tensor([[3.0, nan, -1.0], [5.0, nan, -4.0]], requires_grad=True)
    loss = sal_limit_loss(z, 2.0)  # means 4 and -2.5: (4 - 2)² + (2.5 - 2)² = 4.25
    loss.backward()
    assert math.isclose(float(loss.detach()), 4.25, rel_tol=1e-6)
    # d/dz of (mean - 2)²: 2 (mean - 2) / B for every sample alike, so the spread over the samples is kept
    assert torch.equal(z.grad, torch.tensor([[2.0, 0.0, -0.5], [2.0, 0.0, -0.5]]))
    inside = torch.tensor([[3.9, nan, -1.0], [-3.9, nan, 1.0]])  # far from 0 per sample, mean 0
    assert float(sal_limit_loss(inside, 2.0)) == 0.0


def test_sal_limit_is_part_of_the_classification_loss_only_when_set():
    out = _output()
    out.sal_logits = torch.tensor([[3.0, 3.0, float("nan")], [3.0, 1.0, float("nan")]])
    plain = phanet_loss(out, EXPRESSION, POSE, LossConfig())
    bounded = phanet_loss(out, EXPRESSION, POSE, LossConfig(sal_limit=2.0))
    assert "sal_limit" not in plain.terms
    assert math.isclose(float(bounded.terms["sal_limit"]), 1.0, rel_tol=1e-6)  # means 3 and 2: 1² + 0
    assert math.isclose(float(bounded.classification - plain.classification), 1.0, rel_tol=1e-6)
    assert math.isclose(float(bounded.total - plain.total), 1.0, rel_tol=1e-6)
    assert float(bounded.ranking) == float(plain.ranking)
    assert math.isclose(float(sum(bounded.parts.values())), float(bounded.total), rel_tol=1e-6)


def test_class_activation_maps_use_the_scale_classifier_weights():
    from phanet.models.phanet import PhaNet

    model = PhaNet(
        list("ABCD"),
        ["-30", "0", "30"],
        32,
        backbone={"depth": 10, "growth_rate": 6, "stem_pool": False},
        attention={"hidden": 16, "grid": 2},
        sal_hidden=8,
        head_hidden=32,
    ).eval()
    images = torch.randn(2, 3, 32, 32)
    classes = torch.tensor([1, 3])
    with torch.no_grad():
        out = model(images, return_maps=True, map_classes=classes)
        feature_map = model.backbones[0].forward_features(images)
    weights = model.scale_classifiers[0].weight
    expected = (weights[classes][:, :, None, None] * feature_map).sum(1)
    torch.testing.assert_close(out.cams[0], expected)
    assert [m.shape for m in out.cams] == [(2, 4, 4)] * 3
