"""phanet.analysis.photo_probes: each edit of a crop, checked by hand, and the probe table on the
astronaut with an untrained network, whose unedited row is what ``scale_readings`` reads."""

from __future__ import annotations

import numpy as np
import pytest

from phanet.analysis import photo_probes, real_photos
from predict_helpers import astronaut_path, isolated_threads, untrained_checkpoint  # noqa: F401


def _crop(height: int = 64, width: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 160, size=(height, width, 3), dtype=np.uint8)


def test_centre_mean_is_the_mean_of_the_central_half():
    image = np.zeros((8, 8, 3), np.uint8)
    image[2:6, 2:6] = (10, 20, 30)
    assert photo_probes.centre_mean(image).tolist() == [10, 20, 30]


def test_grey_has_equal_channels_of_the_luma():
    crop = _crop()
    out = photo_probes.grey(crop)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    luma = crop.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(out[..., 0] - luma).max() <= 1.0


def test_balance_gives_the_centre_the_target_colour():
    target = np.array([180.0, 150.0, 140.0])
    out = photo_probes.balanced(target)(_crop())
    np.testing.assert_allclose(photo_probes.centre_mean(out), target, atol=1.0)


def test_a_covered_band_holds_the_crop_mean_and_nothing_else_changes():
    crop = _crop()
    out = photo_probes.covered(0.25, 0.5)(crop)
    assert (out[16:32] == crop.reshape(-1, 3).mean(axis=0).astype(np.uint8)).all()
    assert (out[:16] == crop[:16]).all() and (out[32:] == crop[32:]).all()
    assert photo_probes.BANDS[0] == (0.0, 0.25) and photo_probes.BANDS[-1] == (0.75, 1.0) and len(photo_probes.BANDS) == 7


def test_blur_keeps_the_mean_and_lowers_the_spread():
    crop = _crop(128, 128)  # sigma 1 pixel
    out = photo_probes.blurred(1.0)(crop)
    assert out.shape == crop.shape and out.std() < crop.std() / 2
    assert abs(out.mean() - crop.mean()) < 2


@pytest.mark.usefixtures("isolated_threads")
def test_probe_counts_on_the_astronaut(tmp_path, monkeypatch):
    from phanet.predict import Predictor

    photos = real_photos.Photos()
    photos.images[real_photos.FACES[0].photo] = np.asarray(__import__("PIL.Image").Image.open(astronaut_path()).convert("RGB"))
    faces = real_photos.FACES[:1]
    predictor = Predictor.load(untrained_checkpoint(tmp_path / "untrained.ckpt"))
    named = photo_probes.edits(np.array([180.0, 150.0, 140.0]))
    assert list(named)[:3] == ["as photographed", "grey", "colour balanced to the renders"] and len(named) == 11
    crops = list(real_photos.face_crops(predictor, photos, faces))
    assert [face for face, _ in crops] == list(faces)
    table = photo_probes.probe(predictor, crops, named, label="HA", rival="DI")
    assert table["edit"].tolist() == list(named) and (table["faces"] == 1).all()
    counts = table.drop(columns=["edit", "faces"])
    assert ((counts == 0) | (counts == 1)).all().all()
    for part in ("S1", "S2", "S3", "network"):
        assert (table[f"{part} HA"] + table[f"{part} DI"] <= 1).all()
    # the unedited row is what scale_readings reads on the same face
    reading = real_photos.scale_readings(predictor, crops).iloc[0]
    first = table.iloc[0]
    for part, column in (("S1", "S1"), ("S2", "S2"), ("S3", "S3"), ("network", "expression")):
        for name in ("HA", "DI"):
            assert first[f"{part} {name}"] == int(reading[column] == name)
