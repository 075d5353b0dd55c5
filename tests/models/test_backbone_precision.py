"""``bf16-backbones``, PhaNet's split between bfloat16 and 32 bits: the backbones compute in bfloat16, and
everything that chooses and trains the squares stays in 32 bits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from phanet.config import load_config
from phanet.losses import phanet_loss
from phanet.models import phanet as phanet_module
from phanet.models.attention import crop_and_zoom
from phanet.models.output import PhaNetOutput
from phanet.models.phanet import PhaNet
from phanet.runtime import BF16_BACKBONES, lightning_precision, resolve_precision

TINY = dict(
    backbone={"depth": 10, "growth_rate": 6, "stem_pool": False},
    attention={"hidden": 16, "grid": 2},
    sal_hidden=8,
    head_hidden=16,
)


def _model(input_size: int = 32) -> PhaNet:
    torch.manual_seed(0)
    return PhaNet(list("ABCD"), ["-30", "0", "30"], 32, input_size=input_size, **TINY)


def _layer_dtypes(model: PhaNet, images: torch.Tensor) -> tuple[dict[str, torch.dtype], PhaNetOutput]:
    """The dtype of every convolution's, linear layer's and batch norm's output, and the network's output."""
    seen: dict[str, torch.dtype] = {}
    hooks = [
        module.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.dtype))
        for n, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))
    ]
    output = model(images)
    for hook in hooks:
        hook.remove()
    return seen, output


def test_the_backbones_compute_in_bfloat16_and_the_squares_pans_sal_and_heads_in_32_bits():
    model = _model().train()
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    model.backbone_dtype = torch.bfloat16
    dtypes, output = _layer_dtypes(model, images)
    convolutions = {n: d for n, d in dtypes.items() if n.startswith("backbones.") and "norm" not in n}
    others = {n: d for n, d in dtypes.items() if not n.startswith("backbones.")}
    assert convolutions and set(convolutions.values()) == {torch.bfloat16}
    assert {n.split(".")[0] for n in others} == {"scale_classifiers", "pans", "sal", "head"}
    assert set(others.values()) == {torch.float32}
    for name in ("boxes", "local_boxes", "scale_weights", "expression_logits", "pose_logits", "task_weights"):
        value = getattr(output, name)
        assert value.dtype == torch.float32, name
    # Without the split every layer is in 32 bits, and the outputs differ only by the backbones' rounding.
    model.backbone_dtype = None
    plain_dtypes, plain = _layer_dtypes(model, images)
    assert set(plain_dtypes.values()) == {torch.float32}
    assert not torch.equal(plain.expression_logits, output.expression_logits)
    assert torch.allclose(plain.boxes, output.boxes, atol=0.05)


@pytest.mark.parametrize("input_size", [32, 64])
def test_the_gradient_that_trains_each_square_is_summed_in_32_bits(monkeypatch, input_size):
    """The square's gradient is the zoomed region's gradient (the next backbone's input gradient)
    summed over the region's pixels through the sampling. Under the split, the region and its gradient
    are 32-bit tensors, and the gradient that reaches the square is that sum, to 32-bit accuracy."""
    model = _model(input_size).train()
    model.backbone_dtype = torch.bfloat16
    crops: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]] = []

    def watched(images, boxes, size=None, mode="affine", steepness=50.0):
        square = boxes.view_as(boxes)  # this crop's own use of the square: its gradient alone
        square.retain_grad()
        region = crop_and_zoom(images, square, size, mode, steepness)
        region.retain_grad()
        crops.append((images, square, region, size))
        return region

    monkeypatch.setattr(phanet_module, "crop_and_zoom", watched)
    images = torch.rand(4, 3, input_size, input_size) * 2 - 1
    loss = load_config("demo").loss
    terms = phanet_loss(model(images), torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 0]), loss)
    terms.total.backward()
    assert len(crops) == 2  # S2 and S3
    for source, square, region, size in crops:
        assert source.dtype == square.dtype == region.dtype == torch.float32
        assert region.grad is not None and region.grad.dtype == torch.float32
        assert square.grad is not None and square.grad.dtype == torch.float32
        assert square.grad.abs().sum() > 0
        # The same sum in float64, from the same region gradient.
        exact_square = square.detach().double().requires_grad_()
        exact_region = crop_and_zoom(source.detach().double(), exact_square, size, model.crop, model.mask_steepness)
        (expected,) = torch.autograd.grad(exact_region, exact_square, region.grad.double())
        assert torch.linalg.vector_norm(square.grad.double() - expected) <= 1e-5 * torch.linalg.vector_norm(expected)
    for pan in model.pans:
        grad = pan.fc2.weight.grad
        assert grad is not None and grad.dtype == torch.float32 and torch.isfinite(grad).all()


def test_auto_precision_lowers_only_the_backbones_of_a_network_with_crop_and_zoom(monkeypatch):
    from phanet import runtime

    for native in (True, False):
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda native=native: native)
        assert resolve_precision("auto", "cpu", crop_attention=True) == (BF16_BACKBONES if native else "32-true")
        assert resolve_precision("auto", "cpu", crop_attention=False) == ("bf16-mixed" if native else "32-true")
        # Asked for explicitly, whatever the machine; a network without squares has only backbones to lower.
        assert resolve_precision(BF16_BACKBONES, "cpu", crop_attention=True) == BF16_BACKBONES
        assert resolve_precision(BF16_BACKBONES, "cpu", crop_attention=False) == "bf16-mixed"
        assert resolve_precision("16-mixed", "cpu") == "16-mixed"
    assert lightning_precision(BF16_BACKBONES) == "32-true"  # the network applies its autocast itself
    assert lightning_precision("bf16-mixed") == "bf16-mixed"
