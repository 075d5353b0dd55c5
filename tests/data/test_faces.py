"""Face detection (Haar cascades, mirrored profile pass, merging) and square cropping."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from phanet.data import faces as faces_module
from phanet.data.faces import FaceBox, center_box, crop_face, detect_faces, merge_boxes, overlap


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.mark.slow
def test_detects_the_astronaut_face(astronaut):
    found = detect_faces(astronaut)
    assert len(found) == 1
    face = found[0]
    assert face.source == "frontal" and face.score >= 5
    # her face spans about x 175-270, y 65-160 in the 512 x 512 photo
    assert 160 <= face.x <= 200 and 50 <= face.y <= 90 and 80 <= face.w <= 120 and face.w == face.h


def test_detection_on_a_downscaled_copy_maps_boxes_back(astronaut):
    full = detect_faces(astronaut, max_side=None, profile=False)[0]
    small = detect_faces(astronaut, max_side=256, profile=False)[0]
    assert abs(small.x - full.x) < 12 and abs(small.w - full.w) < 16


def test_no_face_in_a_blank_image():
    assert detect_faces(np.full((120, 160, 3), 127, np.uint8)) == []
    with pytest.raises(ValueError, match="expected an RGB image"):
        detect_faces(np.zeros((10, 10), np.uint8))


def test_profile_pass_on_the_mirror_maps_boxes_back(monkeypatch):
    calls = []

    def fake(gray, kind, min_size, min_neighbors, scale_factor):
        calls.append(kind)
        if kind == "profile" and len(calls) == 3:  # the third pass runs on the mirrored image
            return [(10.0, 20.0, 30.0, 40.0, 7.0)]
        return []

    monkeypatch.setattr(faces_module, "_run_cascade", fake)
    found = detect_faces(np.zeros((100, 200, 3), np.uint8))
    assert calls == ["frontal", "profile", "profile"]
    assert found == [FaceBox(200 - 10 - 30, 20, 30, 40, 7.0, "profile_mirrored")]
    assert detect_faces(np.zeros((100, 200, 3), np.uint8), profile=False) == []


def test_merge_keeps_the_best_of_each_overlapping_group_largest_first():
    frontal = FaceBox(10, 10, 50, 50, 9, "frontal")
    nested = FaceBox(15, 15, 30, 30, 3, "profile")  # inside the frontal box
    shifted = FaceBox(20, 12, 50, 50, 4, "profile_mirrored")  # IoU ~ 0.6 with the frontal box
    other = FaceBox(200, 10, 80, 80, 2, "profile")
    assert merge_boxes([nested, shifted, other, frontal]) == [other, frontal]
    assert overlap(frontal, nested) == 1.0 and overlap(frontal, other) == 0.0


def test_crop_face_is_square_centred_and_padded():
    image = np.full((100, 200, 3), 50, np.uint8)
    image[40:60, 90:110] = 255  # a 20 x 20 "face"
    crop = crop_face(image, (90, 40, 20, 20), margin=0.5, size=None)
    assert crop.shape == (40, 40, 3)
    assert crop[10:30, 10:30].min() == 255 and set(np.unique(crop[:10])) == {50}
    corner = crop_face(image, FaceBox(0, 0, 20, 20), margin=0.5, size=None)  # partly outside: padded black
    assert corner.shape == (40, 40, 3) and corner[:10].max() == 0 and corner[:, :10].max() == 0
    assert set(np.unique(corner[10:, 10:])) == {50}
    resized = crop_face(image, (90, 40, 20, 30), margin=0.2, size=24)
    assert resized.shape == (24, 24, 3) and resized.dtype == np.uint8
    with pytest.raises(ValueError, match="positive size"):
        crop_face(image, (0, 0, 0, 10))


@pytest.mark.slow
def test_center_box_and_face_crop_of_the_astronaut(astronaut):
    assert center_box((100, 200, 3)) == (50.0, 0.0, 100.0, 100.0)
    face = detect_faces(astronaut)[0]
    crop = crop_face(astronaut, face, margin=0.2, size=64)
    assert crop.shape == (64, 64, 3)
    # the crop is centred on the detection: re-detecting on an enlarged crop finds a centred face
    again = detect_faces(crop_face(astronaut, face, margin=0.5, size=200))
    assert again and abs(again[0].x + again[0].w / 2 - 100) < 15
