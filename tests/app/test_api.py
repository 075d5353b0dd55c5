"""phanet app's HTTP API: the rows of phanet predict, refusals with one line, the bounded queue, the served files."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from app_helpers import app_process, avi_video, peak_rss_mb, png_bytes, png_header, served
from phanet.app import Limits, PredictionService, checkpoint_path
from phanet.app.server import create_app
from phanet.cli import main
from phanet.errors import PhanetError
from phanet.predict import Predictor
from predict_helpers import astronaut, astronaut_path, isolated_threads, untrained_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("app") / "untrained.ckpt")


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Predictor:
    return Predictor.load(checkpoint)


@pytest.fixture
def service(predictor):
    service = PredictionService(predictor, Limits(max_bytes=2_000_000, max_pixels=4_000_000, max_side=4000, queue=4))
    yield service
    service.close()


@pytest.fixture
def client(service):
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield client


def _refused(response, status: int, pattern: str) -> None:
    assert response.status_code == status, response.text
    reason = response.json()["error"]
    assert "\n" not in reason and "Traceback" not in reason
    assert pattern in reason, reason


def test_info_gives_the_model_detector_limits_and_the_columns_of_predict(client, predictor):
    info = client.get("/api/info").json()
    assert info["expressions"] == predictor.expressions and info["poses"] == predictor.poses
    assert info["input_size"] == predictor.info.input_size and info["trained_on"] == predictor.info.trained_on
    assert info["preset"] == "custom" and info["detector"] == "yunet" and info["columns"] == predictor.columns
    assert info["limits"]["queue"] == 4 and info["limits"]["max_bytes"] == 2_000_000


def _predict_cli(checkpoint: Path, out: Path) -> None:
    assert main(["predict", str(astronaut_path()), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]) == 0


def test_a_photo_gives_the_rows_and_the_csv_of_phanet_predict(client, checkpoint, tmp_path):
    answer = client.post("/api/predict?name=folder/astronaut.png", content=astronaut_path().read_bytes()).json()
    _predict_cli(checkpoint, tmp_path / "p.csv")
    _predict_cli(checkpoint, tmp_path / "p.json")
    expected = pd.read_csv(tmp_path / "p.csv")
    got = pd.read_csv(io.StringIO(answer["csv"]))
    assert (got["file"] == "astronaut.png").all() and answer["file"] == "astronaut.png"  # the name shown, never a path
    pd.testing.assert_frame_equal(got.drop(columns="file"), expected.drop(columns="file"))
    rows = json.loads((tmp_path / "p.json").read_text())  # 10 decimals, as pandas writes JSON
    assert len(rows) == len(answer["rows"]) == 1
    for column, value in {**rows[0], "file": "astronaut.png"}.items():
        shown = answer["rows"][0][column]
        assert shown == pytest.approx(value, abs=1e-9) if isinstance(value, float) else shown == value, column
    assert answer["rows"][0]["status"] == "ok" and answer["rows"][0]["face_source"] == "yunet"
    assert (answer["width"], answer["height"]) == (512, 512)


def test_a_picture_without_a_face_gives_a_no_face_row(client):
    answer = client.post("/api/predict", content=png_bytes(np.full((120, 160, 3), 90, np.uint8))).json()
    assert [(r["file"], r["status"], r["face"]) for r in answer["rows"]] == [("picture", "no_face", -1)]
    assert answer["rows"][0]["expression"] is None  # NaN is null, as in predict's JSON


@pytest.mark.parametrize(
    ("body", "status", "pattern"),
    [
        (b"", 400, "empty upload"),
        (b"this is not a picture\n", 415, "not a picture in a known format"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", 415, "not a picture in a known format"),
        (png_header(30000, 30000), 413, "the picture declares 900 MP; the limit is 4 MP"),
        (png_header(3000, 3000), 413, "the picture declares 3000×3000 pixels (9 MP); the limit is 4 MP"),
        (png_bytes(np.zeros((1, 60000, 3), np.uint8)), 413, "60000×1 pixels; its longer side may be at most 4000"),
        (png_header(0, 10), 415, "not a picture"),
        (png_bytes(np.zeros((900, 900, 3), np.uint8))[:200], 422, "not a readable picture"),
        (b"\0" * 2_000_001, 413, "the picture is 2,000,001 bytes (1.9 MB); the limit is 2,000,000 bytes (1.9 MB)"),
    ],
    ids=["empty", "text", "eps", "bomb-header", "9-megapixels", "60000x1", "zero-width", "truncated", "too-many-bytes"],
)
def test_a_hostile_upload_gets_a_4xx_with_one_line(client, body, status, pattern):
    _refused(client.post("/api/predict", content=body), status, pattern)
    assert client.post("/api/predict", content=png_bytes(astronaut())).status_code == 200  # and the app goes on


def test_a_declared_size_past_the_limit_is_refused_before_the_body_is_read(client):
    def endless():
        yield b"\0" * 1000
        raise AssertionError("the body was read")

    response = client.post("/api/predict", content=endless(), headers={"Content-Length": str(2 * 1024**3)})
    _refused(response, 413, "the picture is 2,147,483,648 bytes (2.0 GB); the limit is 2,000,000 bytes (1.9 MB)")


def test_a_streamed_body_is_cut_at_the_limit(service):
    offered = 64 * 1048576
    with served(service) as url:
        answer = _raw_request(
            url,
            "POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            (b"10000\r\n" + b"\0" * 65536 + b"\r\n" for _ in range(offered // 65536)),
            stop_after=offered,
        )
    assert answer.startswith("HTTP/1.1 413") and "larger than the limit of 2,000,000 bytes (1.9 MB)" in answer


def test_forms_and_other_methods_are_refused(client):
    _refused(client.post("/api/predict", files={"image": ("a.png", png_bytes(astronaut()))}), 415, "not a form")
    _refused(client.get("/api/predict"), 405, "GET is not allowed here")
    _refused(client.post("/api/info"), 405, "POST is not allowed here")


@pytest.mark.parametrize(
    "path",
    ["/assets/../pyproject.toml", "/assets/%2e%2e%2fserver.py", "/assets/index.html", "/static/app.js", "/etc/passwd", "/app.js"],
)
def test_nothing_is_served_but_the_pages_own_files(client, path):
    _refused(client.get(path), 404, "not found")


def test_the_page_and_its_assets_are_served_with_a_content_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/assets/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/assets/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/assets/app.css").text.startswith(":root")


def test_a_video_gives_the_rows_of_its_evenly_sampled_frames(predictor, tmp_path):
    service = PredictionService(predictor, Limits(max_video_frames=4))
    video = avi_video(np.asarray(astronaut()[::2, ::2]), tmp_path / "clip.avi", frames=12, fps=4)
    try:
        with TestClient(create_app(service)) as client:
            answer = client.post(
                "/api/video?name=clip.avi", content=video.read_bytes(), headers={"Content-Type": "video/x-msvideo"}
            ).json()
    finally:
        service.close()
    assert (answer["frames"], answer["fps"], answer["every_nth_frame"], answer["predicted_frames"]) == (12, 4.0, 3, 4)
    assert [r["frame"] for r in answer["rows"]] == [0, 3, 6, 9]
    assert {r["status"] for r in answer["rows"]} == {"ok"} and {r["file"] for r in answer["rows"]} == {"clip.avi"}
    expected = predictor.predict(str(video), every_nth_frame=3)
    got = pd.read_csv(io.StringIO(answer["csv"]))
    np.testing.assert_allclose(got["prob_HA"], expected["prob_HA"], rtol=0, atol=1e-6)


def test_a_video_past_the_limits_is_refused(client, tmp_path):
    long = avi_video(np.zeros((32, 32, 3), np.uint8), tmp_path / "long.avi", frames=61, fps=1)
    _refused(client.post("/api/video", content=long.read_bytes()), 413, "the video lasts 61.0 s; the limit is 60 s")
    _refused(client.post("/api/video", content=b"not a video at all" * 10), 415, "not a video OpenCV can open")
    wide = avi_video(np.zeros((16, 4100, 3), np.uint8), tmp_path / "wide.avi", frames=2, fps=1)
    _refused(client.post("/api/video", content=wide.read_bytes()), 413, "its longer side may be at most 4000")


def test_a_failure_of_the_app_is_one_line_of_500_and_one_line_of_log(client, service, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("out of luck\nsecond line")

    monkeypatch.setattr(service.predictor, "predict", broken)
    with caplog.at_level(logging.INFO, logger="phanet.app"):
        response = client.post("/api/predict", content=png_bytes(astronaut()))
    _refused(response, 500, "the app failed on this request (RuntimeError)")
    assert [r.exc_info for r in caplog.records] == [None] and "second line" not in caplog.text


def test_twenty_concurrent_requests_wait_in_a_bounded_queue_or_are_told_busy(service):
    gate = threading.Event()
    service.before_work = gate.wait
    picture = png_bytes(astronaut())

    with served(service) as url, ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(httpx.post, f"{url}/api/predict", content=picture, timeout=60) for _ in range(20)]
        deadline = time.monotonic() + 30
        while sum(f.done() for f in futures) < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.admitted == 4  # the queue is full, its work held at the gate
        gate.set()
        responses = [f.result() for f in futures]
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 4 + [429] * 16 and service.peak == 4 and service.admitted == 0
    busy = next(r for r in responses if r.status_code == 429)
    assert busy.headers["retry-after"] == "1" and busy.json()["error"].startswith("busy: 4 requests are running or waiting")


def test_an_onnx_file_is_served_with_what_it_records(checkpoint, tmp_path):
    from phanet.inference import TrainedModel

    path, _ = TrainedModel.load(checkpoint).export(tmp_path / "model.onnx")
    service = PredictionService(Predictor.load(path))
    try:
        with TestClient(create_app(service)) as client:
            info = client.get("/api/info").json()
            answer = client.post("/api/predict", content=png_bytes(astronaut())).json()
    finally:
        service.close()
    assert info["preset"] == "unknown (an ONNX file holds no training config)" and info["expressions"] == ["AN", "HA", "NE", "SU"]
    assert answer["rows"][0]["status"] == "ok" and answer["rows"][0]["expression"] in info["expressions"]


def test_the_command_refuses_a_bad_checkpoint_or_port_with_one_line(tmp_path, capsys):
    assert main(["app", "--checkpoint", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip().endswith("nothing: no such file or run folder")
    assert main(["app", "--checkpoint", str(tmp_path), "--port", "70000"]) == 2
    assert capsys.readouterr().err.strip() == "phanet app: error: --port: expected 0 to 65535, got 70000"
    assert main(["app", "--checkpoint", str(tmp_path), "--queue", "0"]) == 2
    assert capsys.readouterr().err.strip() == "phanet app: error: --queue: expected 1 or more, got 0"


def test_checkpoint_path_takes_a_run_folder(tmp_path, checkpoint):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(PhanetError, match="without checkpoints/best.ckpt"):
        checkpoint_path(tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "best.ckpt").write_bytes(checkpoint.read_bytes())
    assert checkpoint_path(tmp_path / "run") == tmp_path / "run" / "checkpoints" / "best.ckpt"
    with pytest.raises(PhanetError, match="no such file or run folder"):
        checkpoint_path(tmp_path / "nothing")
    with pytest.raises(PhanetError, match="queue: expected 1 or more"):
        Limits(queue=0)


# --------------------------------------------------------------------- the server process, attacked


def _raw_request(url: str, head: str, body_chunks, stop_after: int) -> str:
    """Send a request by hand, its body from another thread until ``stop_after`` bytes or the server stops
    taking them; the answer as text (read until the server closes, or 30 s)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())

        def send() -> None:
            sent = 0
            for chunk in body_chunks:
                if sent >= stop_after:
                    return
                try:
                    sock.sendall(chunk)
                except OSError:  # the server answered and closed, or the test closed the socket
                    return
                sent += len(chunk)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = b""
        try:
            while part := sock.recv(65536):
                answer += part
                if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                    break
        except OSError:
            pass
        sock.shutdown(socket.SHUT_RDWR)
    sender.join(30)
    return answer.decode(errors="replace")


@pytest.mark.slow
def test_the_server_survives_hostile_uploads_with_bounded_memory(checkpoint):

    picture = astronaut_path().read_bytes()
    with app_process(checkpoint, "--queue", "4") as (url, process):
        assert httpx.post(f"{url}/api/predict", content=picture, timeout=60).status_code == 200
        baseline = peak_rss_mb(process.pid)
        cases = {
            "zero bytes": b"",
            "text renamed .jpg": b"not a picture\n" * 10,
            "30000x30000 PNG header": png_header(30000, 30000),
            "1x60000 image": png_bytes(np.zeros((1, 60000, 3), np.uint8)),
        }
        for name, body in cases.items():
            response = httpx.post(f"{url}/api/predict?name={name}.jpg", content=body, timeout=60)
            assert 400 <= response.status_code < 500 and "\n" not in response.json()["error"], name
        two_gb = 2 * 1024**3
        declared = _raw_request(
            url,
            f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: {two_gb}\r\n\r\n",
            (b"\0" * 1048576 for _ in range(2048)),
            stop_after=64 * 1048576,
        )
        assert declared.startswith("HTTP/1.1 413") and "the picture is 2,147,483,648 bytes (2.0 GB)" in declared
        chunked = _raw_request(
            url,
            "POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            (b"100000\r\n" + b"\0" * 1048576 + b"\r\n" for _ in range(2048)),
            stop_after=256 * 1048576,
        )
        assert chunked.startswith("HTTP/1.1 413") and "larger than the limit of 20,971,520 bytes (20.0 MB)" in chunked
        with ThreadPoolExecutor(50) as pool:
            parallel = list(pool.map(lambda _: httpx.post(f"{url}/api/predict", content=picture, timeout=120), range(50)))
        statuses = {r.status_code for r in parallel}
        assert statuses <= {200, 429} and 200 in statuses and 429 in statuses
        assert all(r.json()["error"].startswith("busy:") for r in parallel if r.status_code == 429)
        after = httpx.post(f"{url}/api/predict", content=picture, timeout=60)
        assert after.status_code == 200 and after.json()["rows"][0]["status"] == "ok"
        peak = peak_rss_mb(process.pid)
    log = process.stderr.read() if process.stderr else ""
    assert "Traceback" not in log
    print(
        json.dumps(
            {"baseline_rss_mb": round(baseline), "peak_rss_mb": round(peak), "busy": sum(r.status_code == 429 for r in parallel)}
        )
    )
    assert peak < baseline + 400, (baseline, peak)
