"""The network against Eq. 1–10: shapes, gradients, bounds and ablation switches."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch

from phanet import PhaNet
from phanet.config import ModelConfig
from phanet.models import create_model
from phanet.models import phanet as phanet_module
from phanet.models.attention import PixelAttentionNetwork, boxcar_mask, compose_boxes, crop_and_zoom, peak_square
from phanet.models.baselines import HOG
from phanet.models.densenet import DenseNet
from phanet.models.heads import DCMLHead
from phanet.models.scale_attention import ScaleAttention

SMALL = dict(
    backbone={"depth": 10, "growth_rate": 6, "stem_pool": False},
    attention={"hidden": 16, "grid": 2},
    sal_hidden=8,
    head_hidden=32,
)
#: Class lists of E expressions and P poses.
E7, P9 = list("ABCDEFG"), [str(a) for a in range(-40, 50, 10)]
E4, P3 = list("ABCD"), ["-30", "0", "30"]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_densenet40_cifar_has_the_published_one_million_parameters():
    model = DenseNet(depth=40, growth_rate=12, stem="cifar", num_classes=10)
    assert abs(n_params(model) - 1.0e6) <= 0.05e6
    assert model.num_features == 16 + 3 * 12 * 12


@pytest.mark.slow
def test_default_phanet_is_the_papers_bu3dfe_configuration():
    model = PhaNet()
    assert (len(model.info.expressions), len(model.info.poses), model.image_size) == (7, 9, 224)
    assert model.info.expressions == ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
    assert model.info.poses == ["-90", "-60", "-45", "-30", "0", "30", "45", "60", "90"]
    assert len(model.backbones) == 3 and len(model.pans) == 2 and model.sal is not None
    stem = model.backbones[0].stem[0]
    assert stem.kernel_size == (7, 7) and stem.stride == (2, 2)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224), return_maps=True, return_crops=True)
    assert out.expression_logits.shape == (2, 7)
    assert out.pose_logits.shape == (2, 9)
    assert [t.shape for t in out.scale_logits] == [(2, 7)] * 3
    assert out.boxes.shape == (2, 2, 3) and out.local_boxes.shape == (2, 2, 3)
    assert out.scale_weights.shape == (2, 3) and out.task_weights.shape == (2, 2)
    assert out.features.shape == (2, 3 * 448)
    assert [m.shape for m in out.cams] == [(2, 56 // 4, 56 // 4)] * 3
    assert [c.shape for c in out.crops] == [(2, 3, 224, 224)] * 2


def test_scale_weights_start_in_half_to_one_and_follow_eq7():
    torch.manual_seed(0)
    sal = ScaleAttention(channels=5, num_scales=3, hidden=4)
    pooled = [torch.randn(64, 5) for _ in range(3)]
    f, c, z = sal(pooled)
    assert c.min() >= 0.5 and c.max() < 1.0
    fused = torch.cat(pooled, 1)
    torch.testing.assert_close(z, sal.fc2(torch.relu(sal.fc1(fused))))
    torch.testing.assert_close(c, torch.sigmoid(torch.relu(z)))
    torch.testing.assert_close(f[:, 5:10], c[:, 1:2] * pooled[1])
    model = PhaNet(E7, P9, 32, **SMALL).eval()
    with torch.no_grad():
        weights = model(torch.randn(8, 3, 32, 32)).scale_weights
    assert weights.min() >= 0.5 and weights.max() < 1.0


@pytest.mark.parametrize("detach", [True, False])
def test_finer_losses_reach_the_coarser_backbone_only_without_detach(detach):
    torch.manual_seed(0)
    model = PhaNet(E7, P9, 32, **{**SMALL, "attention": {"hidden": 16, "grid": 2, "detach_input": detach}})
    torch.nn.init.normal_(model.pans[0].fc2.weight, std=0.1)  # a trained PAN (it starts at the centred square)
    out = model(torch.randn(4, 3, 32, 32))
    out.scale_logits[1].sum().backward()  # S2's expression logits: through S2's square into S1's map
    s1 = torch.cat([p.grad.flatten() for p in model.backbones[0].parameters() if p.grad is not None] or [torch.zeros(1)])
    assert (s1.abs().sum() > 0) is not detach
    assert model.pans[0].fc2.weight.grad.abs().sum() > 0  # the PAN itself learns either way
    assert torch.isfinite(out.pan_outputs[:, :2]).all()
    torch.testing.assert_close(model.pans[0].bound(out.pan_outputs[:, 0]), out.local_boxes[:, 0])


def test_sigmoid_gate_keeps_gradient_where_the_literal_gate_has_none():
    torch.manual_seed(0)
    pooled = [torch.randn(16, 5) for _ in range(3)]
    for form, alive in (("literal", False), ("sigmoid", True)):
        sal = ScaleAttention(channels=5, num_scales=3, hidden=4, form=form)
        with torch.no_grad():
            sal.fc2.bias.fill_(-3.0)  # every pre-activation negative: a dead scale weight under Eq. 7 as written
        c = sal.coefficients(pooled)
        z = sal.pre_activations(pooled)
        assert (z < 0).all()
        expected = torch.sigmoid(z) if form == "sigmoid" else torch.full_like(z, 0.5)
        torch.testing.assert_close(c, expected)
        c.sum().backward()
        grad = torch.cat([p.grad.flatten() for p in sal.parameters()])
        assert bool(grad.abs().sum() > 0) is alive, form
    fresh = ScaleAttention(channels=5, num_scales=3, hidden=4, form="sigmoid")
    torch.testing.assert_close(fresh.coefficients(pooled), torch.full((16, 3), 0.5))
    with pytest.raises(ValueError, match="form"):
        ScaleAttention(5, 3, 4, form="softmax")


@pytest.mark.parametrize("form", ["bounded"])
def test_lambda_constraints_hold_for_every_sample(form):
    torch.manual_seed(1)
    head = DCMLHead(20, 7, 9, hidden=8, lambda_form=form)
    for scale in (0.01, 1.0, 100.0, 1e4):
        lam = head.task_weights(torch.randn(256, 20) * scale)
        lambda_e, lambda_p = lam[:, 0], lam[:, 1]
        assert torch.allclose(lambda_e + lambda_p, torch.ones(256), atol=1e-7, rtol=0)
        assert (lambda_e >= lambda_p).all() and (lambda_p >= 0).all()


def test_free_lambda_only_keeps_the_sum():
    head = DCMLHead(4, 3, 3, hidden=4, lambda_form="free")
    with torch.no_grad():
        head.lam.bias.copy_(torch.tensor([-5.0, 5.0]))
        head.lam.weight.zero_()
    lam = head.task_weights(torch.randn(3, 4))
    assert torch.allclose(lam.sum(1), torch.ones(3))
    assert (lam[:, 0] < lam[:, 1]).all()


@pytest.mark.parametrize("mode", ["affine", "boxcar"])
def test_crop_and_zoom_gradients_are_exact(mode):
    torch.manual_seed(2)
    images = torch.rand(2, 2, 9, 9, dtype=torch.float64)
    boxes = torch.tensor([[0.43, 0.57, 0.21], [0.61, 0.38, 0.27]], dtype=torch.float64, requires_grad=True)

    def crop(b):
        return crop_and_zoom(images, b, size=5, mode=mode, steepness=8.0)

    assert torch.autograd.gradcheck(crop, (boxes,), eps=1e-6, atol=1e-6)


def test_crop_and_zoom_cuts_the_square_it_is_given():
    image = torch.arange(16.0).view(1, 1, 4, 4)
    # the top-left quarter, zoomed to 2 x 2, is exactly pixels (0..1, 0..1)
    out = crop_and_zoom(image, torch.tensor([[0.25, 0.25, 0.25]]), size=2)
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 1.0], [4.0, 5.0]]))
    # bottom-right quarter
    out = crop_and_zoom(image, torch.tensor([[0.75, 0.75, 0.25]]), size=2)
    torch.testing.assert_close(out[0, 0], torch.tensor([[10.0, 11.0], [14.0, 15.0]]))


def test_boxcar_mask_is_one_inside_and_zero_outside():
    mask = boxcar_mask(torch.tensor([[0.5, 0.5, 0.25]]), 40, 40, steepness=200.0)[0, 0]
    assert mask[20, 20] > 0.99 and mask[2, 2] < 0.01 and mask[20, 2] < 0.01 and mask[2, 20] < 0.01


def test_pan_squares_stay_inside_the_image_within_the_side_bounds():
    pan = PixelAttentionNetwork(4, hidden=8, grid=2, side_min=0.3, side_max=0.6)
    raw = torch.randn(500, 3) * 20
    box = pan.bound(raw)
    x, y, half = box.unbind(1)
    assert (half >= 0.15 - 1e-6).all() and (half <= 0.3 + 1e-6).all()
    assert (x - half >= -1e-6).all() and (x + half <= 1 + 1e-6).all()
    assert (y - half >= -1e-6).all() and (y + half <= 1 + 1e-6).all()
    torch.testing.assert_close(pan(torch.randn(3, 4, 5, 5)), torch.tensor([[0.5, 0.5, 0.225]] * 3))


def test_pinned_marks_squares_at_the_end_of_their_range():
    from phanet.models.attention import pinned

    # tanh(2.65) = 0.990, sigmoid(4.6) = 0.990
    raw = torch.tensor([[0.0, 0.0, 0.0], [2.7, 0.0, 0.0], [0.0, -2.7, 0.0], [0.0, 0.0, 4.7], [0.0, 0.0, -4.7], [2.6, -2.6, 4.5]])
    assert pinned(raw).tolist() == [False, True, True, True, True, False]
    assert pinned(raw, tolerance=0.05).tolist() == [False, True, True, True, True, True]


def test_s3_box_is_reported_in_original_image_coordinates():
    outer = torch.tensor([[0.3, 0.6, 0.2]])  # covers x in [0.1, 0.5], y in [0.4, 0.8]
    inner = torch.tensor([[0.25, 0.75, 0.25]])  # top-left... of the zoomed S2 image
    torch.testing.assert_close(compose_boxes(outer, inner), torch.tensor([[0.2, 0.7, 0.1]]))
    model = PhaNet(E7, P9, 32, **SMALL).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(out.boxes[:, 1], compose_boxes(out.local_boxes[:, 0], out.local_boxes[:, 1]))


def test_swap_squares_gives_chosen_rows_another_rows_square_without_gradient():
    from phanet.models.attention import swap_squares

    boxes = torch.rand(9, 3, requires_grad=True)
    swapped = swap_squares(boxes, 1.0, torch.Generator().manual_seed(0))
    assert not (swapped == boxes).all(1).any()  # no row keeps its own square
    assert sorted(map(tuple, swapped.tolist())) == sorted(map(tuple, boxes.tolist()))  # each square given once
    swapped.sum().backward()
    assert boxes.grad.abs().sum() == 0
    same = swap_squares(boxes, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(same, boxes) and same.requires_grad
    half = swap_squares(boxes, 0.5, torch.Generator().manual_seed(3))
    kept = (half == boxes).all(1)
    assert 0 < int(kept.sum()) < 9


def test_s3_swap_applies_to_training_forward_passes_only():
    """``attention.swap: 1``: in training every S3 square (in S2's coordinates) is another face's PAN
    square; the S2 squares and evaluation are untouched."""
    config = dict(SMALL, attention={"hidden": 16, "grid": 2, "swap": 1.0})
    torch.manual_seed(0)
    model = PhaNet(E7, P9, 32, **config)
    for p in model.pans.parameters():  # squares that differ from face to face
        torch.nn.init.normal_(p, std=0.05)
    images = torch.randn(6, 3, 32, 32)
    out = model(images)
    own = model.pans[1].bound(out.pan_outputs[:, 1])
    torch.testing.assert_close(out.local_boxes[:, 0], model.pans[0].bound(out.pan_outputs[:, 0]))
    assert not torch.isclose(out.local_boxes[:, 1], own).all(1).any()
    assert sorted(map(tuple, out.local_boxes[:, 1].tolist())) == sorted(map(tuple, own.tolist()))
    model.eval()
    with torch.no_grad():
        out = model(images)
    torch.testing.assert_close(out.local_boxes[:, 1], model.pans[1].bound(out.pan_outputs[:, 1]))


def test_given_squares_replace_the_pans_where_finite():
    model = PhaNet(E7, P9, 32, **SMALL).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        own = model.forward_features(images)
        given = torch.full((3, 2, 3), float("nan"))
        given[1, 1] = torch.tensor([0.3, 0.7, 0.2])
        moved = model.forward_features(images, squares=given)
        again = model.forward_features(images, squares=own["local_boxes"])
    torch.testing.assert_close(moved["local_boxes"][1, 1], torch.tensor([0.3, 0.7, 0.2]))
    torch.testing.assert_close(moved["local_boxes"][[0, 2]], own["local_boxes"][[0, 2]])
    torch.testing.assert_close(moved["logits"][2][[0, 2]], own["logits"][2][[0, 2]])
    assert not torch.allclose(moved["logits"][2][1], own["logits"][2][1])
    torch.testing.assert_close(moved["logits"][1], own["logits"][1])  # S2 keeps its square
    for s in range(3):
        torch.testing.assert_close(again["logits"][s], own["logits"][s])


def test_peak_square_centres_on_the_highest_response():
    fmap = torch.zeros(1, 3, 4, 8)
    fmap[0, 1, 3, 6] = 5.0
    box = peak_square(fmap, half=0.1)
    torch.testing.assert_close(box, torch.tensor([[6.5 / 8, 3.5 / 4, 0.1]]))


def test_ablation_without_attention_scales_runs_no_attention_network():
    model = PhaNet(E7, P9, 32, scales=["N_S1"], joint_sa=False, **SMALL).eval()
    assert len(model.pans) == 0 and len(model.backbones) == 1 and model.sal is None
    with mock.patch.object(phanet_module, "crop_and_zoom", side_effect=AssertionError("attention ran")), torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert torch.isnan(out.boxes).all()
    assert out.scale_logits[1] is None and out.scale_logits[2] is None
    torch.testing.assert_close(out.scale_weights[:, 0], torch.ones(2))
    assert torch.isnan(out.scale_weights[:, 1:]).all()


@pytest.mark.parametrize(
    "scales,computed,fused",
    [
        (["H_S2"], 2, 1),
        (["H_S3"], 3, 1),
        (["N_S1", "H_S2"], 2, 2),
        (["N_S1", "H_S3"], 3, 2),
        (["H_S2", "H_S3"], 3, 2),
        (["N_S1", "H_S2", "H_S3"], 3, 3),
    ],
)
@pytest.mark.parametrize("joint_sa", [False, True])
def test_every_table6_configuration_builds_and_runs(scales, computed, fused, joint_sa):
    model = PhaNet(E4, P3, 32, scales=scales, joint_sa=joint_sa, **SMALL).eval()
    assert len(model.backbones) == computed and len(model.pans) == computed - 1
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.features.shape == (2, fused * model.backbones[0].num_features)
    present = ~torch.isnan(out.scale_weights[0])
    assert present.tolist() == [name in scales for name in ("N_S1", "H_S2", "H_S3")]


@pytest.mark.parametrize("arch", ["densenet", "vgg19", "hog_fc"])
def test_baselines_return_the_same_typed_result(arch):
    config = ModelConfig(arch=arch, image_size=32, width=0.125, head_hidden=16)
    config.backbone.depth, config.backbone.growth_rate = 10, 6
    model = create_model(arch, expressions=list("ABCDE"), poses=P3, **config.arguments()).eval()
    assert model.info.arch == arch and model.info.expressions == list("ABCDE")
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.expression_logits.shape == (2, 5) and out.pose_logits.shape == (2, 3)
    assert torch.isnan(out.boxes).all() and torch.isnan(out.task_weights).all()


def test_hog_of_a_vertical_edge_votes_for_the_horizontal_gradient_bin():
    image = -torch.ones(1, 3, 16, 16)
    image[..., 8:] = 1.0
    hog = HOG(bins=9, cell=8)
    features = hog(image).view(1, 1, 1, 4, 9)
    assert hog.output_size(16) == 36
    per_bin = features.sum(dim=(0, 1, 2, 3))
    assert int(per_bin.argmax()) == 0
    assert math.isclose(float(per_bin[0]), float(per_bin.sum()), rel_tol=1e-5)


def test_the_output_carries_sal_pre_activations_of_the_fused_scales_only():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        two = PhaNet(E7, P9, 32, scales=["H_S2", "H_S3"], joint_sa=True, sal_form="sigmoid", **SMALL).eval()(images)
        plain = PhaNet(E7, P9, 32, scales=["N_S1", "H_S2"], joint_sa=False, **SMALL).eval()(images)
    assert two.sal_logits.shape == (2, 3)
    assert torch.isnan(two.sal_logits[:, 0]).all() and not torch.isnan(two.sal_logits[:, 1:]).any()
    torch.testing.assert_close(torch.sigmoid(two.sal_logits[:, 1:]), two.scale_weights[:, 1:])
    assert plain.sal_logits is None
