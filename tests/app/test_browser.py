"""phanet app in a real browser: Debian's Chromium, headless, driven by Playwright.

The app runs as ``phanet app`` in a process of its own, on the tiny trained checkpoint of the
prediction tests. When Chromium or Playwright is missing, or Chromium cannot start, the tests fail
with the command that installs them (``app_helpers.INSTALL``): they are never skipped.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from app_helpers import app_process, chromium, png_bytes, y4m_video
from phanet.cli import main
from predict_helpers import astronaut, astronaut_path, tiny_checkpoint

pytestmark = pytest.mark.slow

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def checkpoint(tiny_manifest, tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory, tiny_manifest)


@pytest.fixture(scope="module")
def app_url(checkpoint):
    with app_process(checkpoint) as (url, _):
        yield url


@pytest.fixture(scope="module")
def predicted(checkpoint, tmp_path_factory) -> pd.Series:
    """``phanet predict`` on the astronaut: the row the page must show."""
    out = tmp_path_factory.mktemp("cli") / "astronaut.csv"
    assert main(["predict", str(astronaut_path()), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 0
    table = pd.read_csv(out, dtype={"pose": str})
    assert len(table) == 1 and table.loc[0, "status"] == "ok"
    return table.iloc[0]


def _bars(panel, kind: str) -> dict[str, float]:
    return {
        bar.get_attribute("data-class"): float(bar.get_attribute("data-value"))
        for bar in panel.query_selector_all(f".bars.{kind} .bar")
    }


def _assert_face_matches(panel, row: pd.Series, expressions: list[str], poses: list[str]) -> None:
    shown = _bars(panel, "expression")
    assert list(shown) == expressions
    for name in expressions:
        assert shown[name] == pytest.approx(row[f"prob_{name}"], abs=1e-6), name
    pose = _bars(panel, "pose")
    assert list(pose) == poses
    for name in poses:
        assert pose[name] == pytest.approx(row[f"pose_prob_{name}"], abs=1e-6), name
    weights = _bars(panel, "weights")
    for name in ("c1", "c2", "c3"):
        assert weights[name] == pytest.approx(row[name], abs=1e-6)
    heading = panel.query_selector("h4").inner_text()
    assert row["expression"] in heading and "yaw" in heading


def test_an_uploaded_photo_shows_its_face_as_phanet_predict_predicts_it(app_url, predicted, tmp_path):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app_url)
        page.wait_for_selector("#model-info dt:has-text('Trained on')", timeout=TIMEOUT_MS)
        info = page.inner_text("#model-info")
        assert "manifest at" in info and "AN, HA, NE, SU" in info and "32 × 32 px" in info and "custom" in info
        expressions = page.evaluate("() => window.fetch('/api/info').then(r => r.json())")
        page.set_input_files("#photos", [str(astronaut_path())])
        page.wait_for_selector("article[data-state='done']", timeout=TIMEOUT_MS)
        card = page.query_selector("article[data-file='astronaut.png']")
        assert "512 × 512 px, 1 face" in card.inner_text()
        faces = card.query_selector_all(".face")
        assert len(faces) == 1
        _assert_face_matches(faces[0], predicted, expressions["expressions"], expressions["poses"])
        # The picture is drawn with the face box and the two squares: green, red and yellow pixels.
        pixels = np.array(
            page.evaluate(
                """() => { const c = document.querySelector("article canvas.picture");
                    return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data); }"""
            ),
            np.uint8,
        ).reshape(512, 512, 4)[:, :, :3]
        for colour in ((40, 220, 80), (230, 40, 40), (250, 220, 0)):
            assert (np.abs(pixels.astype(int) - colour).max(axis=2) < 30).sum() > 100, colour
        with page.expect_download() as download:
            card.query_selector("button.csv").click()
        csv = pd.read_csv(download.value.path(), dtype={"pose": str})
        assert csv.loc[0, "file"] == "astronaut.png"
        pd.testing.assert_series_equal(csv.iloc[0].drop("file"), predicted.drop("file"), check_names=False)
        shot = tmp_path / "app.png"
        page.screenshot(path=str(shot), full_page=True)
    assert cv2.imread(str(shot)).shape[1] == 1280


def test_several_pictures_at_once_each_get_a_card_or_one_line(app_url, tmp_path):
    blank = tmp_path / "blank.png"
    blank.write_bytes(png_bytes(np.full((120, 160, 3), 90, np.uint8)))
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture\n")
    with chromium() as browser:
        page = browser.new_page()
        page.goto(app_url)
        page.set_input_files("#photos", [str(astronaut_path()), str(blank), str(text)])
        page.wait_for_function(
            "() => document.querySelectorAll(\"article[data-state='waiting']\").length === 0 && "
            "document.querySelectorAll('article').length === 3",
            timeout=TIMEOUT_MS,
        )
        assert "No face found." in page.inner_text("article[data-file='blank.png']")
        refused = page.query_selector("article[data-file='notes.jpg']")
        assert refused.get_attribute("data-state") == "failed"
        assert "not a picture in a known format" in refused.inner_text()
        assert page.is_enabled("#download-all")


def test_a_video_shows_the_faces_of_its_frames(app_url, tmp_path):
    video = tmp_path / "clip.webm"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"VP80"), 5, (256, 256))
    frame = np.ascontiguousarray(astronaut()[::2, ::2, ::-1])
    for _ in range(10):
        writer.write(frame)
    writer.release()
    with chromium() as browser:
        page = browser.new_page()
        page.goto(app_url)
        page.set_input_files("#video", [str(video)])
        page.wait_for_selector("article[data-state='done']", timeout=TIMEOUT_MS)
        card = page.query_selector("article[data-file='clip.webm']")
        assert "10 of 10 frames predicted (every 1), 10 faces" in card.inner_text()
        page.wait_for_selector("article .faces .face", timeout=TIMEOUT_MS)  # drawn once the video has loaded


def test_the_webcam_sends_frames_and_shows_their_faces(app_url, tmp_path):
    camera = y4m_video(astronaut(), tmp_path / "camera.y4m")
    fake = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", f"--use-file-for-fake-video-capture={camera}"]
    with chromium(*fake) as browser:
        page = browser.new_page()
        page.goto(app_url)
        page.click("#webcam")
        page.wait_for_function("() => Number(document.querySelector('#live').dataset.frames || 0) >= 2", timeout=TIMEOUT_MS)
        faces = page.query_selector_all("#live-faces .face")
        assert len(faces) == 1 and len(_bars(faces[0], "expression")) == 4
        assert "frames predicted" in page.inner_text("#status")
        page.click("#webcam")
        assert page.is_hidden("#live")
