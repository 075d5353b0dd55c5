"""The rows of a prediction written as they come, so that a stopped run loses nothing and continues.

``phanet predict --out results.csv`` appends the rows of every image and video frame to
``results.csv.partial`` (JSON lines: one line of settings, then one line per picture with its rows)
while it runs, and writes ``results.csv`` from them at the end, when the partial file is removed. A
run that was stopped (SIGTERM, Ctrl+C, ``kill -9``, a closed terminal) leaves the partial file;
``--resume`` continues from it with the same settings, leaving out every picture it holds. A line
cut short by a kill is dropped and its picture predicted again.

The partial file is also the output's lock: its writer holds an exclusive ``flock`` on it
(:class:`~phanet.files.FileLock`), so a second run into the same ``--out`` is refused while the first
one lives, whether or not it was given ``--overwrite``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from phanet.checks import SHOWN_PATH, shorten
from phanet.errors import PhanetError
from phanet.files import FileLock, parse_json, size_text, write_failed
from phanet.predict.predictor import FrameResult
from phanet.version import __version__

#: Added to the output's name to name its partial file.
PARTIAL_SUFFIX = ".partial"
#: The key of the settings line, the first line of a partial file.
HEADER = "phanet predict"


def partial_path(out: str | Path) -> Path:
    """The partial file of the output ``out``."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def _native(value: Any) -> Any:
    """A NumPy scalar of a row as the Python number JSON writes."""
    return value.item() if hasattr(value, "item") else str(value)


class RowJournal:
    """The partial file of one output: the rows so far, held locked while a run writes it.

    :meth:`open` takes the lock and reads what a stopped run left (``resume``), or starts the file
    afresh; :meth:`add` appends a picture's rows; :meth:`close` lets the file go, removing it once the
    output has been written (``finished``).
    """

    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.out = out
        self.path = partial_path(out)
        self.settings = settings
        self.lock = FileLock(self.path)
        self.rows: list[dict[str, Any]] = []
        self.done: set[tuple[str, int]] = set()
        self.added = 0
        self.started = False

    @classmethod
    def open(cls, out: str | Path, settings: dict[str, Any], resume: bool, overwrite: bool) -> RowJournal:
        """The journal of ``out``, locked; refused with one line naming ``out`` or ``resume`` when another
        run writes it, when a stopped run's rows would be lost (neither ``resume`` nor ``overwrite``), when
        there is nothing to resume, or when the stopped run had other settings."""
        journal = cls(Path(out), settings)
        if not journal.lock.acquire():
            raise PhanetError.about(
                "out",
                "{out} is being written by another phanet predict (it holds {partial}); wait for it to end or "
                "choose another {out}",
                out=shorten(journal.out, SHOWN_PATH),
                partial=shorten(journal.path, SHOWN_PATH),
            )
        try:
            journal._start(resume, overwrite)
        except BaseException:
            journal.close(finished=False)
            raise
        return journal

    def _start(self, resume: bool, overwrite: bool) -> None:
        fd = self.lock.fd
        if fd is None:
            raise AssertionError("the journal is not locked")
        size = os.fstat(fd).st_size
        stopped = size > 0
        if self.out.exists() and not overwrite and not resume:
            raise PhanetError.about(
                "out", "{out} already exists; choose another name or pass {overwrite} to replace it", out=self.out
            )
        if stopped and resume:
            self._read(fd, size)
            return
        if stopped and not overwrite:
            raise PhanetError.about(
                "out",
                "{partial} holds the rows of a stopped run ({size}); continue it with {resume} or pass "
                "{overwrite} to start again",
                partial=shorten(self.path, SHOWN_PATH),
                size=size_text(size),
            )
        if resume:
            self.lock.release(remove=True)
            raise PhanetError.about("resume", "no stopped run to continue: {partial} does not exist", partial=self.path)
        os.ftruncate(fd, 0)
        self._write({HEADER: __version__, "settings": self.settings})
        self.started = True

    def _read(self, fd: int, size: int) -> None:
        """The rows of the stopped run; the file is cut after its last whole line."""
        data = os.pread(fd, size, 0)
        lines = data.split(b"\n")
        whole = len(data) - len(lines[-1])  # bytes up to the last newline
        records = []
        for number, line in enumerate(lines[:-1], start=1):
            try:
                records.append(parse_json(line))
            except ValueError:
                raise PhanetError.about(
                    "resume",
                    "{partial} is damaged at line {number}; start again with {overwrite}",
                    partial=self.path,
                    number=number,
                ) from None
        header = records[0] if records and isinstance(records[0], dict) and HEADER in records[0] else None
        if header is None:
            raise PhanetError.about(
                "resume", "{partial} is not a partial table of phanet predict; start again with {overwrite}", partial=self.path
            )
        before = header.get("settings", {})
        changed = next((key for key in self.settings if before.get(key) != self.settings[key]), None)
        if changed is not None:
            # The setting's name is a parameter of the message, so that the command names its flag.
            raise PhanetError.about(
                "resume",
                "the stopped run had {" + changed + "} {before}, this one {now}; resume with the same "
                "settings or start again with {overwrite}",
                before=shorten(str(before.get(changed)), 100),
                now=shorten(str(self.settings[changed]), 100),
            )
        for record in records[1:]:
            self.rows.extend(record["rows"])
            self.done.add((record["file"], int(record["frame"])))
        os.ftruncate(fd, whole)
        os.lseek(fd, whole, os.SEEK_SET)

    def _write(self, record: dict[str, Any]) -> None:
        fd = self.lock.fd
        if fd is None:
            raise AssertionError("the journal is not locked")
        data = (json.dumps(record, default=_native) + "\n").encode("utf-8")
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError as exc:
            raise write_failed(self.path, exc) from None

    def add(self, result: FrameResult) -> None:
        """Append the rows of one picture (one line, so that a kill keeps a picture whole or not at all)."""
        self._write({"file": result.file, "frame": result.frame, "rows": result.rows})
        self.added += 1

    def close(self, finished: bool) -> None:
        """Let the partial file go: removed when the output is ``finished``, or when it holds no picture
        (empty, or started by this run and stopped before its first picture); else kept for ``--resume``."""
        fd = self.lock.fd
        if fd is None:
            return
        empty = os.fstat(fd).st_size == 0 or (self.started and not self.added)
        self.lock.release(remove=finished or empty)
