"""Decoded faces kept on disk: one uint8 array per dataset, image size and preprocessing.

Training reads every image once per epoch. Decoding a file (or, for the built-in data, rendering
it) costs far more than a training step on a GPU, so the first time an image is read it is decoded,
resized to the network's input size and stored in a file-backed array; every later read, by any
DataLoader worker and by later runs on the same data, is a copy out of the operating system's page
cache. Nothing is held in the process's own memory: a 290,000-image dataset at 224 px (44 GB) is
served the same way as a small one.

Files under the cache folder (``data.cache_dir``, default ``$PHANET_CACHE/images`` or
``~/.cache/phanet/images``)::

    <name>-<size>px-<key>.pixels   uint8 (slots, size, size, 3) RGB, a sparse file filled as images are read
    <name>-<size>px-<key>.state    per slot: 0 empty, 1 stored, 2 unreadable; with the source file's
                                   modification time and size when it was stored
    <name>-<size>px-<key>.json     what the files hold, for a person looking at the folder

``key`` hashes the image size, the preprocessing version and the list of sources (file path, face
box and margin; for rendered data the generator version, seed and sample). Slots are the distinct
sources, so manifest rows that point at the same file share one. A source whose file has changed
since it was stored (modification time or size) is decoded again. Writes go through ordinary file
writes, never through the memory map, so a full disk is an error that turns the cache off (with a
warning), never a crash; the pixels are written before the slot is marked stored, so an
interrupted run leaves a slot empty, never marked and half written. The folder may be deleted at
any time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from phanet.data.records import LabeledFaces
from phanet.errors import PhanetError
from phanet.files import write_json

log = logging.getLogger(__name__)

#: Bumped whenever the pixels stored for the same source and size change (resizing, colour handling).
PREPROCESS_VERSION = 1
#: Slot states.
EMPTY, STORED, UNREADABLE = 0, 1, 2
STATE_DTYPE = np.dtype([("state", "u1"), ("mtime", "<i8"), ("size", "<i8")])
#: Free space left on the disk when a new cache is created.
RESERVE_BYTES = 1 << 30


def cache_root() -> Path:
    """Where phanet keeps data between runs: ``$PHANET_CACHE`` or ``~/.cache/phanet``."""
    return Path(os.environ.get("PHANET_CACHE", Path.home() / ".cache" / "phanet")).expanduser()


def _stamp(path: str | None) -> tuple[int, int]:
    if path is None:
        return 0, 0
    try:
        info = os.stat(path)
    except OSError:
        return -1, -1
    return info.st_mtime_ns, info.st_size


class ImageCache:
    """A file-backed uint8 array of face crops, one slot per distinct source, shared across processes.

    ``slots[i]`` is the slot of sample ``i`` of the dataset it was opened for. Each process opens
    its own handles on first use, so the object may be sent to DataLoader workers (fork or spawn).
    """

    def __init__(self, stem: Path, size: int, slots: np.ndarray, stamps: np.ndarray) -> None:
        self.stem = stem
        self.size = size
        self.slots = slots
        self.stamps = stamps
        self.count = len(stamps)
        self.writable = True
        self._pid: int | None = None

    @property
    def slot_bytes(self) -> int:
        return self.size * self.size * 3

    def _path(self, suffix: str) -> Path:
        return self.stem.with_name(self.stem.name + suffix)

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_h_")}
        state["_pid"] = None
        return state

    def _open(self) -> None:
        if self._pid == os.getpid():
            return
        shape = (self.count, self.size, self.size, 3)
        self._h_pixels = np.memmap(self._path(".pixels"), dtype=np.uint8, mode="r", shape=shape)
        self._h_state = np.memmap(self._path(".state"), dtype=STATE_DTYPE, mode="r", shape=(self.count,))
        # Open for the cache's life in this process, closed with it.
        self._h_pixel_file = open(self._path(".pixels"), "r+b", buffering=0)  # noqa: SIM115
        self._h_state_file = open(self._path(".state"), "r+b", buffering=0)  # noqa: SIM115
        self._pid = os.getpid()

    def state(self, slots: np.ndarray) -> np.ndarray:
        """State of each slot (EMPTY, STORED, UNREADABLE)."""
        self._open()
        return np.asarray(self._h_state["state"][slots])

    def read(self, slots: np.ndarray) -> np.ndarray:
        """Copies of the stored images of ``slots``, uint8 (len(slots), size, size, 3)."""
        self._open()
        return np.asarray(self._h_pixels[slots])

    def store(self, slot: int, image: np.ndarray | None) -> None:
        """Store the decoded image of ``slot`` (None: the source is unreadable). A write that fails
        (e.g. a full disk) turns storing off with one warning; training goes on decoding."""
        if not self.writable:
            return
        self._open()
        record = np.zeros(1, STATE_DTYPE)
        record["state"] = UNREADABLE if image is None else STORED
        record["mtime"], record["size"] = self.stamps[slot]
        try:
            if image is not None:
                self._h_pixel_file.seek(slot * self.slot_bytes)
                self._h_pixel_file.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
            self._h_state_file.seek(slot * STATE_DTYPE.itemsize)
            self._h_state_file.write(record.tobytes())
        except OSError as exc:
            self.writable = False
            log.warning(
                "data.cache: cannot write to %s (%s); images are decoded every epoch from now on",
                self._path(".pixels"),
                exc.strerror or exc,
            )


def _sources(faces: LabeledFaces) -> tuple[np.ndarray, list[str], list[str | None]]:
    """Slot of every sample, and the key and watched file of every slot."""
    index: dict[str, int] = {}
    files: list[str | None] = []
    slots = np.empty(len(faces), dtype=np.int64)
    for i in range(len(faces)):
        key, file = faces.source(i)
        slot = index.get(key)
        if slot is None:
            slot = index[key] = len(index)
            files.append(file)
        slots[i] = slot
    return slots, list(index), files


def _create(path: Path, size: int, overwrite: bool) -> None:
    """Create ``path`` as a sparse file of ``size`` zero bytes, atomically; keep an existing one unless ``overwrite``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.ftruncate(fd, size)
        os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):  # another process (e.g. another DDP rank) made it first
                os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def open_cache(faces: LabeledFaces, size: int, folder: str | Path | None = None) -> ImageCache | None:
    """The cache of ``faces`` at ``size`` pixels in ``folder`` (default ``cache_root()/images``), created
    empty when new. Slots whose source file changed are emptied. Returns None, with a warning, when
    the folder cannot be written or the disk has no room for the whole dataset."""
    folder = Path(folder).expanduser() if folder else cache_root() / "images"
    slots, keys, files = _sources(faces)
    digest = hashlib.sha256(f"{PREPROCESS_VERSION}\n{size}\n".encode() + "\n".join(keys).encode()).hexdigest()[:20]
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in faces.name)[:40] or "data"
    stem = folder / f"{name}-{size}px-{digest}"
    count = len(keys)
    stamps = np.array([_stamp(f) for f in files], dtype=np.int64).reshape(count, 2)
    cache = ImageCache(stem, size, slots, stamps)
    pixels, state = cache._path(".pixels"), cache._path(".state")
    pixel_bytes = count * cache.slot_bytes
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fresh = not (pixels.is_file() and pixels.stat().st_size == pixel_bytes)
        if fresh:
            free = shutil.disk_usage(folder).free
            if free < pixel_bytes + RESERVE_BYTES:
                log.warning(
                    "data.cache: %d images at %d px need %.1f GB in %s, %.1f GB are free; images are "
                    "decoded every epoch (set data.cache_dir to a larger disk)",
                    count,
                    size,
                    pixel_bytes / 1e9,
                    folder,
                    free / 1e9,
                )
                return None
            _create(pixels, pixel_bytes, overwrite=True)
        _create(state, count * STATE_DTYPE.itemsize, overwrite=fresh)
        cache._open()
        stored = np.asarray(cache._h_state)
        changed = np.flatnonzero(
            (stored["state"] != EMPTY) & ((stored["mtime"] != stamps[:, 0]) | (stored["size"] != stamps[:, 1]))
        )
        if len(changed):
            log.info("data.cache: %d source files changed since they were cached; decoding them again", len(changed))
            empty = np.zeros(1, STATE_DTYPE).tobytes()
            for slot in changed:
                cache._h_state_file.seek(int(slot) * STATE_DTYPE.itemsize)
                cache._h_state_file.write(empty)
        description = {
            "dataset": faces.name,
            "root": str(faces.root) if faces.root else None,
            "size": size,
            "slots": count,
            "samples": len(faces),
            "preprocess_version": PREPROCESS_VERSION,
        }
        info = cache._path(".json")
        if not info.exists():
            write_json(info, description)
    except OSError as exc:
        log.warning("data.cache: cannot use %s (%s); images are decoded every epoch", folder, exc.strerror or exc)
        return None
    except PhanetError as exc:  # the description could not be written
        log.warning("data.cache: %s; images are decoded every epoch", exc)
        return None
    return cache
