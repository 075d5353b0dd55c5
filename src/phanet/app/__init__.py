"""``phanet app``: a local web page and JSON API over a trained network.

::

    from phanet.app import serve

    serve("runs/demo/phanet")                       # http://127.0.0.1:8000, until Ctrl+C

The page takes photos (several at once), a short video and the webcam (frames sent from the
browser), and shows for every face its box, the expression probabilities, the pose, the S2 and S3
squares and the scale weights c1..c3, with the image's table and its CSV. The API
(``POST /api/predict``) answers the same rows. Everything runs through one
:class:`~phanet.predict.Predictor` over one :class:`~phanet.inference.TrainedModel`, as ``phanet
predict`` does, so the rows are the same.

The parts: :mod:`~phanet.app.limits` (what is accepted), :mod:`~phanet.app.service` (the queue and
the work) and :mod:`~phanet.app.server` (the HTTP routes); the page is ``phanet/app/static``.
"""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import Any

from phanet.app.limits import Limits, Refused
from phanet.app.service import PredictionService
from phanet.errors import PhanetError

__all__ = ["CONNECTIONS", "Limits", "PredictionService", "Refused", "checkpoint_path", "serve"]

#: Open connections served beyond the queue (page loads, refusals on their way out).
CONNECTIONS = 64


def checkpoint_path(path: str | Path) -> Path:
    """A ``.ckpt`` or ``.onnx`` file as given, or the ``checkpoints/best.ckpt`` of a run folder."""
    path = Path(path)
    if path.is_dir():
        best = path / "checkpoints" / "best.ckpt"
        if not best.is_file():
            raise PhanetError.about(
                "checkpoint", "{path} is a folder without checkpoints/best.ckpt (a run folder of phanet train)", path=path
            )
        return best
    if not path.is_file():
        raise PhanetError.about("checkpoint", "{path}: no such file or run folder", path=path)
    return path


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PhanetError.about(
            "port", "cannot listen on {host} port {port}: {reason}", host=host, port=port, reason=exc.strerror
        ) from None
    sock.listen(128)
    return sock


def serve(
    checkpoint: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    backend: str = "torch",
    device: str = "cpu",
    **predictor_options: Any,
) -> None:
    """Serve the app for ``checkpoint`` (a ``.ckpt``, a ``.onnx`` or a run folder) until interrupted.

    ``port=0`` takes a free port; the address is printed on one line once the server listens.
    ``predictor_options`` go to :class:`~phanet.predict.Predictor` (``detector``, ``margin``, ``min_face``, ...).
    """
    import uvicorn

    from phanet.app.server import create_app
    from phanet.predict import Predictor

    limits = limits or Limits()
    predictor = Predictor.load(checkpoint_path(checkpoint), backend=backend, device=device, **predictor_options)
    service = PredictionService(predictor, limits)
    sock = _listening_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("phanet app: %(message)s"))
    log = logging.getLogger("phanet.app")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    config = uvicorn.Config(
        create_app(service),
        log_level="warning",
        # Past this many open connections uvicorn answers 503 itself; below it, requests past the
        # queue get 429 "busy" before their body is read.
        limit_concurrency=limits.queue + CONNECTIONS,
        timeout_keep_alive=5,
        server_header=False,
    )
    print(f"phanet app: http://{shown}:{sock.getsockname()[1]}/ (Ctrl+C stops)", flush=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        service.close()
        sock.close()
        log.removeHandler(handler)
