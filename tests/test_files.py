"""Reading only regular files, reading small files within a limit, and locks that a removed file
cannot fool."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from phanet.data.io import read_image
from phanet.errors import PhanetError, UnreadableImage
from phanet.files import FileLock, NotAFile, open_regular, read_limited, size_text


def _photo(path: Path) -> Path:
    Image.new("RGB", (48, 32), (120, 80, 60)).save(path, format="PNG")
    return path


def test_only_regular_files_are_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "folder.png").mkdir()
    _photo(tmp_path / "plain.png")
    for name, kind in (("pipe.png", "a named pipe (FIFO)"), ("zero.png", "a character device"), ("folder.png", "a folder")):
        with pytest.raises(NotAFile, match=rf"{name}: {re.escape(kind)}, not a regular file$"):
            open_regular(tmp_path / name)
        with pytest.raises(UnreadableImage, match=rf"{name}: {re.escape(kind)}, not a regular file$"):
            read_image(tmp_path / name)
    with open_regular(tmp_path / "plain.png") as handle:
        assert handle.read(4) == b"\x89PNG"
    assert read_image(tmp_path / "plain.png").shape == (32, 48, 3)


def test_a_limited_read_refuses_large_files_before_reading_them(tmp_path):
    (tmp_path / "small.yaml").write_bytes(b"a: 1\n")
    assert read_limited(tmp_path / "small.yaml", 5) == b"a: 1\n"
    with pytest.raises(PhanetError, match=r"small.yaml: 5 bytes, more than a config may hold \(4 bytes\)$"):
        read_limited(tmp_path / "small.yaml", 4, "config")
    with pytest.raises(NotAFile, match="a character device"):
        read_limited("/dev/zero", 1000)


def test_sizes_are_written_in_words():
    assert [size_text(n) for n in (0, 999, 1000, 1_500_000, 6.7e9, 3e15)] == [
        "0 bytes",
        "999 bytes",
        "1 kB",
        "1.5 MB",
        "6.7 GB",
        "3e+03 TB",
    ]


def test_a_lock_is_exclusive_and_a_removed_lock_file_cannot_be_held(tmp_path):
    path = tmp_path / "run" / ".lock"
    first, second, third = FileLock(path), FileLock(path), FileLock(path)
    assert first.acquire() and first.acquire()  # taking it twice is holding it
    assert not second.acquire() and second.fd is None
    # A process that opened the file just before its holder removed it must not lock that orphan.
    early = os.open(path, os.O_RDWR)
    first.release(remove=True)
    assert not path.exists()
    assert third.acquire() and path.exists()
    fcntl.flock(early, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the orphan is free, and nobody sees it
    os.close(early)
    assert not second.acquire()  # the file at the path is held by ``third``
    third.release(remove=True)
    assert second.acquire()
    second.release()
    assert path.exists()  # released without ``remove``: kept


def test_a_lock_on_a_special_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(NotAFile, match="a named pipe"):
        FileLock(tmp_path / "pipe").acquire()
