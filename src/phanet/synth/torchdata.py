"""The built-in dataset as a ``torch.utils.data.Dataset``, rendered on the fly."""

from __future__ import annotations

from typing import Sequence

from phanet.data.datasets import FaceDataset
from phanet.data.records import LabeledFaces
from phanet.synth.dataset import resolve_settings, streaming_faces


class SynthDataset(FaceDataset):
    """Rendered faces, as every dataset serves them: a :class:`~phanet.data.datasets.FaceDataset`.

    An item is a dict: ``pixels`` uint8 (size, size, 3) RGB, ``expression`` and ``pose`` (class indices
    into ``faces.expressions`` and ``faces.poses``) and ``index``; batches (``__getitems__``, what a
    ``DataLoader`` with :func:`~phanet.data.datasets.collate` fetches) add the batch dimension.
    :func:`~phanet.data.transforms.to_network_input` turns ``pixels`` into what the networks take.
    ``faces`` is the underlying :class:`~phanet.synth.dataset.SynthFaces` (class lists, subjects,
    exact yaw and pitch); pass your own (e.g. a subset) to wrap it instead. Items are the same pixels
    ``phanet synth`` writes for the same preset, seed and size::

        data = SynthDataset(preset="bu3dfe", subjects=20, size=64)
        item = data[0]            # item["pixels"], item["expression"], item["pose"]
    """

    def __init__(self, preset: str = "bu3dfe", subjects: int | None = None, size: int = 112, seed: int = 0,
                 poses: Sequence[float] | None = None, yaw_range: Sequence[float] | None = None,
                 pitch_range: Sequence[float] | None = None, faces: LabeledFaces | None = None):
        if faces is None:
            faces = streaming_faces(resolve_settings(preset, subjects, size, seed, poses, yaw_range, pitch_range))
        super().__init__(faces, getattr(faces, "size", size))
