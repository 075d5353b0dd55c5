"""Reading files only when they are files, and writing them so that a crash, a kill or a full disk
leaves the old file or nothing, never half a file.

Every reader of a user's file (an image, a video, a config, a manifest, a checkpoint) opens it with
:func:`open_regular` or checks it with :func:`regular_file` first: a named pipe (FIFO), a device such
as ``/dev/zero``, a socket or a folder is refused with one line (:class:`NotAFile`) instead of being
opened, since reading one blocks forever or never ends. :func:`read_limited` reads a small file
(a config) whole, refusing one larger than its limit before reading it.

Every writer in the package goes through :func:`atomic_write`: the content goes to a hidden temporary
file in the target's folder, is flushed to disk, and replaces the target with one ``os.replace``. A
failed write (no space left, file too large, permission denied) removes the temporary file and raises
:class:`~phanet.errors.PhanetError` naming the target, so the command ends with one line. New files
get the permissions the process's umask gives (``mkstemp`` alone would make them private).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from phanet.errors import PhanetError


class NotAFile(PhanetError):
    """A path that exists but is not a regular file (a FIFO, a device, a socket, a folder)."""


def file_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words: ``a regular file``, ``a named pipe (FIFO)``, ..."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def not_a_file(path: str | Path, mode: int) -> NotAFile:
    """The one-line error for ``path``, which is not a regular file but ``mode`` says what."""
    return NotAFile(f"{path}: {file_kind(mode)}, not a regular file")


def regular_file(path: str | Path) -> os.stat_result:
    """``os.stat`` of ``path`` (links followed) when it is a regular file; :class:`NotAFile` otherwise
    (``FileNotFoundError`` and the other ``OSError`` of ``stat`` pass through)."""
    status = os.stat(path)
    if not stat.S_ISREG(status.st_mode):
        raise not_a_file(path, status.st_mode)
    return status


def open_regular(path: str | Path) -> IO[bytes]:
    """``path`` opened for reading in binary mode when it is a regular file; :class:`NotAFile` otherwise.

    The file is opened without blocking and checked on the opened descriptor, so that a FIFO is never
    waited on, even one that replaced a file after a look at its name; ``OSError`` (not found,
    permission denied) passes through."""
    regular_file(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise not_a_file(path, mode)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def size_text(size: float) -> str:
    """A byte count in words: ``512 bytes``, ``1.5 MB``, ``6.7 GB``."""
    units = ("bytes", "kB", "MB", "GB", "TB")
    value, unit = float(size), 0
    while value >= 1000 and unit < len(units) - 1:
        value, unit = value / 1000, unit + 1
    return f"{int(size)} bytes" if unit == 0 else f"{value:.3g} {units[unit]}"


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` of a file's text, with brackets nested past the parser (``[[[[…]]]]``, which the
    standard library answers with a RecursionError) raised as the ValueError of any other bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_limited(path: str | Path, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refused with one line (:class:`PhanetError`) when it
    holds more than ``limit`` bytes: the size is checked before reading, and the read stops at the limit
    whatever the size said."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise PhanetError(f"{path}: {size_text(max(size, len(data)))}, more than a {what} may hold ({size_text(limit)})")
    return data


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_failed(path: str | Path, exc: OSError) -> PhanetError:
    """The one-line error for a write to ``path`` that the operating system refused."""
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        reason += "; the old file, if any, is unchanged"
    return PhanetError(f"{path}: could not write ({reason})")


#: Name pattern of :func:`atomic_write`'s temporary files: ``.<name>.<random>.tmp`` beside the target.
TEMPORARY_PATTERN = ".*.tmp"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_failed(path, exc) from None
        raise


def remove_temporaries(folder: str | Path) -> None:
    """Delete the temporary files that writes killed half-way left anywhere under ``folder`` (the
    finished files were never touched)."""
    for stale in Path(folder).rglob(TEMPORARY_PATTERN):
        stale.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON (with a final newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def write_csv(path: str | Path, table: Any) -> None:
    """Write a pandas DataFrame as CSV (no index) to ``path`` atomically."""
    atomic_write_text(path, table.to_csv(index=False))


def refuse_existing(path: str | Path, name: str, overwrite: bool) -> None:
    """Raise unless ``path`` is free or ``overwrite`` was given: nothing a user wrote is replaced unasked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise PhanetError.about(name, "{path} already exists; choose another name or pass {overwrite} to replace it", path=path)


class FileLock:
    """An exclusive ``flock`` on the file ``path`` (created when needed), held until :meth:`release`.

    The kernel drops the lock when its process ends, however it ends (``kill -9`` included), so a lock
    is never stale. :meth:`release` with ``remove`` deletes the file while still holding the lock; so
    that a process which opened the file just before it was deleted cannot hold a lock nobody else
    sees, :meth:`acquire` keeps a lock only on the file that is still at ``path``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock: True once held, False when another process holds it."""
        while self.fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as exc:
                raise write_failed(self.path, exc) from None
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                os.close(fd)
                raise not_a_file(self.path, mode)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                here = os.stat(self.path)
                held = os.fstat(fd)
                current = (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
            except FileNotFoundError:
                current = False
            if current:
                self.fd = fd
            else:  # deleted (or replaced) by its last holder after this process opened it: try again
                os.close(fd)
        return True

    def release(self, remove: bool = False) -> None:
        """Let the lock go; with ``remove``, delete the file first (nobody else can hold it meanwhile)."""
        if self.fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def lock_folder(path: str | Path) -> int | None:
    """An exclusive ``flock`` on the folder ``path`` itself (created when needed; no lock file is left
    behind): its open descriptor, to close when done, or None when another process holds it."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise write_failed(path, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
