"""Mixed precision: the parts of PhaNet that stay in (at least) 32-bit floats under autocast."""

from __future__ import annotations

from collections.abc import Callable

import torch


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 when it is a 16-bit float (autocast output); float32 and float64 unchanged.

    The squares (x, y, l), the scale weights c and the task weights λ are small numbers that the
    paper's equations constrain exactly (λe + λp = 1, squares inside the image) and that steer
    crop-and-zoom to sub-pixel precision; bfloat16 keeps only 8 bits of them.
    """
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def low_precision_features(
    features: Callable[[torch.Tensor], torch.Tensor], region: torch.Tensor, dtype: torch.dtype | None
) -> torch.Tensor:
    """``features(region)`` (a backbone's ``forward_features``) computed under autocast to ``dtype`` (None:
    as it is), the map returned in ``region``'s dtype.

    This is PhaNet's split between bfloat16 and 32 bits. Only the backbones' layers run in ``dtype``.
    The square that crop-and-zoom cut ``region`` with is a 32-bit tensor, and so is the gradient that
    reaches it: autocast's cast of ``region`` sends the backbone's input gradient back in ``region``'s
    dtype, and the sum over the zoomed pixels that turns it into the square's gradient (the sampling's
    backward) runs in 32 bits, as do the PANs that choose the squares.
    """
    if dtype is None:
        return features(region)
    with torch.autocast(region.device.type, dtype=dtype):
        computed = features(region)
    return computed.to(region.dtype)
