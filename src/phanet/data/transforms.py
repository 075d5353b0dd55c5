"""Image preprocessing shared by training, evaluation and prediction.

``to_network_input`` is the one path from RGB uint8 face crops to the network's input tensor: data
loaders hand uint8 batches to the device, where they are normalised and, for training, augmented
per batch (:func:`augment`). ``preprocess`` applies it to one image. A horizontal flip mirrors the
head pose, so the pose label is mirrored with the image (yaw +θ becomes −θ).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from phanet.data.records import MISSING
from phanet.errors import PhanetError
from phanet.models.info import MEAN, STD


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` × ``size`` (area averaging when shrinking)."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    interpolation = cv2.INTER_AREA if min(height, width) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def to_network_input(pixels: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """RGB uint8 (B, H, W, 3) → float (B, 3, H, W) normalised to [-1, 1], on the device ``pixels`` are on.

    The result keeps the (B, H, W, 3) memory layout, i.e. it is ``channels_last``; with
    ``channels_last=False`` it is made contiguous in the usual (B, 3, H, W) layout.
    """
    images = pixels.permute(0, 3, 1, 2).float().div_(255.0).sub_(MEAN).div_(STD)
    return images if channels_last else images.contiguous()


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) → float (3, H, W) normalised to [-1, 1]."""
    pixels = torch.from_numpy(np.require(image, dtype=np.uint8, requirements=["C", "W"]))
    return to_network_input(pixels[None])[0]


def preprocess(image: np.ndarray, size: int) -> torch.Tensor:
    """The network input for one RGB uint8 face crop."""
    return to_tensor(resize_square(image, size))


def augment(
    images: torch.Tensor, pose: torch.Tensor, jitter: float = 0.0, mirror: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The training augmentation of a batch on its device, with one ``affine_grid`` / ``grid_sample``.

    Each image is scaled by 1 ± ``jitter`` about its centre and shifted by ± ``jitter`` of its side
    (uniform draws; borders replicated), then, when ``mirror`` is given, flipped horizontally with
    probability 1/2. A flip turns yaw +θ into −θ, so the pose label of a flipped image becomes
    ``mirror[pose]`` (labels ``MISSING`` stay missing). Draws come from torch's generator of the
    device (seeded by ``seed_everything``). Returns the new images and pose labels.
    """
    batch = images.shape[0]
    if batch == 0 or (jitter <= 0 and mirror is None):
        return images, pose
    draws = torch.rand(batch, 4, device=images.device, dtype=torch.float32)
    scale = 1.0 + jitter * (2 * draws[:, 0] - 1)
    shift_x, shift_y = 2 * jitter * (2 * draws[:, 1] - 1), 2 * jitter * (2 * draws[:, 2] - 1)
    flip = draws[:, 3] < 0.5 if mirror is not None else torch.zeros(batch, dtype=torch.bool, device=images.device)
    sign = 1.0 - 2.0 * flip.float()
    # Output pixel u (in [-1, 1]) shows input (sign·u − shift) / scale: jitter, then mirror.
    zero = torch.zeros_like(scale)
    theta = torch.stack(
        [torch.stack([sign / scale, zero, -shift_x / scale], dim=1), torch.stack([zero, 1 / scale, -shift_y / scale], dim=1)],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    if images.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    if mirror is not None and mirror.numel():
        mirrored = mirror.to(pose.device)[pose.clamp(min=0)]
        pose = torch.where(flip & (pose != MISSING), mirrored, pose)
    return out.to(images.dtype), pose


def recolour(images: torch.Tensor, strength: float) -> torch.Tensor:
    """A photograph's variations of exposure and colour, drawn for each image of a normalised batch.

    Each image's contrast (about its own mean), saturation (towards its own grey) and brightness are
    scaled by factors in 1 ± ``strength``, and each channel by 1 ± ``strength``/2 (white balance), in
    that order, on the [0, 1] pixel scale; the result is clipped to it. Draws come from torch's
    generator of the device. ``strength`` 0 returns ``images`` without drawing.
    """
    if strength <= 0 or images.shape[0] == 0:
        return images
    batch = images.shape[0]
    draws = torch.rand(batch, 6, device=images.device, dtype=torch.float32).mul_(2).sub_(1)
    contrast, saturation, brightness = (1 + strength * draws[:, i].view(batch, 1, 1, 1) for i in range(3))
    balance = (1 + strength / 2 * draws[:, 3:]).view(batch, 3, 1, 1)
    pixels = images.float() * STD + MEAN
    level = pixels.mean(dim=(1, 2, 3), keepdim=True)
    pixels = (pixels - level) * contrast + level
    grey = pixels.mean(dim=1, keepdim=True)
    pixels = (grey + (pixels - grey) * saturation) * brightness * balance
    out = (pixels.clamp_(0, 1) - MEAN) / STD
    if images.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out.to(images.dtype)


def mirror_pose_map(poses: list[str]) -> list[int] | None:
    """Index of the mirrored pose class for every pose class, or None if the list is not symmetric."""
    if not poses:
        return []
    try:
        angles = [float(p) for p in poses]
    except ValueError:
        return None
    mirrored = []
    for angle in angles:
        matches = [j for j, other in enumerate(angles) if math.isclose(other, -angle, abs_tol=1e-6)]
        if not matches:
            return None
        mirrored.append(matches[0])
    return mirrored


def check_flip(poses: list[str]) -> list[int]:
    """The mirror map for ``data.flip``, or a one-line error when the pose classes are not mirror-symmetric."""
    mirror = mirror_pose_map(poses)
    if mirror is None:
        raise PhanetError(
            f"data.flip: a horizontal flip turns yaw +θ into −θ, but the pose classes {poses} are not "
            "symmetric yaw angles; set data.flip: false"
        )
    return mirror
