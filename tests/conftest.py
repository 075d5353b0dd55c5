from __future__ import annotations

import os
import sys
from pathlib import Path

# Before PyTorch loads OpenMP, here and in the commands the tests start: threads that spin while they
# wait take the cores from the other threads (a two-process DDP run has four on two cores), and on a
# machine shared with other work every small operation waits for a thread that is not running.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

#: The repository's root, for the files tests read beside the package (README, benchmark scripts, fixtures).
REPO = Path(__file__).resolve().parents[1]

# The tests in every folder import the test helpers beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from tiny_data import make_tiny_dataset  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Rendered data and decoded-image caches of the tests go to a temporary folder, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHANET_CACHE", str(tmp_path_factory.mktemp("phanet-cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def _one_training_thread():
    """The tests' trainings run on one PyTorch thread, as ``isolated_threads`` has the predictions do.

    Their networks are so small that a second thread spends more time waiting for the first than
    computing (on 2 shared cores, one thread trains them in under a quarter of the CPU time). The thread choice
    itself stays under test: ``cpu_thread_callbacks`` still runs and ``AdaptiveThreads`` is tested
    on simulated step times in ``test_input_pipeline.py``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("phanet.training.run.usable_cpus", lambda: 1)
        yield


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory) -> Path:
    """A small learnable manifest dataset: 8 subjects x 4 expressions x 3 poses x 2 variants, 32 px."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"), subjects=8, size=32, variants=2)


#: Overrides that make any preset train in seconds on the tiny dataset.
TINY = [
    "model.image_size=32",
    "model.input_size=null",
    "model.backbone.depth=10",
    "model.backbone.growth_rate=6",
    "model.backbone.stem_pool=false",
    "model.attention.grid=2",
    "model.attention.hidden=16",
    "model.sal_hidden=8",
    "model.head_hidden=32",
    "train.batch_size=16",
    "train.pan_init.steps=3",
    # a few steps per epoch: an average with the demo's decay would still be the first step's weights
    # (the averaging has tests of its own)
    "train.ema=0",
    "data.split.val=2",
    "data.split.test=2",
    "data.cache=true",
    "data.num_workers=0",
]


def tiny_overrides(manifest: Path, out: Path, *extra: str) -> list[str]:
    return ["data.dataset=manifest", f"data.root={manifest}", "data.options={}", f"out={out}", *TINY, *extra]
