"""Networks too large for the machine are refused before anything is allocated: the estimate counts the
parameters exactly and the feature maps as the network makes them, and every command that builds a
network (train, predict, evaluate, export) says so in one line, in bounded memory."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import pytest
import torch
from torch import nn

import phanet.runtime
from conftest import TINY, tiny_overrides
from phanet.checkpoints import check_memory
from phanet.config import load_config
from phanet.errors import PhanetError, PhanetWarning
from phanet.models import create_model
from phanet.models.densenet import DenseNet
from phanet.models.memory import FLOAT, MemoryEstimate, estimate_memory
from phanet.runtime import bounded_by_cpus
from predict_helpers import untrained_checkpoint
from tiny_data import EXPRESSIONS, POSES

#: Address space of the processes given a huge network: far below what building one takes.
LIMIT_BYTES = 3 * 1024**3


@pytest.mark.parametrize(
    "arch, kwargs",
    [
        ("phanet", {"image_size": 32, "backbone": {"depth": 10, "growth_rate": 6}}),
        ("phanet_n_s1_h_s2", {"image_size": 32, "input_size": 64, "backbone": {"depth": 7, "growth_rate": 4}}),
        ("densenet", {"image_size": 32, "backbone": {"depth": 10, "growth_rate": 6, "stem": "cifar"}}),
        ("vgg19", {"image_size": 32, "width": 0.25, "hidden": 16}),
        ("hog_fc", {"image_size": 32, "hidden": 16}),
    ],
)
def test_the_estimate_counts_what_the_built_network_holds(arch, kwargs):
    def build():
        return create_model(arch, expressions=EXPRESSIONS, poses=POSES, **kwargs)

    estimate = estimate_memory(build, kwargs["image_size"], kwargs.get("input_size"))
    network = build()
    assert estimate.parameters == sum(p.numel() for p in network.parameters()) + sum(b.numel() for b in network.buffers())
    # The feature maps: every layer's output when the real trunks run on one real image.
    made = []
    hooks = [
        m.register_forward_hook(lambda module, inputs, output: made.append(output.numel()))
        for trunk in [m for m in network.modules() if isinstance(m, DenseNet)] or [getattr(network, "features", nn.Sequential())]
        for m in trunk.modules()
        if next(m.children(), None) is None
    ]
    side = kwargs["image_size"]
    with torch.no_grad():
        for trunk in [m for m in network.modules() if isinstance(m, DenseNet)]:
            trunk.forward_features(torch.rand(1, 3, side, side))
        if arch == "vgg19":
            network.features(torch.rand(1, 3, side, side))
    for hook in hooks:
        hook.remove()
    assert estimate.feature_values == 3 * (kwargs.get("input_size") or side) ** 2 + sum(made)


def test_bytes_grow_with_the_batch_and_training_keeps_gradients_and_moments():
    estimate = MemoryEstimate(parameters=1000, feature_values=10)
    assert estimate.bytes(1, False) == FLOAT * (1000 + 10)
    assert estimate.bytes(8, False) == FLOAT * (1000 + 80)
    assert estimate.bytes(8, True) == FLOAT * (4 * 1000 + 2 * 80)


@pytest.mark.parametrize(
    "override, culprit",
    [
        ("model.backbone.growth_rate=4096", "model.backbone.growth_rate 4096"),
        ("model.backbone.depth=997", "model.backbone.depth 997"),
        ("model.image_size=4096", "model.image_size 4096"),
        ("model.backbone.init_channels=4096", "model.backbone.init_channels 4096"),
    ],
)
def test_networks_that_do_not_fit_are_refused_naming_their_sizes(override, culprit):
    config = load_config("demo", [override, "model.input_size=null"])
    started = time.monotonic()
    with pytest.raises(PhanetError) as raised:
        check_memory(config, EXPRESSIONS, POSES, batch=32, training=True, available=8 * 10**9)
    assert time.monotonic() - started < 20
    message = str(raised.value)
    assert message.startswith("the network needs about ") and "to train on batches of 32" in message
    assert "more than the 8 GB this machine has free" in message and culprit in message
    assert message.endswith("or train.batch_size (32)")
    assert check_memory(load_config("demo"), EXPRESSIONS, POSES, batch=32, training=True, available=8 * 10**9).parameters > 0


def _bounded(argv: list[str]) -> subprocess.CompletedProcess:
    code = (
        f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({LIMIT_BYTES}, {LIMIT_BYTES})); "
        "from phanet.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_training_a_network_too_large_is_one_line_before_the_folder_is_written(tiny_manifest, tmp_path):
    out = tmp_path / "run"
    ended = _bounded(["train", "--config", "demo", *tiny_overrides(tiny_manifest, out, "model.backbone.growth_rate=4096")])
    assert ended.returncode == 2 and "Traceback" not in ended.stderr, ended.stderr[-3000:]
    assert len(ended.stderr.strip().splitlines()) == 1 and "the network needs about" in ended.stderr
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_a_checkpoint_whose_config_is_too_large_is_refused_by_every_command(command, tmp_path):
    """A checkpoint that says its network is huge (its weights need not be): refused from its config."""
    path = untrained_checkpoint(tmp_path / "small.ckpt")
    payload = torch.load(path, weights_only=True)
    payload["hyper_parameters"]["config"]["model"]["backbone"]["depth"] = 997
    payload["hyper_parameters"]["config"]["model"]["image_size"] = 1024
    torch.save(payload, tmp_path / "huge.ckpt")
    image = tmp_path / "face.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    argv = {
        "predict": ["predict", str(image), "--checkpoint", str(tmp_path / "huge.ckpt"), "--no-progress"],
        "evaluate": ["evaluate", "--checkpoint", str(tmp_path / "huge.ckpt"), "--data", str(image.parent), "--dataset", "folder"],
        "export": ["export", "--checkpoint", str(tmp_path / "huge.ckpt"), "--onnx", str(tmp_path / "huge.onnx")],
    }[command]
    ended = _bounded(argv)
    assert ended.returncode == 2 and "Traceback" not in ended.stderr, ended.stderr[-3000:]
    line = ended.stderr.strip().splitlines()[-1]
    assert "the network needs about" in line and "model.backbone.depth 997" in line, line
    assert not (tmp_path / "huge.onnx").exists()


def test_threads_and_loader_processes_are_bounded_by_the_cores(monkeypatch):
    monkeypatch.setattr(phanet.runtime, "usable_cpus", lambda: 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bounded_by_cpus(2, "train.threads") == 2
        assert not caught
        assert bounded_by_cpus(4096, "train.threads") == 2
        assert bounded_by_cpus(1024, "data.num_workers") == 2
    assert [str(w.message) for w in caught] == [
        "train.threads 4096 is more than the 2 CPU cores this process may use; using 2",
        "data.num_workers 1024 is more than the 2 CPU cores this process may use; using 2",
    ]
    assert all(issubclass(w.category, PhanetWarning) for w in caught)


@pytest.mark.slow
def test_a_training_asking_for_thousands_of_threads_and_workers_runs_on_the_cores(tiny_manifest, tmp_path):
    out = tmp_path / "run"
    overrides = tiny_overrides(tiny_manifest, out, "train.epochs=1", "train.threads=4096", "data.num_workers=1024")
    ended = _bounded(["train", "--config", "demo", *overrides, "--no-progress"])
    assert ended.returncode == 0 and "Traceback" not in ended.stderr, ended.stderr[-3000:]
    assert "phanet: warning: train.threads 4096 is more than the" in ended.stderr
    assert "phanet: warning: data.num_workers 1024 is more than the" in ended.stderr
    assert (out / "checkpoints" / "last.ckpt").exists()


def test_the_tiny_test_config_fits_anywhere():
    config = load_config("demo", [*TINY, "data.dataset=manifest", "data.root=x"])
    assert check_memory(config, EXPRESSIONS, POSES, 16, True, available=100 * 10**6).bytes(16, True) < 100 * 10**6
