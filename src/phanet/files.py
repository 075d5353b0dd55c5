"""Writing files so that a crash, a kill or a full disk leaves the old file or nothing, never half a file.

Every writer in the package goes through :func:`atomic_write`: the content goes to a hidden temporary
file in the target's folder, is flushed to disk, and replaces the target with one ``os.replace``. A
failed write (no space left, file too large, permission denied) removes the temporary file and raises
:class:`~phanet.errors.PhanetError` naming the target, so the command ends with one line. New files
get the permissions the process's umask gives (``mkstemp`` alone would make them private).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from phanet.errors import PhanetError


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
