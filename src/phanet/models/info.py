"""What a network is for, apart from its weights: the one record that loading, prediction and export read.

This module is a leaf (it imports neither torch nor the rest of the package), so the configuration,
the ONNX export and the predictors can all share it. Every network of :mod:`phanet.models` carries a
:class:`ModelInfo` as its ``info`` attribute, the way a timm model carries its ``pretrained_cfg``: the
class lists in the order of its outputs, the side of the images it takes and how they are scaled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Scales of Table VI: no attention on the whole image (N_S1) and hierarchical attention at S2, S3.
SCALE_NAMES = ("N_S1", "H_S2", "H_S3")

#: The paper's BU-3DFE classes, the default of every network: the six basic expressions and neutral,
#: and the nine yaw angles (degrees) it renders the scans at.
PAPER_EXPRESSIONS = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")
PAPER_POSES = ("-90", "-60", "-45", "-30", "0", "30", "45", "60", "90")

#: Network input scaling: ``(value / 255 - MEAN) / STD`` for every RGB channel, so inputs lie in [-1, 1].
MEAN = 0.5
STD = 0.5

#: The network input's name in an exported graph, and the outputs that prediction reads, in order
#: (fields of :class:`~phanet.models.output.PhaNetOutput`).
INPUT_NAME = "images"
OUTPUT_NAMES = ("expression_logits", "pose_logits", "boxes", "scale_weights", "task_weights")


@dataclass
class ModelInfo:
    """What a user of a network needs to know besides its weights.

    Attributes:
        expressions: expression class names, in the order of the expression logits.
        poses: pose (yaw) class names, in the order of the pose logits; empty for a network without pose.
        input_size: side in pixels of the square RGB images the network takes.
        arch: the architecture family (``phanet``, ``densenet``, ``vgg19``, ``hog_fc``).
        mean, std: the input scaling, ``(value / 255 - mean) / std``.
        trained_on: what the network was trained on, in words ('' when unknown).
    """

    expressions: list[str]
    poses: list[str]
    input_size: int
    arch: str = "phanet"
    mean: float = MEAN
    std: float = STD
    trained_on: str = field(default="")

    @property
    def input_description(self) -> str:
        """The input as an exported file documents it."""
        return (
            f"{INPUT_NAME}: float32 (batch, 3, {self.input_size}, {self.input_size}), RGB face crops resized to "
            f"{self.input_size} x {self.input_size}, scaled as (value / 255 - {self.mean:g}) / {self.std:g}"
        )
