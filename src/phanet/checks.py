"""Checks of command-line values made before any work starts, and how user values appear in messages.

Each check names the value it refuses by ``name``, the parameter's name (``out``, ``batch_size``),
which a command renders as its option (``--out``, ``--batch-size``;
:meth:`~phanet.errors.PhanetError.render`).

A command checks its output paths (:func:`output_file`, :func:`output_folder`) and its device
(:func:`torch_device`) first, so that a name that cannot be written, an earlier result that would be
replaced, or a device the machine lacks ends the command with one line before a model is loaded or
an image decoded. Values quoted in messages go through :func:`shorten`, so a message stays one
readable line whatever was typed.
"""

from __future__ import annotations

import errno
import numbers
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from phanet.errors import PhanetError
from phanet.files import file_kind, refuse_existing

#: Characters of a user value quoted in a message; longer values are cut with "…".
SHOWN = 60
#: Characters of a path quoted in a message (paths are longer than values, and still one line).
SHOWN_PATH = 200

# atomic_write's temporary file (files.TEMPORARY_PATTERN) adds "." and ".<8 random characters>.tmp" to the name.
_TEMPORARY_EXTRA = len("..12345678.tmp")


def shorten(value: object, limit: int = SHOWN) -> str:
    """``value`` as text on one line (line breaks written as ``\\n``), cut to ``limit`` characters with "…"."""
    text = str(value).replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "…"


def _existing_ancestor(path: Path) -> Path:
    for folder in Path(os.path.abspath(path)).parents:
        if os.path.lexists(folder):
            return folder
    return Path(os.path.abspath(os.sep))


def _status(path: Path, name: str) -> os.stat_result | None:
    """``os.stat`` of ``path``, None when it does not exist; a one-line error when it cannot be asked."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise PhanetError.about(name, "file name too long ({path})", path=shorten(path, SHOWN_PATH)) from None
        raise PhanetError.about(name, "{path}: {reason}", path=shorten(path, SHOWN_PATH), reason=exc.strerror) from None


def _creatable(path: Path, name: str, temporary: bool) -> None:
    """Raise unless ``path`` (and, with ``temporary``, the temporary file written beside it) can be
    created: names within the file system's limits, the nearest existing folder above it a folder
    that this process may write in."""
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise PhanetError.about(
            name,
            "{ancestor} is a file, so {path} cannot be created in it",
            ancestor=shorten(ancestor, SHOWN_PATH),
            path=shorten(path, SHOWN_PATH),
        )
    try:
        name_max = os.pathconf(ancestor, "PC_NAME_MAX")
        path_max = os.pathconf(ancestor, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    parts = [len(os.fsencode(part)) for part in Path(os.path.abspath(path)).parts[1:]]
    if temporary and parts:
        parts[-1] += _TEMPORARY_EXTRA
    if any(length > name_max for length in parts) or len(os.fsencode(os.path.abspath(path))) >= path_max:
        raise PhanetError.about(name, "file name too long ({path})", path=shorten(path, SHOWN_PATH))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PhanetError.about(name, "no permission to write in {ancestor}", ancestor=shorten(ancestor, SHOWN_PATH))


def output_file(path: str | Path, name: str, overwrite: bool, suffixes: Iterable[str] = ()) -> Path:
    """``path`` as an output file name: creatable, ending in one of ``suffixes`` (when given), not a
    folder or a special file (a device, a pipe), and not an existing file unless ``overwrite``."""
    path = Path(path)
    suffixes = tuple(suffixes)
    if suffixes and path.suffix.lower() not in suffixes:
        raise PhanetError.about(
            name,
            "expected a file name ending in {suffixes}, got {path}",
            suffixes=" or ".join(suffixes),
            path=shorten(path, SHOWN_PATH),
        )
    found = _status(path, name)
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise PhanetError.about(name, "{path} is a folder, expected a file name", path=shorten(path, SHOWN_PATH))
    if found is not None and not stat.S_ISREG(found.st_mode):  # replacing /dev/null would break the machine
        raise PhanetError.about(
            name, "{path} is {kind}, not a file phanet may replace", path=shorten(path, SHOWN_PATH), kind=file_kind(found.st_mode)
        )
    _creatable(path, name, temporary=True)
    refuse_existing(path, name, overwrite)
    return path


def output_folder(path: str | Path, name: str, overwrite: bool, names: Iterable[str] = ()) -> Path:
    """``path`` as an output folder: a folder or creatable, and none of the files ``names`` that the
    command writes in it already there unless ``overwrite``."""
    path = Path(path)
    found = _status(path, name)
    if found is not None and not stat.S_ISDIR(found.st_mode):
        raise PhanetError.about(name, "{path} is a file, expected a folder", path=shorten(path, SHOWN_PATH))
    if found is None:
        _creatable(path, name, temporary=False)
    for file_name in names:
        output_file(path / file_name, name, overwrite)
    return path


def file_path(value: object, name: str = "path") -> Path:
    """``value`` as a path when it is a non-empty ``str``, ``bytes`` or path-like; an error about parameter
    ``name`` otherwise (``None`` or a number given to a library function)."""
    if isinstance(value, (str, bytes, os.PathLike)) and os.fsdecode(value):
        return Path(os.fsdecode(value))
    shown = "an empty path" if isinstance(value, (str, bytes)) else f"{type(value).__name__} {shorten(repr(value))}"
    raise PhanetError.about(name, "expected the path of a file, got {value}", value="None" if value is None else shown)


def positive(value: int, name: str) -> int:
    """``value`` when it is a whole number of 1 or more; an error about parameter ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise PhanetError.about(name, "expected a whole number of 1 or more, got {value}", value=shorten(repr(value)))
    if value < 1:
        raise PhanetError.about(name, "expected 1 or more, got {value}", value=value)
    return int(value)


#: Largest face margin accepted: a margin of m grows the face box to (1 + 2m) times its side, and a
#: crop far larger than the picture is padding, not face.
MAX_MARGIN = 2.0


def margin(value: float, name: str = "margin") -> float:
    """A face margin (fraction of the face's side added on each side) within [0, MAX_MARGIN]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PhanetError.about(name, "expected a fraction of the face's size, got {value}", value=shorten(repr(value)))
    if not 0 <= value <= MAX_MARGIN:  # also false for NaN
        raise PhanetError.about(
            name, "expected a fraction of the face's size from 0 to {most:g}, got {value:g}", most=MAX_MARGIN, value=value
        )
    return value


def available_devices() -> list[str]:
    """The PyTorch devices of this machine: ``cpu``, then ``cuda:N`` for every GPU, then ``mps``."""
    import torch

    devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


#: The devices :func:`torch_device` accepts, as text.
DEVICE_PATTERN = re.compile(r"(cpu|mps|cuda(:\d{1,4})?)")


def device_name(value: object, name: str = "device") -> str:
    """``value`` when it names a device :func:`torch_device` accepts (``cpu``, ``cuda``, ``cuda:N``,
    ``mps``), checked without loading PyTorch; whether the machine has it is :func:`torch_device`'s."""
    if not isinstance(value, str) or not DEVICE_PATTERN.fullmatch(value):
        shown = repr(shorten(value)) if isinstance(value, str) else shorten(repr(value))
        raise PhanetError.about(name, "{value} is not a device (expected cpu, cuda, cuda:N or mps)", value=shown)
    return value


def torch_device(value: object, name: str = "device") -> str:
    """``value`` when it is a PyTorch device this machine has (``cpu``, ``cuda``, ``cuda:N``, ``mps``);
    a one-line error naming ``name`` and the available devices otherwise."""
    import torch

    if not isinstance(value, (str, torch.device)):
        raise PhanetError.about(name, "expected a device name such as cpu or cuda:0, got {value}", value=shorten(repr(value)))
    value = str(value)
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise PhanetError.about(
            name, "{value!r} is not a device (expected cpu, cuda, cuda:N or mps)", value=shorten(value)
        ) from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise PhanetError.about(name, "{value!r} is not supported (expected cpu, cuda, cuda:N or mps)", value=shorten(value))
    available = available_devices()
    wanted = f"cuda:{device.index or 0}" if device.type == "cuda" else device.type
    if wanted not in available:
        raise PhanetError.about(
            name,
            "{value} is not available on this machine (available: {available})",
            value=shorten(value),
            available=", ".join(available),
        )
    return value


def class_names(value: object, name: str, allow_empty: bool = False) -> list[str]:
    """``value`` as a list of class names: non-empty text without control characters (a line break in a
    name would break the rows of a CSV), each once (a repeated name would make two columns
    ``prob_HA``, or a class that no output stands for); a one-line error about ``name`` otherwise."""
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and v.strip() and not any(ord(c) < 32 or ord(c) == 127 for c in v) for v in value
    ):
        raise PhanetError.about(name, "expected a list of class names, got {value}", value=shorten(repr(value)))
    if not value and not allow_empty:
        raise PhanetError.about(name, "expected at least one class name, got an empty list")
    seen: set[str] = set()
    for item in value:
        if item in seen:
            raise PhanetError.about(name, "{item!r} is listed twice in {value}", item=shorten(item), value=shorten(repr(value)))
        seen.add(item)
    return list(value)
