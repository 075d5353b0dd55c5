"""Prediction on photos, folders and videos: one table row per face.

::

    from phanet import Predictor

    predictor = Predictor.from_checkpoint("runs/demo/phanet/checkpoints/best.ckpt")
    table = predictor.predict(["photo.jpg", "folder/", "clip.mp4"])   # a pandas DataFrame
    table = predictor.predict(frame_from_cv2, color="bgr")             # OpenCV frames are BGR
    table.to_csv("predictions.csv", index=False)

Every face goes through the same steps as the training data: the image is read upright as RGB
(:func:`phanet.data.io.read_image`), faces are found with the detector of ``phanet prepare``
(YuNet, or OpenCV's Haar cascades with ``detector="haar"``: :func:`phanet.data.detectors.find_faces`),
cut out as a square with the same margin (:func:`phanet.data.faces.crop_face`), turned into the
network input by :func:`phanet.data.transforms.preprocess`, and the network's outputs into rows by
:func:`phanet.results.face_rows`, the step ``phanet evaluate`` takes too.

The parts: :mod:`~phanet.predict.sources` (files, folders, videos, arrays), :mod:`~phanet.predict.predictor`
(detection, cropping, batching) and :mod:`~phanet.predict.drawing`; the network runs in a
:class:`~phanet.inference.TrainedModel` (PyTorch or ONNX Runtime, with the model's class lists).

Columns of the table (the same in the DataFrame, the CSV and the JSON; ``prob_<class>`` and
``pose_prob_<class>`` for every class of the model):

==========================  =======================================================================
``file``                    the image or video path; ``<array N>`` / ``<image N>`` for in-memory inputs
``frame``                   frame index in a video (0-based); -1 for a still image
``face``                    index of the face in its image, largest first; -1 on a row without a face
``status``                  ``ok``, ``no_face`` (no face found), ``unreadable`` (not a decodable image,
                            an image declaring more than :data:`phanet.data.io.MAX_PIXELS` pixels, or a
                            video or video frame that cannot be decoded) or ``non_finite`` (the network
                            gave NaN or infinite scores for this face: the model is broken); only
                            ``ok`` rows carry the columns below, ``non_finite`` rows the face box
``face_x, face_y,``         the face box in pixels of the (upright) image: top-left corner, width,
``face_w, face_h``          height; the whole image with ``detect=False``
``face_source``             the detector that found it: ``yunet``, or the cascade (``frontal``,
                            ``profile``, ``profile_mirrored``) with ``detector="haar"``; ``whole_image``
                            with ``detect=False``
``expression``              predicted expression class
``expression_prob``         its probability
``prob_<class>``            probability of every expression class
``pose``                    predicted pose (yaw angle) class
``pose_prob``               its probability
``pose_prob_<class>``       probability of every pose class
``s2_x, s2_y, s2_l``        the attended S2 square (centre, half side) in [0, 1] coordinates of the
                            network input, as ``phanet evaluate`` writes it (NaN for a model without
                            attention, e.g. the baselines)
``s3_x, s3_y, s3_l``        the attended S3 square, likewise
``s2_x0, s2_y0,``           the S2 square in image pixels: left, top, right, bottom
``s2_x1, s2_y1``
``s3_x0 … s3_y1``           the S3 square in image pixels, likewise
``c1, c2, c3``              SAL scale weights (NaN for a scale the model does not use)
``lambda_e, lambda_p``      DCML task weights
==========================  =======================================================================

The pixel squares are mapped from the network input back to the image through the face crop, so
they can be drawn on the original picture (:func:`draw_predictions`). With ``detect=False`` the
whole image is the input (resized to a square as in training), and a square becomes a rectangle
when the image is not square.
"""

from phanet.inference import OnnxBackend, TorchBackend, TrainedModel
from phanet.models.info import ModelInfo
from phanet.predict.drawing import MAX_DRAWING_SIDE, draw_predictions
from phanet.predict.predictor import MARGIN, FrameResult, Predictor, columns
from phanet.predict.sources import VIDEO_SUFFIXES, array_to_rgb
from phanet.results import write_table

__all__ = [
    "MARGIN",
    "MAX_DRAWING_SIDE",
    "VIDEO_SUFFIXES",
    "FrameResult",
    "ModelInfo",
    "OnnxBackend",
    "Predictor",
    "TorchBackend",
    "TrainedModel",
    "array_to_rgb",
    "columns",
    "draw_predictions",
    "write_table",
]
