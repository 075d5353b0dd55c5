"""``phanet.analysis.precision``: the splits between bfloat16 and 32 bits run what they say they run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from phanet.analysis.precision import SPLITS, _SplitConvolution, split
from phanet.models.phanet import PhaNet

TINY = dict(
    backbone={"depth": 10, "growth_rate": 6, "stem_pool": False},
    attention={"hidden": 16, "grid": 2},
    sal_hidden=8,
    head_hidden=16,
)


def _model() -> PhaNet:
    torch.manual_seed(0)
    return PhaNet(list("ABCD"), ["-30", "0", "30"], 32, **TINY)


def test_the_split_convolution_is_bfloat16_forward_and_weight_gradient_and_32_bit_input_gradient():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, 8, requires_grad=True)
    weight = torch.randn(4, 5, 3, 3, requires_grad=True)
    out = _SplitConvolution.apply(x, weight, (1, 1), (1, 1))
    low_x, low_w = x.detach().bfloat16(), weight.detach().bfloat16()
    assert out.dtype == torch.float32
    assert torch.equal(out, F.conv2d(low_x, low_w, None, 1, 1).float())  # computed in bfloat16
    grad = torch.randn_like(out)
    out.backward(grad)
    assert x.grad.dtype == weight.grad.dtype == torch.float32
    # The input gradient in 32 bits, at the bfloat16 input: the exact transposed convolution of the 32-bit gradient.
    expected_input = torch.nn.grad.conv2d_input(x.shape, weight.detach(), grad, 1, 1)
    assert torch.allclose(x.grad, expected_input, rtol=1e-5, atol=1e-5)
    # The weight gradient in bfloat16: equal to the bfloat16 computation, not to the 32-bit one.
    low_weight_grad = torch.nn.grad.conv2d_weight(low_x, weight.shape, grad.bfloat16(), 1, 1).float()
    assert torch.allclose(weight.grad, low_weight_grad, rtol=1e-2, atol=1e-2)
    assert not torch.equal(weight.grad, torch.nn.grad.conv2d_weight(x.detach(), weight.shape, grad, 1, 1))


def _dtypes(model: PhaNet, images: torch.Tensor, name: str) -> dict[str, torch.dtype]:
    """The dtype of every convolution's and linear layer's output in the split ``name``."""
    seen: dict[str, torch.dtype] = {}
    hooks = [
        module.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o.dtype))
        for n, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
    with split(model, name):
        model(images)
    for hook in hooks:
        hook.remove()
    return seen


def test_s1_and_backbone_splits_lower_what_they_say_and_each_split_is_undone_after_its_block():
    model = _model().eval()
    images = torch.rand(2, 3, 32, 32)
    before = model(images).expression_logits
    dtypes = _dtypes(model, images, "s1-bf16")
    s1 = {n: d for n, d in dtypes.items() if n.startswith("backbones.0.")}
    rest = {n: d for n, d in dtypes.items() if not n.startswith("backbones.0.")}
    assert s1 and set(s1.values()) == {torch.bfloat16}
    assert rest and set(rest.values()) == {torch.float32}  # the PANs, S2, S3 and the heads
    assert set(_dtypes(model, images, "bf16").values()) == {torch.bfloat16}
    backbones = _dtypes(model, images, "bf16-backbones")
    assert {d for n, d in backbones.items() if n.startswith("backbones.")} == {torch.bfloat16}
    assert {d for n, d in backbones.items() if not n.startswith("backbones.")} == {torch.float32}
    model.backbone_dtype = torch.float16  # a network that trains so keeps its setting after the block
    with split(model, "bf16-backbones"):
        assert model.backbone_dtype == torch.bfloat16
    assert model.backbone_dtype == torch.float16
    model.backbone_dtype = None
    assert set(_dtypes(model, images, "fp32").values()) == {torch.float32}
    for name in SPLITS:
        with split(model, name):
            model(images)
        assert torch.equal(model(images).expression_logits, before)  # nothing left patched
    with pytest.raises(ValueError, match="split must be one of"), split(model, "fp8"):
        pass


def test_under_the_convolution_split_every_convolution_is_computed_in_bfloat16_and_held_in_32_bits():
    model = _model().train()
    images = torch.rand(2, 3, 32, 32)
    outputs: dict[str, torch.Tensor] = {}

    def keep(module, inputs, output, name):
        outputs[name] = output.detach()

    def convolutions(name: str) -> dict[str, torch.Tensor]:
        outputs.clear()
        hooks = [
            m.register_forward_hook(lambda m, i, o, n=n: keep(m, i, o, n))
            for n, m in model.named_modules()
            if isinstance(m, nn.Conv2d)
        ]
        with split(model, name):
            out = model(images)
            (out.expression_logits.sum() + out.boxes.sum()).backward()
        for hook in hooks:
            hook.remove()
        return dict(outputs)

    split_outputs = convolutions("conv-split")
    assert split_outputs and all(o.dtype == torch.float32 for o in split_outputs.values())
    assert all(torch.equal(o, o.bfloat16().float()) for o in split_outputs.values())  # bfloat16 values
    assert not all(torch.equal(o, o.bfloat16().float()) for o in convolutions("fp32").values())
    pan = model.pans[0].fc2.weight.grad
    assert pan is not None and pan.dtype == torch.float32 and torch.isfinite(pan).all()
