"""Uploads of odd but valid pictures are read as phanet predict reads files (a float TIFF from 0 to 1,
CMYK, hundreds of pages), and names that are not plain text are shown cleaned, never as paths."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from phanet.app import Limits, PredictionService
from phanet.app.server import create_app
from phanet.predict import Predictor
from predict_helpers import isolated_threads, untrained_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    checkpoint = untrained_checkpoint(tmp_path_factory.mktemp("app") / "untrained.ckpt")
    service = PredictionService(Predictor.load(checkpoint, detect=False), Limits())
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client
    service.close()


def _encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _probabilities(answer: dict) -> list[float]:
    (row,) = answer["rows"]
    return [row[key] for key in sorted(row) if key.startswith("prob_")]


def test_a_float_tiff_upload_is_read_from_0_to_1_like_the_same_picture_in_8_bits(client):
    ramp = np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)
    as_float = client.post("/api/predict?name=ramp.tif", content=_encoded(Image.fromarray(ramp, mode="F"), "TIFF")).json()
    eight_bits = Image.fromarray(np.round(ramp * 255).astype(np.uint8))
    as_png = client.post("/api/predict?name=ramp.png", content=_encoded(eight_bits, "PNG")).json()
    assert _probabilities(as_float) == pytest.approx(_probabilities(as_png), abs=1e-6)


def test_cmyk_and_many_paged_uploads_are_pictures(client):
    pages = [Image.new("L", (32, 32), i % 250) for i in range(300)]
    for name, body in (
        ("cmyk.jpg", _encoded(Image.new("CMYK", (40, 30), (0, 50, 100, 0)), "JPEG")),
        ("pages.tif", _encoded(pages[0], "TIFF", save_all=True, append_images=pages[1:])),
    ):
        answer = client.post(f"/api/predict?name={name}", content=body)
        assert answer.status_code == 200 and [row["status"] for row in answer.json()["rows"]] == ["ok"]


@pytest.mark.parametrize(
    "name, shown", [("..%2F..%2Fetc%2Fpasswd", "passwd"), ("a%0Ab%00c.png", "abc.png"), ("%2Ftmp%2Fx.png", "x.png")]
)
def test_upload_names_are_shown_as_a_plain_file_name(client, name, shown):
    body = _encoded(Image.new("RGB", (32, 32), (120, 80, 60)), "PNG")
    answer = client.post(f"/api/predict?name={name}", content=body).json()
    assert answer["file"] == shown and all(Path(row["file"]).name == row["file"] for row in answer["rows"])
