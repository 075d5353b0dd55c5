from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_data import make_tiny_dataset  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Rendered data and decoded-image caches of the tests go to a temporary folder, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHANET_CACHE", str(tmp_path_factory.mktemp("phanet-cache")))
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
    "data.split.val=2",
    "data.split.test=2",
    "data.cache=true",
    "data.num_workers=0",
]


def tiny_overrides(manifest: Path, out: Path, *extra: str) -> list[str]:
    return ["data.dataset=manifest", f"data.root={manifest}", "data.options={}", f"out={out}", *TINY, *extra]
