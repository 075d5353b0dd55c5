"""Checkpoint files made to take the machine are refused from the archive's directory, before anything is
inflated or read: a deflated tensor of gigabytes, an archive larger than the free memory, a named pipe."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

import phanet.checkpoints
from phanet.checkpoints import check_archive, read_checkpoint
from phanet.cli import main
from phanet.errors import PhanetError
from predict_helpers import untrained_checkpoint


def deflated_checkpoint(path: Path, numel: int) -> Path:
    """A checkpoint whose one tensor of ``numel`` zeros (float32) is stored deflated: 2 GiB of zeros
    take 9 MB. ``torch.save`` never compresses; the archive is rewritten with the tensor's size patched
    into its pickle (``BININT1 7`` → ``BININT numel``)."""
    small = path.with_suffix(".small")
    torch.save(
        {"hyper_parameters": {"config": {}, "expressions": ["A"], "poses": []}, "state_dict": {"w": torch.zeros(7)}}, small
    )
    size = b"J" + struct.pack("<i", numel)
    with zipfile.ZipFile(small) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("/data/0"):
                entry = zipfile.ZipInfo(info.filename)
                entry.compress_type = zipfile.ZIP_DEFLATED
                with target.open(entry, "w", force_zip64=True) as handle:
                    chunk = bytes(min(1 << 24, numel * 4))
                    for _ in range(numel * 4 // len(chunk)):
                        handle.write(chunk)
                continue
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"K\x07t", size + b"t").replace(b"K\x07\x85", size + b"\x85")
            target.writestr(info, data)
    small.unlink()
    return path


def test_an_entry_that_inflates_a_hundred_times_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    path = deflated_checkpoint(tmp_path / "bomb.ckpt", 2**24)  # 64 MiB of zeros in 65 kB
    loads = []
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: loads.append(args))
    with pytest.raises(PhanetError) as raised:
        read_checkpoint(path, "checkpoint")
    assert str(raised.value).startswith(f"checkpoint: {path} holds 'bomb/data/0', ")
    assert str(raised.value).endswith(
        " that would inflate to 67.1 MB; a checkpoint's weights do not compress like that (refused before inflating it)"
    )
    assert loads == []


def test_an_archive_larger_than_the_free_memory_is_refused(tmp_path, monkeypatch):
    path = untrained_checkpoint(tmp_path / "tiny.ckpt")
    check_archive(path, "checkpoint")
    monkeypatch.setattr(phanet.checkpoints, "available_memory", lambda: 1000)
    with pytest.raises(PhanetError, match=r"^checkpoint: .*tiny.ckpt holds [\d.]+ kB, more than the 1 kB this machine has free$"):
        read_checkpoint(path, "checkpoint")


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_checkpoint_that_is_a_pipe_or_a_device_is_refused_unread(special, tmp_path):
    path = tmp_path / "best.ckpt"
    if special == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(special)
    kind = "a named pipe (FIFO)" if special == "fifo" else "a character device"
    with pytest.raises(
        PhanetError, match=rf"^checkpoint: {path}: {kind.replace('(', '.').replace(')', '.')}, not a regular file$"
    ):
        read_checkpoint(path, "checkpoint")


def test_a_file_that_is_not_an_archive_is_left_to_torch_load(tmp_path):
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    check_archive(tmp_path / "text.ckpt", "checkpoint")
    with pytest.raises(PhanetError, match=r"text.ckpt is not a readable checkpoint \(\w+\)$"):
        read_checkpoint(tmp_path / "text.ckpt", "checkpoint")


@pytest.mark.slow
def test_a_two_gib_deflated_tensor_is_refused_in_bounded_memory(tmp_path):
    path = deflated_checkpoint(tmp_path / "bomb.ckpt", 2**29)
    assert path.stat().st_size < 20_000_000
    code = (
        "import resource, sys; from phanet.cli import main; "
        f"status = main(['export', '--checkpoint', {str(path)!r}, '--onnx', {str(tmp_path / 'b.onnx')!r}]); "
        "print(status, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    ended = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    status, peak_kb = ended.stdout.split()
    assert status == "2" and "refused before inflating it" in ended.stderr, ended.stderr
    assert int(peak_kb) < 1_500_000  # the tensor alone is 2.1 GB


@pytest.mark.parametrize("config", [[1, 2], None, "paper"])
def test_a_checkpoint_whose_config_is_not_a_mapping_is_refused(config, tmp_path):
    path = untrained_checkpoint(tmp_path / "tiny.ckpt")
    payload = torch.load(path, weights_only=True)
    payload["hyper_parameters"]["config"] = config
    torch.save(payload, path)
    with pytest.raises(PhanetError, match=r"tiny.ckpt is not a phanet checkpoint \(no config and class lists inside\)$"):
        read_checkpoint(path, "checkpoint")


def test_class_names_with_line_breaks_are_refused(tmp_path):
    path = untrained_checkpoint(tmp_path / "tiny.ckpt")
    payload = torch.load(path, weights_only=True)
    payload["hyper_parameters"]["expressions"] = ["AN", "HA\nx", "NE", "SU"]
    torch.save(payload, path)
    with pytest.raises(PhanetError, match=r"tiny.ckpt: expressions: expected a list of class names, got \['AN', 'HA\\nx'"):
        read_checkpoint(path, "checkpoint")


@pytest.mark.parametrize("special", ["fifo", "/dev/null"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_a_checkpoint_that_is_a_pipe_or_a_device_is_named_so_by_every_command(command, special, tmp_path, capsys):
    path = tmp_path / "best.ckpt"
    if special == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(special)
    Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
    argv = {
        "predict": ["predict", str(tmp_path / "face.png"), "--no-progress"],
        "evaluate": ["evaluate", "--no-progress"],
        "export": ["export", "--onnx", str(tmp_path / "best.onnx")],
    }[command]
    assert main([*argv, "--checkpoint", str(path)]) == 2
    kind = "a named pipe (FIFO)" if special == "fifo" else "a character device"
    assert capsys.readouterr().err.strip() == f"phanet {command}: error: --checkpoint: {path}: {kind}, not a regular file"


def test_a_plain_pickle_is_refused_with_one_line_and_no_warning_from_the_unpickler(tmp_path):
    """A pickle written by ``pickle.dump`` rather than ``torch.save``: PyTorch's unpickler warns about its
    protocol on the way to refusing it; the refusal is the one line the user sees, and nothing in it runs."""
    import pickle
    import warnings

    class Runs:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / "ran"),))

    (tmp_path / "plain.ckpt").write_bytes(pickle.dumps({"hyper_parameters": Runs()}, protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PhanetError, match=r"plain.ckpt is not a readable checkpoint \(UnpicklingError\)$"):
            read_checkpoint(tmp_path / "plain.ckpt", "checkpoint")
    assert [str(w.message) for w in caught] == [] and not (tmp_path / "ran").exists()
