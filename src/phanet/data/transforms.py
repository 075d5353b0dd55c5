"""Image preprocessing shared by training, evaluation and prediction.

``preprocess`` is the one path from an RGB uint8 face crop to the network's input tensor; the
training augmentation works on the array before it. A horizontal flip mirrors the head pose, so the
pose label is mirrored with the image (yaw +θ becomes −θ).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from phanet.errors import PhanetError

MEAN = 0.5
STD = 0.5


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` × ``size`` (area averaging when shrinking)."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    interpolation = cv2.INTER_AREA if min(height, width) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) → float (3, H, W) normalised to [-1, 1]."""
    tensor = torch.from_numpy(np.require(image, dtype=np.uint8, requirements=["C", "W"])).permute(2, 0, 1)
    tensor = tensor.float().div_(255.0)
    return tensor.sub_(MEAN).div_(STD)


def preprocess(image: np.ndarray, size: int) -> torch.Tensor:
    """The network input for one RGB uint8 face crop."""
    return to_tensor(resize_square(image, size))


def jitter(image: np.ndarray, amount: float, draws: tuple[float, float, float]) -> np.ndarray:
    """Scale by 1 ± amount and shift by ± amount of the side, from three uniform draws in [0, 1)."""
    if amount <= 0:
        return image
    height, width = image.shape[:2]
    scale = 1.0 + amount * (2 * draws[0] - 1)
    dx, dy = amount * (2 * draws[1] - 1) * width, amount * (2 * draws[2] - 1) * height
    matrix = np.array([[scale, 0, (1 - scale) * width / 2 + dx], [0, scale, (1 - scale) * height / 2 + dy]])
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


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
            "symmetric pan angles; set data.flip: false"
        )
    return mirror
