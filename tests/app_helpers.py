"""What the app's tests share: the app served from a thread or a process, hostile uploads, and Chromium."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

#: How the tests start Debian's Chromium (as root in CI: no sandbox; no network but the loopback).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
INSTALL = "apt-get install -y chromium (Debian's package) and pip install -e '.[test]' (playwright)"


def chromium_path() -> str:
    """Debian's Chromium: $PHANET_CHROMIUM, else chromium or chromium-browser on the PATH."""
    found = os.environ.get("PHANET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(f"no Chromium to run the browser tests: {INSTALL}", pytrace=False)
    return found


@contextmanager
def chromium(*extra_args: str) -> Iterator[object]:
    """A headless Chromium driven by Playwright; the test fails, with the install command, when it cannot start."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed: {INSTALL}", pytrace=False)
    path = chromium_path()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=path, headless=True, args=[*CHROMIUM_ARGS, *extra_args])
        except Error as exc:
            pytest.fail(f"Chromium ({path}) did not start: {str(exc).splitlines()[0]}; {INSTALL}", pytrace=False)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def served(service, host: str = "127.0.0.1") -> Iterator[str]:
    """The app over ``service`` served by uvicorn on a thread of this process; yields its base URL."""
    import uvicorn

    from phanet.app.server import create_app

    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", limit_concurrency=service.limits.queue + 64))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the app did not start within 30 s"
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def app_process(checkpoint: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``phanet app --checkpoint CHECKPOINT --port 0 ARGS`` in a process of its own; yields its URL and the process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "phanet", "app", "--checkpoint", str(checkpoint), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"http://[^ ]+/", line)
        assert found, f"phanet app printed {line!r}; stderr: {process.stderr.read() if process.poll() is not None else ''}"
        yield found.group(0).rstrip("/"), process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of a process so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


# ------------------------------------------------------------------------------ hostile uploads


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with a few bytes of data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def png_bytes(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def y4m_video(rgb: np.ndarray, path: Path, frames: int = 10, fps: int = 10) -> Path:
    """A YUV4MPEG2 file of ``rgb`` repeated: what Chromium's fake camera plays (--use-file-for-fake-video-capture)."""
    import cv2

    height, width = rgb.shape[:2]
    planes = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes()
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            handle.write(b"FRAME\n" + planes)
    return path


def avi_video(rgb: np.ndarray, path: Path, frames: int, fps: float) -> Path:
    """An MJPEG .avi of ``rgb`` repeated ``frames`` times at ``fps``."""
    import cv2

    height, width = rgb.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write MJPEG"
    for _ in range(frames):
        writer.write(np.ascontiguousarray(rgb[:, :, ::-1]))
    writer.release()
    return path
