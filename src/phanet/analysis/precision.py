"""Does bfloat16 train PhaNet's squares? Measurements on trained checkpoints.

1. **Gradient agreement.** On one batch of the checkpoint's own data (64 images, no augmentation,
   eval mode, the same weights), the gradient of the ranking loss and of the whole loss with respect
   to each PAN and to the S2/S3 backbones, computed in float32, under bfloat16 autocast and with the
   backbones alone in bfloat16 (``bf16-backbones``), each compared by cosine with the float64 gradient.
2. **Where the squares are.** Mean and spread (std over 256 images of the data) of the S2 and S3
   squares (x, y, l): a std of 0 means the square no longer depends on the face.
3. **Splits of the network between bfloat16 and 32 bits** (:data:`SPLITS`): the same cosines for each,
   and the time of a training step in each (:func:`split_times`), to find a split that trains the
   squares as 32 bits do and runs faster.

    python benchmarks/precision_attention.py runs/a/checkpoints/best.ckpt runs/b/checkpoints/last.ckpt
    python benchmarks/precision_attention.py --splits runs/demo/phanet/checkpoints/best.ckpt
"""

from __future__ import annotations

import contextlib
import copy
import functools
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from phanet.data.datasets import FaceDataset
from phanet.data.registry import load_dataset
from phanet.losses import phanet_loss
from phanet.training.module import PhaNetModule
from phanet.training.run import load_module

PARTS = ("pans.0", "pans.1", "backbones.1", "backbones.2")


def _batch(module, count: int) -> dict[str, torch.Tensor]:
    data = module.config.data
    faces = load_dataset(data.dataset, data.root, **data.options)
    rows = torch.randperm(len(faces), generator=torch.Generator().manual_seed(0))[:count].tolist()
    size = module.config.model.input_size or module.config.model.image_size
    dataset = FaceDataset(faces, size, rows=rows)
    return module.prepare_batch(dataset.__getitems__(list(range(len(rows)))), train=False)


#: The splits :func:`split_cosines` and :func:`split_times` compare, by name: what runs in bfloat16.
SPLITS = {
    "fp32": "nothing: 32 bits throughout (how PhaNet trains)",
    "fp32-bf16-images": "nothing, but the images are rounded to bfloat16 first: a reference, how far the "
    "gradients move with a change of the images as small as bfloat16's rounding",
    "bf16": "everything that autocast lowers (how DenseNet-40 trains)",
    "s1-bf16": "the S1 backbone, under autocast; the PANs, S2, S3 and the heads in 32 bits (S1's input "
    "gradient trains nothing: the PAN reads its map detached)",
    "bf16-backbones": "the three backbones, under autocast; the squares, the PANs, crop-and-zoom, SAL, the "
    "heads and the loss in 32 bits (how PhaNet trains where bfloat16 is fast: train.precision bf16-backbones)",
    "conv-split": "every convolution's output and weight gradient; its input gradient, the path that "
    "trains the squares, and every other layer in 32 bits",
}


class _SplitConvolution(torch.autograd.Function):
    """A convolution computed in bfloat16 whose input gradient is computed in 32 bits (from 32-bit
    output gradients and weights, at the bfloat16 input); activations stay 32-bit tensors."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding):  # type: ignore[override]
        low = x.to(torch.bfloat16)
        ctx.save_for_backward(low, weight)
        ctx.geometry = stride, padding
        return F.conv2d(low, weight.to(torch.bfloat16), None, stride, padding).float()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        low, weight = ctx.saved_tensors
        stride, padding = ctx.geometry
        grad_input = grad_weight = None
        common = (None, stride, padding, (1, 1), False, (0, 0), 1)
        if ctx.needs_input_grad[0]:
            grad_input = torch.ops.aten.convolution_backward(grad, low.float(), weight, *common, (True, False, False))[0]
        if ctx.needs_input_grad[1]:
            low_weight = weight.to(torch.bfloat16)
            grad_weight = torch.ops.aten.convolution_backward(
                grad.to(torch.bfloat16), low, low_weight, *common, (False, True, False)
            )
            grad_weight = grad_weight[1].float()
        return grad_input, grad_weight, None, None


@contextlib.contextmanager
def split(model: nn.Module, name: str) -> Iterator[None]:
    """Run ``model`` (a PhaNet) in the split ``name`` of :data:`SPLITS` within the block (the images of
    ``fp32-bf16-images`` are rounded by the caller)."""
    if name not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {name!r}")
    undo: list[Callable[[], None]] = []

    def patch(module: nn.Module, attribute: str, value: Any) -> None:
        undo.append(functools.partial(delattr, module, attribute))
        setattr(module, attribute, value)

    if name == "s1-bf16":
        backbone = model.backbones[0]
        plain = backbone.forward_features

        def low_forward(x: torch.Tensor) -> torch.Tensor:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return plain(x).float()

        patch(backbone, "forward_features", low_forward)
    elif name == "bf16-backbones":
        undo.append(functools.partial(setattr, model, "backbone_dtype", model.backbone_dtype))
        model.backbone_dtype = torch.bfloat16
    elif name == "conv-split":
        for conv in model.modules():
            if isinstance(conv, nn.Conv2d):
                if conv.groups != 1 or conv.dilation != (1, 1) or conv.bias is not None:
                    raise ValueError("conv-split handles convolutions without groups, dilation or bias")
                patch(conv, "forward", lambda x, c=conv: _SplitConvolution.apply(x, c.weight, c.stride, c.padding))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if name == "bf16" else contextlib.nullcontext()
    try:
        with autocast:
            yield
    finally:
        for step in reversed(undo):
            step()


def _gradients(model, batch, loss_config, term: str, mode: str) -> dict[str, torch.Tensor]:
    """The gradient of the loss ``term`` for each of :data:`PARTS`, in ``mode``: ``fp64`` or a split."""
    model.zero_grad(set_to_none=True)
    images = batch["image"].double() if mode == "fp64" else batch["image"]
    if mode == "fp32-bf16-images":
        images = images.to(torch.bfloat16).float()
    with split(model, "fp32" if mode == "fp64" else mode):
        terms = phanet_loss(model(images), batch["expression"], batch["pose"], loss_config)
    getattr(terms, term).backward()
    return {
        part: torch.cat(
            [
                p.grad.flatten().double()
                for name, p in model.named_parameters()
                if name.startswith(part + ".") and p.grad is not None
            ]
        )
        for part in PARTS
    }


def load_checkpoint(checkpoint: str) -> PhaNetModule:
    """The checkpoint's module in evaluation mode, its images in the default memory layout."""
    module = load_module(checkpoint).eval()
    module.channels_last = False
    return module


def split_cosines(
    module: PhaNetModule, splits: Sequence[str] = tuple(SPLITS), images: int = 64
) -> list[tuple[str, str, list[float]]]:
    """(loss term, part, the cosine with the float64 gradient in each of ``splits``) on ``images`` images
    of the module's data (no augmentation, eval mode, the same weights), for the ranking loss and the
    whole loss and each of :data:`PARTS`."""
    batch = _batch(module, images)
    exact = copy.deepcopy(module.model).double()
    rows = []
    for term in ("ranking", "total"):
        reference = _gradients(exact, batch, module.config.loss, term, "fp64")
        found = [_gradients(module.model, batch, module.config.loss, term, name) for name in splits]
        for part in PARTS:
            rows.append((term, part, [float(F.cosine_similarity(g[part], reference[part], dim=0)) for g in found]))
    return rows


def split_times(
    module: PhaNetModule, splits: Sequence[str] = tuple(SPLITS), batch_size: int = 32, steps: int = 3, repeats: int = 3
) -> dict[str, float]:
    """Milliseconds of a training step (forward, the whole loss, backward) of a copy of the module's
    network in training mode, per split: the median of ``repeats`` means over ``steps`` steps, the splits
    taking turns so that a change of the machine's load falls on all of them alike."""
    batch = _batch(module, batch_size)
    model = copy.deepcopy(module.model).train()
    times: dict[str, list[float]] = {name: [] for name in splits}

    def step(name: str) -> None:
        model.zero_grad(set_to_none=True)
        images = batch["image"].to(torch.bfloat16).float() if name == "fp32-bf16-images" else batch["image"]
        with split(model, name):
            terms = phanet_loss(model(images), batch["expression"], batch["pose"], module.config.loss)
        terms.total.backward()

    for name in splits:
        step(name)  # warm-up
    for _ in range(repeats):
        for name in splits:
            start = time.perf_counter()
            for _ in range(steps):
                step(name)
            times[name].append(1000 * (time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


def square_spread(module: PhaNetModule, images: int = 256) -> dict[str, tuple[list[float], list[float]]]:
    """The mean and the std over ``images`` images of the module's data of the S2 and S3 squares (x, y, l)."""
    spread = _batch(module, images)
    with torch.no_grad():
        boxes = module.model(spread["image"]).boxes
    return {name: (boxes[:, i].mean(0).tolist(), boxes[:, i].std(0).tolist()) for i, name in enumerate(("S2", "S3"))}
