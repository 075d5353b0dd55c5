"""One tiny trained checkpoint shared by the prediction tests, and test pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, tiny_overrides
from phanet.config import load_config
from phanet.training.run import train
from tiny_data import EXPRESSIONS, POSES


def tiny_checkpoint(tmp_path_factory, manifest: Path) -> Path:
    """Train the tiny model once per test session (every prediction test module asks for the same one)."""
    run = tmp_path_factory.getbasetemp() / "predict-checkpoint"
    best = run / "checkpoints" / "best.ckpt"
    if not best.is_file():
        train(load_config("demo", tiny_overrides(manifest, run, "train.epochs=2")), progress=False)
    return best


def untrained_checkpoint(path: Path, *overrides: str) -> Path:
    """A checkpoint of an untrained tiny network (classes of :mod:`tiny_data`), laid out as ``phanet
    train`` writes it: for tests of what surrounds the network, at no training cost."""
    import torch

    from phanet.training.module import PhaNetModule

    torch.manual_seed(0)
    config = load_config("demo", [*TINY, *overrides]).to_dict()
    module = PhaNetModule(config, EXPRESSIONS, POSES)
    torch.save(
        {"hyper_parameters": {"config": config, "expressions": EXPRESSIONS, "poses": POSES}, "state_dict": module.state_dict()},
        path,
    )
    return path


def astronaut_path() -> Path:
    """scikit-image's astronaut.png: a real photograph (Eileen Collins, 512 x 512) shipped with the package."""
    data = pytest.importorskip("skimage.data")
    path = Path(data.__file__).parent / "astronaut.png"
    if not path.is_file():
        pytest.skip("scikit-image ships without astronaut.png")
    return path


def astronaut() -> np.ndarray:
    from phanet.data.io import read_image

    return read_image(astronaut_path())


@pytest.fixture(scope="module")
def isolated_threads():
    """PyTorch on one thread during the module, and OpenCV's thread pool restarted after it.

    On a CPU shared with other work, PyTorch's OpenMP threads wait for each other at every one of
    the network's many small operations, which makes these tests many times slower. OpenCV's idle
    pool threads (left by face detection) sleep on a condition variable; a process forked later
    that reconfigures the pool (the synth generator's workers do) inherits that variable and
    hangs, so the pool is restarted empty before the next module runs.
    """
    import cv2
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    cv2.setNumThreads(threads)
