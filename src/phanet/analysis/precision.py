"""Does bfloat16 train PhaNet's squares? Two measurements on trained checkpoints.

1. **Gradient agreement.** On one batch of the checkpoint's own data (64 images, no augmentation,
   eval mode, the same weights), the gradient of the ranking loss and of the whole loss with respect
   to each PAN and to the S2/S3 backbones, computed in float32 and under bfloat16 autocast, each
   compared by cosine with the float64 gradient.
2. **Where the squares are.** Mean and spread (std over 256 images of the data) of the S2 and S3
   squares (x, y, l): a std of 0 means the square no longer depends on the face.

    python benchmarks/precision_attention.py runs/a/checkpoints/best.ckpt runs/b/checkpoints/last.ckpt
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F

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


def _gradients(model, batch, loss_config, term: str, mode: str) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16" else contextlib.nullcontext()
    images = batch["image"].double() if mode == "fp64" else batch["image"]
    with autocast:
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


def gradient_cosines(module: PhaNetModule, images: int = 64) -> list[tuple[str, str, float, float]]:
    """(loss term, part, cosine of the float32 gradient with the float64 one, the same for bfloat16 autocast)
    on ``images`` images of the module's data, for the ranking loss and the whole loss and each of :data:`PARTS`."""
    batch = _batch(module, images)
    exact = copy.deepcopy(module.model).double()
    rows = []
    for term in ("ranking", "total"):
        reference = _gradients(exact, batch, module.config.loss, term, "fp64")
        single = _gradients(module.model, batch, module.config.loss, term, "fp32")
        half = _gradients(module.model, batch, module.config.loss, term, "bf16")
        for part in PARTS:
            cosines = [float(F.cosine_similarity(g[part], reference[part], dim=0)) for g in (single, half)]
            rows.append((term, part, *cosines))
    return rows


def square_spread(module: PhaNetModule, images: int = 256) -> dict[str, tuple[list[float], list[float]]]:
    """The mean and the std over ``images`` images of the module's data of the S2 and S3 squares (x, y, l)."""
    spread = _batch(module, images)
    with torch.no_grad():
        boxes = module.model(spread["image"]).boxes
    return {name: (boxes[:, i].mean(0).tolist(), boxes[:, i].std(0).tolist()) for i, name in enumerate(("S2", "S3"))}
