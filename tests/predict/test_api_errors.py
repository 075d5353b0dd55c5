"""The Python API refuses what it cannot use with a PhanetError naming the parameter, never an error
from inside the package (TypeError, cv2.error, AssertionError, RuntimeError); and drawings keep the
labels of neighbouring faces apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phanet.data.classes import expression_legend, expression_word
from phanet.errors import PhanetError
from phanet.inference import TrainedModel
from phanet.models import create_model
from phanet.predict import Predictor, draw_predictions
from predict_helpers import isolated_threads, untrained_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("untrained") / "tiny.ckpt")


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Predictor:
    return Predictor.from_checkpoint(checkpoint, detect=False)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (None, "inputs: expected a path, an image array, a PIL image, or a list of these, got None"),
        (42, "inputs: expected a path, an image array, a PIL image, or a list of these, got int 42"),
        ({"a": 1}, "inputs: expected a path, an image array, a PIL image, or a list of these, got dict {'a': 1}"),
        ([None], "inputs: expected a path, an image array, a PIL image, or a list of these, got None"),
        ([], "inputs: nothing to predict"),
        ("", "inputs: an empty path; give a file or folder name (. for this folder)"),
        (Image.new("RGB", (0, 0)), "inputs: a PIL image of 0×0 pixels, an empty image"),
        (Image.new("RGB", (5, 0)), "inputs: a PIL image of 5×0 pixels, an empty image"),
        (np.zeros((0, 4, 3), np.uint8), "image array: expected (H, W), (H, W, 3) or (H, W, 4), got shape (0, 4, 3)"),
    ],
)
def test_predict_names_the_parameter_it_cannot_use(predictor, inputs, message):
    with pytest.raises(PhanetError) as raised:
        predictor.predict(inputs)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "device, message",
    [
        ("tpu", "device: 'tpu' is not a device (expected cpu, cuda, cuda:N or mps)"),
        ("cuda:99", "device: cuda:99 is not available on this machine (available: cpu"),
        (3.5, "device: expected a device name such as cpu or cuda:0, got 3.5"),
    ],
)
def test_an_unusable_device_is_refused_before_the_checkpoint_is_read(checkpoint, device, message):
    with pytest.raises(PhanetError) as raised:
        Predictor.from_checkpoint(checkpoint, device=device)
    assert str(raised.value).startswith(message)
    with pytest.raises(PhanetError) as raised:
        TrainedModel.from_network(create_model("hog_fc", image_size=32), device=device)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    "path, message",
    [
        (None, "path: expected the path of a file, got None"),
        (42, "path: expected the path of a file, got int 42"),
        ("", "path: expected the path of a file, got an empty path"),
    ],
)
@pytest.mark.parametrize("load", [Predictor.from_checkpoint, Predictor.from_onnx, Predictor.load])
def test_a_model_path_that_is_not_a_path_is_named(load, path, message):
    with pytest.raises(PhanetError) as raised:
        load(path)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": "8"}, "batch_size: expected a whole number of 1 or more, got '8'"),
        ({"batch_size": 2.5}, "batch_size: expected a whole number of 1 or more, got 2.5"),
        ({"margin": None}, "margin: expected a fraction of the face's size, got None"),
    ],
)
def test_predictor_settings_of_the_wrong_type_are_named(predictor, kwargs, message):
    with pytest.raises(PhanetError) as raised:
        Predictor(predictor.model, **kwargs)
    assert str(raised.value) == message
    with pytest.raises(PhanetError, match="every_nth_frame: expected a whole number of 1 or more, got None"):
        predictor.predict(np.zeros((8, 8, 3), np.uint8), every_nth_frame=None)


def _row(**values) -> dict:
    row = {"status": "ok", "face_x": 10, "face_y": 40, "face_w": 60, "face_h": 60, "expression": "AN", "expression_prob": 0.8}
    return {**row, "pose": "0", **values}


@pytest.mark.parametrize(
    "rows, message",
    [
        (None, "rows: expected a list of prediction rows (mappings), got NoneType"),
        (42, "rows: expected a list of prediction rows (mappings), got int"),
        ([_row(), "AN"], "rows: row 1 is a str, not a mapping of columns"),
        ([{"status": "ok"}], "rows: row 0 cannot be drawn (no 'face_x')"),
        ([_row(face_x="left")], "rows: row 0 cannot be drawn (could not convert string to float: 'left')"),
        ([_row(face_w=float("nan"))], "rows: row 0 cannot be drawn (cannot convert float NaN to integer)"),
        (
            [_row(expression_prob=None)],
            "rows: row 0 cannot be drawn (float() argument must be a string or a real number, not 'Non…)",
        ),
    ],
)
def test_drawing_names_the_row_it_cannot_draw(rows, message):
    with pytest.raises(PhanetError) as raised:
        draw_predictions(np.zeros((120, 160, 3), np.uint8), rows)
    assert str(raised.value) == message


def test_drawing_names_an_image_it_cannot_draw_on():
    with pytest.raises(PhanetError, match=r"^image: expected an RGB image array, got list$"):
        draw_predictions([[0]], [])
    with pytest.raises(
        PhanetError, match=r"^image: expected an RGB uint8 array of \(H, W, 3\), got float32 of shape \(4, 4, 3\)$"
    ):
        draw_predictions(np.zeros((4, 4, 3), np.float32), [])
    assert draw_predictions(np.zeros((300, 300), np.uint8), []).shape == (300, 300, 3)  # grey is drawn as RGB


def test_labels_of_faces_side_by_side_do_not_overlap(monkeypatch):
    import cv2

    backgrounds = []
    rectangle = cv2.rectangle

    def recorded(canvas, p0, p1, colour, thickness, *args):
        if thickness < 0:  # a filled rectangle: a label's background
            backgrounds.append((p0[0], p0[1], p1[0], p1[1]))
        return rectangle(canvas, p0, p1, colour, thickness, *args)

    monkeypatch.setattr(cv2, "rectangle", recorded)
    image = np.full((400, 600, 3), 255, np.uint8)
    rows = [_row(face_x=20 + 70 * i, face_y=150, face_w=60, face_h=60, expression="SU", expression_prob=0.5) for i in range(7)]
    draw_predictions(image, rows)
    assert len(backgrounds) == 7
    for i, (x0, y0, x1, y1) in enumerate(backgrounds):
        assert x0 >= 0 and x1 <= 600 and y0 >= 0 and y1 <= 400
        for a0, b0, a1, b1 in backgrounds[i + 1 :]:
            assert x1 <= a0 or a1 <= x0 or y1 <= b0 or b1 <= y0, (backgrounds[i], (a0, b0, a1, b1))


def test_expression_codes_are_spelled_out():
    assert [expression_word(code) for code in ("AN", "ne", "SM", "Anger", "XY")] == ["anger", "neutral", "smile", "Anger", "XY"]
    assert expression_legend(["AN", "HA", "smile"]) == "AN anger, HA happiness"
    canvas = draw_predictions(np.full((300, 300, 3), 255, np.uint8), [_row(expression="AN")])
    assert canvas.shape == (300, 300, 3)


def test_an_image_array_of_more_pixels_than_a_file_may_declare_is_refused_before_it_is_copied(predictor):
    """A view of 30 gigapixels costs one byte (its strides are 0): reading it as a picture would take 28 GiB."""
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (100_000, 100_000, 3), (0, 0, 0))
    with pytest.raises(PhanetError) as raised:
        predictor.predict(huge)
    assert str(raised.value) == "image array: 100000×100000 pixels, more than the 64 MP limit of a picture"
