"""The built-in multi-view facial-expression dataset, rendered from procedural 3D heads.

Like BU-3DFE's multi-view images (3D scans rendered at pan angles), every image is a 3D head rendered
at a known yaw and pitch, so pose labels are exact. Heads are generated from a seed
(:mod:`~phanet.synth.identity`, :mod:`~phanet.synth.head`), expressions are FACS action-unit
combinations at four intensities (:mod:`~phanet.synth.expressions`), and a z-buffer rasteriser
draws them under random light, background and crop jitter (:mod:`~phanet.synth.render`).

Use it three ways:

- ``phanet synth --preset bu3dfe --out DIR`` writes PNGs, ``manifest.csv``, ``synth.json`` and a card;
- ``load_dataset("synth", DIR)`` reads such a folder, ``load_dataset("synth", None, preset=...)``
  streams the same images without writing them;
- ``SynthDataset(preset=..., subjects=..., size=...)`` is a ``FaceDataset`` (a ``torch.utils.data.Dataset``)
  serving the same items as every dataset.

Every image also knows where the eyes, brows, nose tip and mouth are in it (the ``lm_*`` columns of
``manifest.csv``; :func:`~phanet.synth.landmarks.landmark_table` for any of the three), the
ground truth for the regions the attention squares pick (:mod:`phanet.reports.coverage`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from phanet.data.records import LabeledFaces
from phanet.data.registry import register_dataset
from phanet.synth.dataset import SynthFaces, folder_faces, resolve_settings, streaming_faces
from phanet.synth.presets import PRESETS, Preset, SampleSpec

__all__ = ["PRESETS", "Preset", "SampleSpec", "SynthDataset", "SynthFaces", "load_synth"]


@register_dataset("synth", "built-in rendered multi-view faces: streamed (no root) or a `phanet synth` folder")
def load_synth(
    root: str | None,
    preset: str | None = None,
    subjects: int | None = None,
    size: int | None = None,
    seed: int | None = None,
    poses: Sequence[float] | None = None,
    yaw_range: Sequence[float] | None = None,
    pitch_range: Sequence[float] | None = None,
) -> LabeledFaces:
    """The synthetic dataset.

    With ``root`` a folder written by ``phanet synth``, its files (options, when given, must match how
    it was generated). With ``root`` None, a :class:`SynthFaces` that renders each image when it is
    loaded: ``preset`` (default ``bu3dfe``; see :data:`PRESETS`), the first ``subjects`` subjects
    (default: the preset's count), ``size`` pixels (default 112), ``seed`` (default 0), and for the
    continuous presets the pose classes ``poses`` (angles; default the preset's pans) and ``yaw_range`` (MIN, MAX
    degrees within [-90, 90]); ``pitch_range`` (within [-30, 30]) for any preset.
    """
    if root:
        return folder_faces(Path(root), preset=preset, subjects=subjects, size=size, seed=seed, poses=poses,
                            yaw_range=yaw_range, pitch_range=pitch_range)
    return streaming_faces(resolve_settings(preset, subjects, size, seed, poses, yaw_range, pitch_range))


def __getattr__(name: str):
    if name == "SynthDataset":
        from phanet.synth.torchdata import SynthDataset

        return SynthDataset
    raise AttributeError(f"module 'phanet.synth' has no attribute {name!r}")
