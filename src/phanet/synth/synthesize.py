"""The pixels of one sample: its head (cached per subject), expression, scene and pose.

Every random choice for an image is drawn from generators seeded with the dataset seed and the
sample's own labels (:meth:`SampleSpec.key`), so an image never depends on which process renders it
or on what was rendered before: the files, the streaming dataset and any number of workers give the
same bytes.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from phanet.synth import expressions as ex
from phanet.synth.head import HeadModel, build_head, mesh_spacing
from phanet.synth.identity import sample_identity
from phanet.synth.presets import EXPRESSION_IDS, SampleSpec
from phanet.synth.render import Render, render_head, sample_scene

#: Pose-independent variation of an expression between takes (fraction of each AU's activation).
TAKE_VARIATION = 0.1


@lru_cache(maxsize=128)
def head_for(seed: int, subject: int, size: int, symmetric: bool = False) -> HeadModel:
    """The mesh of ``subject`` under ``seed``, detailed enough for ``size``-pixel images."""
    ident = sample_identity(seed, subject)
    if symmetric:
        ident = ident.symmetric()
    head = build_head(ident, mesh_spacing(size))
    head.actions = ex.build_action_fields(head)
    return head


def sample_activations(spec: SampleSpec, seed: int) -> ex.Activations:
    """AU activations of a sample: the recipe at its intensity, the subject's style, the take's variation."""
    style = ex.personal_style(np.random.default_rng([int(seed), spec.subject, 0x57]))
    act = ex.activations(spec.expression, spec.intensity, style)
    # The same expression at every yaw of a take (like one 3D scan rendered at several yaws).
    rng = np.random.default_rng([int(seed), spec.subject, EXPRESSION_IDS[spec.expression], spec.intensity, spec.take, 0xE7])
    return {
        au: tuple(a * float(rng.uniform(1 - TAKE_VARIATION, 1 + TAKE_VARIATION)) for a in pair)
        for au, pair in sorted(act.items())
    }


def render_spec(spec: SampleSpec, seed: int, size: int) -> Render:
    """The render of ``spec``: its image (size, size, 3) and its projected landmarks."""
    head = head_for(int(seed), spec.subject, int(size))
    scene = sample_scene(np.random.default_rng(spec.key(seed) + [0x5C]))
    return render_head(head, sample_activations(spec, seed), spec.yaw, spec.pitch, scene, int(size))


def render_sample(spec: SampleSpec, seed: int, size: int) -> np.ndarray:
    """RGB uint8 image (size, size, 3) of ``spec``."""
    return render_spec(spec, seed, size).image
