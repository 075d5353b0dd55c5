"""The built-in dataset as a plain ``torch.utils.data.Dataset``, rendered on the fly."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from phanet.data.records import LabeledFaces
from phanet.data.synth.dataset import resolve_settings, streaming_faces


class SynthDataset(Dataset):
    """Rendered faces as ``(image, expression, pose)`` items.

    ``image`` is a float tensor (3, size, size) in [0, 1], or ``transform(rgb_uint8_hwc)`` when a
    ``transform`` is given; ``expression`` and ``pose`` are class indices into ``faces.expressions`` and
    ``faces.poses``. ``faces`` is the underlying :class:`~phanet.data.synth.dataset.SynthFaces`
    (class lists, subjects, exact yaw and pitch); pass your own (e.g. a subset) to wrap it instead.
    Items are the same pixels ``phanet synth`` writes for the same preset, seed and size::

        data = SynthDataset(preset="bu3dfe", subjects=20, size=64)
        image, expression, pose = data[0]
    """

    def __init__(self, preset: str = "bu3dfe", subjects: int | None = None, size: int = 112, seed: int = 0,
                 bins: Sequence[float] | None = None, yaw_range: Sequence[float] | None = None,
                 pitch_range: Sequence[float] | None = None, transform: Callable[[np.ndarray], Any] | None = None,
                 faces: LabeledFaces | None = None):
        if faces is None:
            faces = streaming_faces(resolve_settings(preset, subjects, size, seed, bins, yaw_range, pitch_range))
        self.faces = faces
        self.transform = transform

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        image = self.faces.load_image(index)
        sample = self.faces.samples[index]
        if self.transform is not None:
            return self.transform(image), sample.expression, sample.pose
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
        return tensor, sample.expression, sample.pose
