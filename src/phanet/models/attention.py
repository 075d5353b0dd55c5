"""Pixel attention network (Eq. 2) and hierarchical crop-and-zoom (Eq. 5).

A square region ``R_s(x, y, l)`` is described by its centre (x, y) and half side l, all in
normalised coordinates of the image it is cut from: x to the right and y down in [0, 1], l as a
fraction of that image's side. The squares are always inside the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from phanet.models.precision import at_least_float32


class PixelAttentionNetwork(nn.Module):
    """Υ of Eq. 2: two stacked fully connected layers on the scale's map ``M_s`` → square (x, y, l).

    (The expression probability p(e|s) of Eq. 2 comes from the scale's own classifier in
    :class:`~phanet.models.phanet.PhaNet`.) The map is average-pooled to ``grid`` × ``grid`` first so
    that the regressor keeps the spatial layout it localises with and works at any input size.

    Args:
        in_channels (int): channels of ``M_s``.
        hidden (int): units of the first fully connected layer.
        grid (int): spatial size ``M_s`` is pooled to before the fully connected layers.
        side_min (float): lower bound of the square's side (2 l) as a fraction of the image side.
        side_max (float): upper bound of the square's side, likewise.

    The raw outputs (a_x, a_y, a_l) are bounded so that the square stays inside the image:
    ``l = (side_min + (side_max - side_min) · sigmoid(a_l)) / 2`` and
    ``x = 1/2 + (1/2 - l) · tanh(a_x)`` (y alike).
    """

    def __init__(self, in_channels: int, hidden: int = 128, grid: int = 7, side_min: float = 0.3, side_max: float = 0.6) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.fc1 = nn.Linear(in_channels * grid * grid, hidden)
        self.fc2 = nn.Linear(hidden, 3)
        self.side_min = side_min
        self.side_max = side_max
        # Start from the centred square of middle size; the initialisation step then moves it.
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def raw(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Unbounded regressor outputs (a_x, a_y, a_l), shape (B, 3), in float32 also under mixed
        precision (a bfloat16 square would be half a pixel off at 128 px)."""
        hidden = F.relu(self.fc1(self.pool(feature_map).flatten(1)))
        return at_least_float32(self.fc2(hidden))

    def bound(self, raw: torch.Tensor) -> torch.Tensor:
        half = 0.5 * (self.side_min + (self.side_max - self.side_min) * torch.sigmoid(raw[:, 2]))
        room = 0.5 - half
        x = 0.5 + room * torch.tanh(raw[:, 0])
        y = 0.5 + room * torch.tanh(raw[:, 1])
        return torch.stack([x, y, half], dim=1)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Square (x, y, l) in the coordinates of the image ``feature_map`` was computed from, (B, 3),
        in float32."""
        return self.bound(self.raw(feature_map))


def at_range_end(offset, side, tolerance: float = 0.01):
    """Whether squares are at the end of the range a PAN bounds them to, from their bounded values:
    ``offset`` (..., 2), the centre's tanh along x and y in [-1, 1], and ``side`` (...), the side's
    sigmoid in [0, 1]. True where an offset is within ``tolerance`` of ±1 or the side within
    ``tolerance`` of 0 or 1: there the square barely moves with its losses (its derivatives are
    < 2 ``tolerance`` of their largest value). Works on torch tensors and numpy arrays alike."""
    return (abs(offset) >= 1 - tolerance).any(-1) | (side <= tolerance) | (side >= 1 - tolerance)


def pinned(raw: torch.Tensor, tolerance: float = 0.01) -> torch.Tensor:
    """:func:`at_range_end` of the squares of the raw PAN outputs ``raw`` (..., 3). Bool, shape (...)."""
    return at_range_end(torch.tanh(raw[..., :2]), torch.sigmoid(raw[..., 2]), tolerance)


def _affine(boxes: torch.Tensor) -> torch.Tensor:
    """Affine matrices mapping output grid [-1, 1]^2 onto each square of the input, (B, 2, 3)."""
    x, y, half = boxes.unbind(1)
    zero = torch.zeros_like(x)
    scale = 2 * half
    return torch.stack([torch.stack([scale, zero, 2 * x - 1], dim=1), torch.stack([zero, scale, 2 * y - 1], dim=1)], dim=1)


def boxcar_mask(boxes: torch.Tensor, height: int, width: int, steepness: float) -> torch.Tensor:
    """The paper's attention mask T_a (Eq. 5): a 2-D boxcar made of two steep tanh steps per axis.

    ``T(u) = (tanh(k (u - u_0)) - tanh(k (u - u_1))) / 2`` along each axis, u in [0, 1] image
    coordinates, k = ``steepness``; ≈1 inside the square, ≈0 outside, differentiable in x, y, l.
    Returns (B, 1, height, width).
    """
    x, y, half = (t[:, None] for t in boxes.unbind(1))
    u = (torch.arange(width, dtype=boxes.dtype, device=boxes.device) + 0.5) / width
    v = (torch.arange(height, dtype=boxes.dtype, device=boxes.device) + 0.5) / height
    mask_x = 0.5 * (torch.tanh(steepness * (u - (x - half))) - torch.tanh(steepness * (u - (x + half))))
    mask_y = 0.5 * (torch.tanh(steepness * (v - (y - half))) - torch.tanh(steepness * (v - (y + half))))
    return (mask_y[:, :, None] * mask_x[:, None, :])[:, None]


def crop_and_zoom(
    images: torch.Tensor, boxes: torch.Tensor, size: int | None = None, mode: str = "affine", steepness: float = 50.0
) -> torch.Tensor:
    """Cut the square ``boxes`` (B, 3) out of ``images`` (B, C, H, W) and zoom it bilinearly to ``size``.

    ``mode="affine"`` samples the square directly with an affine grid, so the result is an exact,
    differentiable function of x, y and l. ``mode="boxcar"`` first multiplies by the paper's
    :func:`boxcar_mask` (Eq. 5) and then zooms, so gradients also flow through the mask.
    """
    batch, channels, height, width = images.shape
    size = size or height
    if mode == "boxcar":
        images = images * boxcar_mask(boxes, height, width, steepness)
    elif mode != "affine":
        raise ValueError(f"crop mode must be 'affine' or 'boxcar', got {mode!r}")
    # The sampling grid in float32 whatever the autocast context (bfloat16 coordinates are ~1/256 apart).
    with torch.autocast(images.device.type, enabled=False):
        grid = F.affine_grid(_affine(at_least_float32(boxes)), [batch, channels, size, size], align_corners=False)
    # A finite square keeps the grid inside [-1, 1]; this only guards the sampler against NaN
    # coordinates (diverged weights), which crash its CPU backward pass.
    grid = torch.nan_to_num(grid, nan=0.0).clamp(-2.0, 2.0)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def swap_squares(boxes: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``boxes`` (B, 3) with about ``fraction`` of the rows replaced by another row's square, detached.

    Each chosen row takes the square of the row after it in a random cyclic order of the batch, so no
    row gets its own. The replaced squares carry no gradient: whatever a scale learns from them it
    learns from the region's content, not from where the PAN put the square."""
    batch = boxes.shape[0]
    order = torch.randperm(batch, generator=generator).to(boxes.device)
    donor = torch.empty_like(order)
    donor[order] = order.roll(-1)
    chosen = (torch.rand(batch, generator=generator) < fraction).to(boxes.device)
    return torch.where(chosen[:, None], boxes.detach()[donor], boxes)


def compose_boxes(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """Square ``inner`` given in the coordinates of the zoomed square ``outer``, in ``outer``'s parent image."""
    x = outer[:, 0] - outer[:, 2] + inner[:, 0] * 2 * outer[:, 2]
    y = outer[:, 1] - outer[:, 2] + inner[:, 1] * 2 * outer[:, 2]
    return torch.stack([x, y, inner[:, 2] * 2 * outer[:, 2]], dim=1)


def peak_square(feature_map: torch.Tensor, half: float) -> torch.Tensor:
    """Square of half side ``half`` centred on the highest response of ``feature_map`` (B, C, h, w).

    The paper initialises the S1 square "with the highest response value in the last convolutional
    layer"; the response is the channel sum of the map. Returns (x, y, l) in [0, 1] coordinates.
    """
    response = feature_map.sum(dim=1)
    batch, h, w = response.shape
    index = response.flatten(1).argmax(dim=1)
    row = torch.div(index, w, rounding_mode="floor")
    col = index - row * w
    x = (col.to(feature_map.dtype) + 0.5) / w
    y = (row.to(feature_map.dtype) + 0.5) / h
    l = torch.full_like(x, half)
    return torch.stack([x.clamp(half, 1 - half), y.clamp(half, 1 - half), l], dim=1)
