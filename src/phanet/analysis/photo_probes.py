"""What in a real photograph makes a PhaNet trained on renders misread it: the faces of one label of
:mod:`phanet.analysis.real_photos`, read again after one edit of their crops at a time.

The edits are the photograph in grey, its colour balanced to the renders' (each channel scaled so
that the centre of the crop has the mean colour of the centres of frontal renders), blurred, and one
horizontal band of the crop covered with the crop's mean colour at a time, from the top (the band's
place is a fraction of the crop's height; the crop has ``phanet predict``'s margin around the face).
An edit that turns a scale's reading to the label shows where, or in what, the scale's evidence
against it lies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from phanet.analysis.real_photos import Face, scale_logits

if TYPE_CHECKING:
    from phanet.predict import Predictor

Edit = Callable[[np.ndarray], np.ndarray]

#: What reads each crop: each scale's own classifier, then the network.
PARTS = ("S1", "S2", "S3", "network")

#: The covered bands: (top, bottom) as fractions of the crop's height.
BANDS = tuple((top / 8, top / 8 + 0.25) for top in range(7))


def centre_mean(image: np.ndarray) -> np.ndarray:
    """The mean RGB of the central half (in each direction) of an image."""
    height, width = image.shape[:2]
    return image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4].reshape(-1, 3).mean(axis=0)


def render_colour(subjects: int = 20, seed: int = 0, size: int = 128) -> np.ndarray:
    """The mean :func:`centre_mean` of the built-in renders of ``subjects`` subjects, frontal, every
    expression at its strongest and neutral."""
    from phanet.synth.presets import PRESETS, sample_specs
    from phanet.synth.synthesize import render_sample

    preset = PRESETS["bu3dfe"]
    specs = [
        spec for spec in sample_specs(preset, subjects, seed) if spec.yaw == 0 and spec.intensity in (0, max(preset.intensities))
    ]
    return np.mean([centre_mean(render_sample(spec, seed, size)) for spec in specs], axis=0)


def grey(crop: np.ndarray) -> np.ndarray:
    """The crop's luma in all three channels."""
    return np.repeat(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1)


def balanced(target: np.ndarray) -> Edit:
    """Each channel scaled so that the crop's :func:`centre_mean` is ``target`` (clipped to 0–255)."""

    def edit(crop: np.ndarray) -> np.ndarray:
        gain = target / np.maximum(centre_mean(crop), 1.0)
        return np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)

    return edit


def blurred(sigma: float) -> Edit:
    """A Gaussian blur of ``sigma`` per 128 pixels of the crop."""
    return lambda crop: cv2.GaussianBlur(crop, (0, 0), sigma * crop.shape[0] / 128)


def covered(top: float, bottom: float) -> Edit:
    """The rows from ``top`` to ``bottom`` (fractions of the height) in the crop's mean colour."""

    def edit(crop: np.ndarray) -> np.ndarray:
        out = crop.copy()
        height = crop.shape[0]
        out[int(top * height) : int(bottom * height)] = crop.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        return out

    return edit


def edits(target_colour: np.ndarray) -> dict[str, Edit]:
    """Every edit by name, in the order of the table."""
    named: dict[str, Edit] = {"as photographed": lambda crop: crop, "grey": grey}
    named["colour balanced to the renders"] = balanced(target_colour)
    named["blurred (sigma 1 per 128 px)"] = blurred(1.0)
    named.update({f"band {top:.3f}-{bottom:.3f} covered": covered(top, bottom) for top, bottom in BANDS})
    return named


def probe(
    predictor: Predictor,
    crops: Iterable[tuple[Face, np.ndarray]],
    named_edits: dict[str, Edit],
    label: str = "HA",
    rival: str = "DI",
) -> pd.DataFrame:
    """For each edit, how many of the faces of ``crops`` (as :func:`~phanet.analysis.real_photos.face_crops`
    gives them) labelled ``label`` each scale's classifier (``S1``, ``S2``, ``S3``) and the network read
    as ``label`` and as ``rival``: one row per edit."""
    expressions = predictor.expressions
    labelled = [crop for face, crop in crops if face.label == label]
    columns = [f"{part} {expression}" for part in PARTS for expression in (label, rival)]
    rows = []
    for name, edit in named_edits.items():
        counts = dict.fromkeys(columns, 0)
        for crop in labelled:
            scales, network = scale_logits(predictor, edit(crop))
            for part, logits in zip(PARTS, [*scales, network]):
                if logits is not None:
                    read = expressions[int(logits.argmax())]
                    if read in (label, rival):
                        counts[f"{part} {read}"] += 1
        rows.append({"edit": name, "faces": len(labelled), **counts})
    return pd.DataFrame(rows)
