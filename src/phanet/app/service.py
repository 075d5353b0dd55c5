"""The work behind the app's pages and API: uploads in, the rows of ``phanet predict`` out.

A :class:`PredictionService` holds one :class:`~phanet.predict.Predictor` (over a
:class:`~phanet.inference.TrainedModel`) and runs every prediction on one worker thread, in the
order admitted. At most :attr:`Limits.queue <phanet.app.limits.Limits>` requests are admitted at
once, the one running included; a further one is refused at once with 429 "busy" (and
``Retry-After``), before its body is read. Uploads are streamed to files of the service's own
private folder under names it chooses; a name sent by the client is only shown, never opened.

A picture is decoded as ``phanet predict`` decodes a file (:func:`phanet.data.io.read_image`) and the
predictor runs on the pixels, so the rows are those ``phanet predict`` writes for the same file, but
for the ``file`` column, which holds the name the client gave.
"""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from phanet.app.limits import Limits, Refused, VideoHeader, check_image, check_video, size_text
from phanet.data.io import read_image
from phanet.errors import UnreadableImage
from phanet.predict import Predictor

T = TypeVar("T")

#: Longest name of an upload that the rows and the page show.
MAX_NAME = 120


def display_name(name: str | None, default: str) -> str:
    """A client's file name as shown in the ``file`` column: its last part, printable, at most :data:`MAX_NAME` characters."""
    last = re.split(r"[\\/]", name or "")[-1]
    shown = "".join(c for c in last if c.isprintable()).strip()
    return shown[:MAX_NAME] or default


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: NaN becomes None (null), as in ``phanet predict``'s JSON."""
    return [
        {key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in row.items()}
        for row in table.to_dict("records")
    ]


class PredictionService:
    """Predictions for the app, one at a time on a worker thread, with a bounded queue.

    Args:
        predictor: detection, cropping and the network, as ``phanet predict`` runs them.
        limits: the bounds of uploads and of the queue.
    """

    def __init__(self, predictor: Predictor, limits: Limits | None = None) -> None:
        self.predictor = predictor
        self.limits = limits or Limits()
        self.admitted = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="phanet-predict")
        self._folder = Path(tempfile.mkdtemp(prefix="phanet-app-"))
        self._count = 0
        #: Called on the worker thread before every prediction (tests hold the queue with it).
        self.before_work: Callable[[], None] | None = None

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._folder, ignore_errors=True)

    # ------------------------------------------------------------------------------ admission

    @asynccontextmanager
    async def admitted_request(self) -> AsyncIterator[Path]:
        """A place in the queue and a fresh upload path of the service's own; 429 when the queue is full."""
        with self._lock:
            if self.admitted >= self.limits.queue:
                raise Refused(429, f"busy: {self.admitted} requests are running or waiting; try again in a moment")
            self.admitted += 1
            self.peak = max(self.peak, self.admitted)
            self._count += 1
            path = self._folder / f"upload-{self._count}"
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)
            with self._lock:
                self.admitted -= 1

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on the worker thread, after the requests admitted before it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, work, args)

    def _call(self, work: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self.before_work is not None:
            self.before_work()
        return work(*args)

    # ------------------------------------------------------------------------------ the work

    def predict_image(self, path: Path, name: str) -> dict[str, Any]:
        """The rows of the picture uploaded to ``path``: checked from its header, decoded as by ``phanet predict``."""
        check_image(path, self.limits)
        try:
            rgb = read_image(path)
        except UnreadableImage as exc:
            raise Refused(422, f"not a readable picture ({str(exc).rsplit(': ', 1)[-1]})") from None
        table = self.predictor.predict(rgb)
        table["file"] = name
        height, width = rgb.shape[:2]
        return {"file": name, "width": width, "height": height, "rows": _records(table), "csv": table.to_csv(index=False)}

    def predict_video(self, path: Path, name: str) -> dict[str, Any]:
        """The rows of every predicted frame of the video uploaded to ``path`` (evenly sampled past the frame limit)."""
        header = check_video(path, self.limits)
        rows: list[dict[str, Any]] = []
        frames = 0
        for result in self.predictor.iter_predict(str(path), every_nth_frame=header.every_nth_frame):
            if result.frame >= header.frames or frames >= self.limits.max_video_frames:
                break  # a header that undercounts its frames does not buy more work
            rows.extend(result.rows)
            frames += 1
        table = self.predictor.table(rows)
        table["file"] = name
        return {
            "file": name,
            "width": header.width,
            "height": header.height,
            "fps": header.fps,
            "frames": header.frames,
            "every_nth_frame": header.every_nth_frame,
            "predicted_frames": frames,
            "rows": _records(table),
            "csv": table.to_csv(index=False),
        }

    def info(self) -> dict[str, Any]:
        """What the page shows of the model, the detector and the limits."""
        return model_summary(self.predictor) | {
            "limits": {
                "max_bytes": self.limits.max_bytes,
                "max_bytes_text": size_text(self.limits.max_bytes),
                "max_pixels": self.limits.max_pixels,
                "max_side": self.limits.max_side,
                "max_video_bytes": self.limits.max_video_bytes,
                "max_video_bytes_text": size_text(self.limits.max_video_bytes),
                "max_video_seconds": self.limits.max_video_seconds,
                "max_video_frames": self.limits.max_video_frames,
                "queue": self.limits.queue,
            }
        }


def model_preset(predictor: Predictor) -> str:
    """The packaged preset whose model settings the network was trained with (``demo``, ``paper``), else ``custom``."""
    from phanet.config import load_config
    from phanet.config.loading import preset_names
    from phanet.errors import PhanetError

    try:
        config = predictor.model.training_config
    except PhanetError:
        return "unknown (an ONNX file holds no training config)"
    for name in preset_names():
        try:
            if load_config(name).model == config.model:
                return name
        except PhanetError:
            continue
    return "custom"


def model_summary(predictor: Predictor) -> dict[str, Any]:
    """The model's :class:`~phanet.models.info.ModelInfo` and how the predictor runs it."""
    info = predictor.info
    return {
        "expressions": list(info.expressions),
        "poses": list(info.poses),
        "input_size": info.input_size,
        "arch": info.arch,
        "trained_on": info.trained_on,
        "preset": model_preset(predictor),
        "detector": predictor.detector,
        "margin": predictor.margin,
        "min_face": predictor.min_face,
        "columns": predictor.columns,
    }


def _bytes(count: int) -> str:
    return f"{count:,} bytes ({size_text(count)})"


async def receive(request_stream: AsyncIterator[bytes], path: Path, declared: str | None, limit: int, what: str) -> int:
    """Write a request body to ``path``, refusing it (413) past ``limit`` bytes, declared or sent; its size."""
    if declared is not None:
        if not declared.isdigit():
            raise Refused(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise Refused(413, f"the {what} is {_bytes(int(declared))}; the limit is {_bytes(limit)}")
    size = 0
    with open(path, "wb") as handle:
        async for chunk in request_stream:
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"the {what} is larger than the limit of {_bytes(limit)}")
            handle.write(chunk)
    if size == 0:
        raise Refused(400, f"empty upload: send the {what} as the request body")
    return size


__all__ = ["PredictionService", "Refused", "VideoHeader", "display_name", "model_summary", "receive"]
