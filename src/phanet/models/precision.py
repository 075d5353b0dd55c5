"""Mixed precision: the parts of PhaNet that stay in (at least) 32-bit floats under autocast."""

from __future__ import annotations

import torch


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 when it is a 16-bit float (autocast output); float32 and float64 unchanged.

    The squares (x, y, l), the scale weights c and the task weights λ are small numbers that the
    paper's equations constrain exactly (λe + λp = 1, squares inside the image) and that steer
    crop-and-zoom to sub-pixel precision; bfloat16 keeps only 8 bits of them.
    """
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
