"""The built-in multi-view facial-expression renderer: procedural 3D heads, drawn at exact poses.

Like BU-3DFE's multi-view images (3D scans rendered at several yaw angles), every image is a 3D head rendered
at a known yaw and pitch, so pose labels are exact. Heads are generated from a seed
(:mod:`~phanet.synth.identity`, :mod:`~phanet.synth.head`), expressions are FACS action-unit
combinations at four intensities (:mod:`~phanet.synth.expressions`), and a z-buffer rasteriser
(:mod:`~phanet.synth.raster`) draws them under random light, background and crop jitter
(:mod:`~phanet.synth.render`). A preset (:mod:`~phanet.synth.presets`) fixes the class lists and
the poses; :func:`~phanet.synth.synthesize.render_sample` gives the pixels of one of its samples,
which depend only on the settings and the sample.

Every image also knows where the eyes, brows, nose tip and mouth are in it
(:mod:`~phanet.synth.landmarks`). :func:`~phanet.synth.generate.generate` writes a folder (PNGs,
``manifest.csv`` with the landmark columns, ``synth.json`` and a card) and
:mod:`~phanet.synth.preview` contact sheets; ``phanet synth`` runs both.

The renderer needs NumPy and OpenCV, not torch; writing a folder takes the common manifest format
from :mod:`phanet.data.records`. The dataset built on it, streamed or read from such a folder, is
the ``synth`` adapter (:mod:`phanet.data.adapters.synth`, ``load_dataset("synth", ...)``) and, as a
``torch.utils.data.Dataset``, :class:`~phanet.data.datasets.SynthDataset`.
"""

from __future__ import annotations

from phanet.synth.presets import PRESETS, Preset, SampleSpec, sample_specs
from phanet.synth.settings import SynthSettings, resolve_settings

__all__ = ["PRESETS", "Preset", "SampleSpec", "SynthSettings", "resolve_settings", "sample_specs"]
