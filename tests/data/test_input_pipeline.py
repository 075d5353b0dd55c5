"""The input pipeline: on-device augmentation, the decoded-image cache, mixed precision, compiled steps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import TINY
from phanet.config import LossConfig, load_config
from phanet.data import cache as cache_module
from phanet.data.cache import EMPTY, STORED, UNREADABLE, open_cache
from phanet.data.datasets import FaceDataset, collate
from phanet.data.records import MISSING
from phanet.data.registry import load_dataset
from phanet.data.transforms import augment, check_flip, recolour, to_network_input
from phanet.losses import phanet_loss, ranking_loss
from phanet.models.attention import crop_and_zoom
from phanet.models.phanet import PhaNet


def _cpu_jitter_then_flip(image: np.ndarray, amount: float, draws: list[float]) -> np.ndarray:
    """The transforms training used before they moved to the device: OpenCV on each uint8 image."""
    height, width = image.shape[:2]
    scale = 1.0 + amount * (2 * draws[0] - 1)
    dx, dy = amount * (2 * draws[1] - 1) * width, amount * (2 * draws[2] - 1) * height
    matrix = np.array([[scale, 0, (1 - scale) * width / 2 + dx], [0, scale, (1 - scale) * height / 2 + dy]])
    out = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out[:, ::-1] if draws[3] < 0.5 else out


def _photo(size: int = 64) -> np.ndarray:
    """A smooth test image (gradients and a disc), like a face crop, uint8 RGB."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = np.stack([200 * x + 20, 180 * y + 30, 120 + 100 * np.sin(6 * x * y)], axis=2)
    image[(x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.04] = (240, 220, 200)
    return cv2.GaussianBlur(image.astype(np.uint8), (5, 5), 1.5)


def test_device_augmentation_matches_the_cpu_transforms():
    """Scale/shift jitter and flip in one grid_sample equal OpenCV's warpAffine + flip on the same draws
    within 0.5 grey levels on average and 3 at most (OpenCV rounds to uint8 and puts the centre of the
    scaling at W/2 instead of (W − 1)/2; measured: 0.22–0.25 on average, 2.4 at most)."""
    images = np.stack([_photo() for _ in range(6)])
    torch.manual_seed(2)
    draws = torch.rand(6, 4)
    torch.manual_seed(2)
    out, _ = augment(
        to_network_input(torch.from_numpy(images)), torch.zeros(6, dtype=torch.long), 0.05, torch.zeros(1, dtype=torch.long)
    )
    device = (out.permute(0, 2, 3, 1).numpy() * 0.5 + 0.5) * 255.0
    flipped = 0
    for i in range(6):
        reference = _cpu_jitter_then_flip(images[i], 0.05, draws[i].tolist()).astype(np.float64)
        difference = np.abs(device[i] - reference)
        assert difference.mean() < 0.5 and difference.max() < 3.0, (i, difference.mean(), difference.max())
        flipped += draws[i, 3] < 0.5
    assert 0 < flipped < 6  # both branches were compared


def test_flip_mirrors_the_pose_label_and_the_image_exactly():
    poses = ["-30", "0", "30"]
    mirror = torch.tensor(check_flip(poses))
    pixels = torch.from_numpy(np.stack([_photo(32)] * 8))
    images = to_network_input(pixels)
    pose = torch.tensor([0, 1, 2, MISSING, 0, 2, 1, 0])
    torch.manual_seed(1)
    draws = torch.rand(8, 4)
    torch.manual_seed(1)
    out, new_pose = augment(images, pose, 0.0, mirror)
    flipped = draws[:, 3] < 0.5
    assert 0 < int(flipped.sum()) < 8
    assert [poses[j] for j in mirror] == ["30", "0", "-30"]
    for i in range(8):
        expected = images[i].flip(-1) if flipped[i] else images[i]
        torch.testing.assert_close(out[i], expected, atol=1e-6, rtol=0)
        if pose[i] == MISSING:
            assert new_pose[i] == MISSING
        else:
            assert new_pose[i] == (mirror[pose[i]] if flipped[i] else pose[i])


def test_recolour_scales_contrast_saturation_brightness_and_channels_by_its_draws():
    torch.manual_seed(4)
    pixels = torch.rand(6, 3, 5, 5) * 0.6 + 0.2
    images = (pixels - 0.5) / 0.5
    assert recolour(images, 0.0) is images
    strength = 0.4
    torch.manual_seed(2)
    d = torch.rand(6, 6) * 2 - 1
    torch.manual_seed(2)
    out = recolour(images, strength)
    for i in range(6):
        c, s, b = (1 + strength * d[i, k] for k in range(3))
        balance = (1 + strength / 2 * d[i, 3:]).view(3, 1, 1)
        p = pixels[i]
        p = (p - p.mean()) * c + p.mean()
        grey = p.mean(dim=0, keepdim=True)
        expected = ((grey + (p - grey) * s) * b * balance).clamp(0, 1)
        torch.testing.assert_close(out[i] * 0.5 + 0.5, expected, atol=1e-6, rtol=0)
    assert out.shape == images.shape and float(out.abs().max()) <= 1.0
    # a grey image keeps its grey under contrast and saturation: only brightness and balance act
    torch.manual_seed(2)
    flat = recolour(torch.zeros(6, 3, 4, 4), strength) * 0.5 + 0.5
    expected = 0.5 * (1 + strength * d[:, 2]).view(6, 1, 1, 1) * (1 + strength / 2 * d[:, 3:]).view(6, 3, 1, 1)
    torch.testing.assert_close(flat, expected.expand(6, 3, 4, 4))


def test_training_batches_are_augmented_and_validation_batches_are_not(tiny_manifest, tmp_path):
    from phanet.training.module import PhaNetModule

    config = load_config(
        "demo", ["data.dataset=manifest", f"data.root={tiny_manifest}", "data.options={}", *TINY, "data.jitter=0.1"]
    )
    module = PhaNetModule(config.to_dict(), ["AN", "HA", "NE", "SU"], ["-30", "0", "30"])
    faces = load_dataset("manifest", str(tiny_manifest))
    batch = FaceDataset(faces, 32).__getitems__(list(range(16)))
    plain = to_network_input(batch["pixels"])
    evaluated = module.prepare_batch(batch, train=False)
    assert torch.equal(evaluated["image"], plain) and torch.equal(evaluated["pose"], batch["pose"])
    torch.manual_seed(0)
    trained = module.prepare_batch(batch, train=True)
    assert trained["image"].shape == plain.shape and "pixels" in batch  # the loader's batch is left as it was
    assert (trained["image"] - plain).abs().mean() > 0.01


# --- decoded-image cache -----------------------------------------------------------------------


def _counting(faces, calls: list[int]):
    original = faces.load_image

    def load_image(index):
        calls.append(index)
        return original(index)

    faces.load_image = load_image
    return faces


def test_cache_decodes_each_image_once_across_epochs_and_runs(tiny_manifest, tmp_path):
    calls: list[int] = []
    faces = _counting(load_dataset("manifest", str(tiny_manifest)), calls)
    cache = open_cache(faces, 32, tmp_path)
    dataset = FaceDataset(faces, 32, cache=cache)
    first = dataset.__getitems__(list(range(len(faces))))
    assert sorted(calls) == list(range(len(faces)))
    assert len(list(tmp_path.glob("*.pixels"))) == 1 and len(list(tmp_path.glob("*.state"))) == 1
    calls.clear()
    again = dataset.__getitems__(list(range(len(faces))))
    assert calls == [] and torch.equal(first["pixels"], again["pixels"])
    # A new run (a new cache object on the same data) reads the stored pixels.
    fresh = FaceDataset(faces, 32, cache=open_cache(faces, 32, tmp_path))
    assert torch.equal(fresh.__getitems__(list(range(len(faces))))["pixels"], first["pixels"]) and calls == []
    # They are the decoded images, resized as without the cache.
    uncached = FaceDataset(faces, 32).__getitems__(list(range(len(faces))))
    assert torch.equal(uncached["pixels"], first["pixels"])
    # Another size is another cache file.
    open_cache(faces, 16, tmp_path)
    assert len(list(tmp_path.glob("*.pixels"))) == 2


def test_cache_decodes_again_what_changed_on_disk(tiny_manifest, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    table = pd.read_csv(tiny_manifest)
    for name in table["path"]:
        (root / name).write_bytes((tiny_manifest.parent / name).read_bytes())
    table.to_csv(root / "manifest.csv", index=False)
    faces = load_dataset("manifest", str(root / "manifest.csv"))
    dataset = FaceDataset(faces, 32, cache=open_cache(faces, 32, tmp_path / "cache"))
    before = dataset.__getitems__([0, 1])["pixels"]
    target = faces.image_path(faces.samples[1])
    cv2.imwrite(str(target), np.full((40, 40, 3), 7, np.uint8))
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    calls: list[int] = []
    _counting(faces, calls)
    dataset = FaceDataset(faces, 32, cache=open_cache(faces, 32, tmp_path / "cache"))
    after = dataset.__getitems__([0, 1])["pixels"]
    assert calls == [1]
    assert torch.equal(after[0], before[0]) and int(after[1].max()) == 7


def test_cache_is_filled_by_workers_and_shared(tiny_manifest, tmp_path):
    faces = load_dataset("manifest", str(tiny_manifest))
    cache = open_cache(faces, 32, tmp_path)
    dataset = FaceDataset(faces, 32, cache=cache)
    loader = DataLoader(dataset, batch_size=16, num_workers=2, collate_fn=collate)
    from_workers = torch.cat([batch["pixels"] for batch in loader])
    # The workers' writes are visible here: every slot is stored, and equals a decode in this process.
    assert (cache.state(cache.slots) == STORED).all()
    calls: list[int] = []
    _counting(faces, calls)
    assert torch.equal(dataset.__getitems__(list(range(len(faces))))["pixels"], from_workers) and calls == []
    assert torch.equal(FaceDataset(faces, 32).__getitems__(list(range(len(faces))))["pixels"], from_workers)


def test_repeated_rows_are_counted_once_and_cached_once(tiny_manifest, tmp_path):
    table = pd.read_csv(tiny_manifest)
    table["path"] = [str(tiny_manifest.parent / p) for p in table["path"]]
    pd.concat([table, table]).to_csv(tmp_path / "manifest.csv", index=False)
    faces = load_dataset("manifest", str(tmp_path / "manifest.csv"))
    assert len(faces) == len(table) and len(faces.skipped) == len(table)
    assert faces.skipped[0][1] == "duplicate of row 2"
    cache = open_cache(faces, 32, tmp_path / "cache")
    assert cache.count == len(table)


@pytest.mark.slow
def test_cache_survives_a_kill_while_filling(tiny_manifest, tmp_path):
    """A process killed (SIGKILL) in the middle of filling leaves no slot marked stored with wrong pixels."""
    script = textwrap.dedent(f"""
        import sys, time
        from phanet.data.cache import open_cache
        from phanet.data.registry import load_dataset
        from phanet.data.datasets import FaceDataset
        faces = load_dataset("manifest", {str(tiny_manifest)!r})
        original = faces.load_image
        def slow(index):
            time.sleep(0.02)
            return original(index)
        faces.load_image = slow
        dataset = FaceDataset(faces, 32, cache=open_cache(faces, 32, {str(tmp_path)!r}))
        for i in range(len(faces)):
            dataset[i]
            print(i, flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if int(line) >= 40:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    faces = load_dataset("manifest", str(tiny_manifest))
    cache = open_cache(faces, 32, tmp_path)
    state = cache.state(cache.slots)
    stored = np.flatnonzero(state == STORED)
    assert 40 <= len(stored) < len(faces) and (state[len(stored) :] == EMPTY).all()
    reference = FaceDataset(faces, 32).__getitems__(list(range(len(faces))))["pixels"]
    cached = FaceDataset(faces, 32, cache=cache).__getitems__(list(range(len(faces))))["pixels"]
    assert torch.equal(cached, reference)


def test_unreadable_images_are_remembered_and_counted_every_epoch(tiny_manifest, tmp_path):
    table = pd.read_csv(tiny_manifest)
    table["path"] = [str(tiny_manifest.parent / p) for p in table["path"]]
    (tmp_path / "broken.png").write_bytes(b"not an image")
    table.loc[3, "path"] = str(tmp_path / "broken.png")
    table.to_csv(tmp_path / "manifest.csv", index=False)
    faces = load_dataset("manifest", str(tmp_path / "manifest.csv"))
    calls: list[int] = []
    _counting(faces, calls)
    cache = open_cache(faces, 32, tmp_path / "cache")
    dataset = FaceDataset(faces, 32, cache=cache)
    for _ in range(2):
        batch = dataset.__getitems__(list(range(8)))
        assert int(batch["skipped"]) == 1 and len(batch["pixels"]) == 7 and 3 not in batch["index"].tolist()
    assert calls.count(3) == 1 and cache.state(cache.slots[[3]])[0] == UNREADABLE


def test_a_full_disk_turns_the_cache_off_and_training_data_stay_right(tiny_manifest, tmp_path, monkeypatch, caplog):
    faces = load_dataset("manifest", str(tiny_manifest))
    cache = open_cache(faces, 32, tmp_path)
    dataset = FaceDataset(faces, 32, cache=cache)
    dataset.__getitems__([0, 1])
    cache._open()

    class Full:
        def seek(self, offset):
            pass

        def write(self, data):
            raise OSError(28, "No space left on device")

    cache._h_pixel_file = Full()
    batch = dataset.__getitems__(list(range(2, 12)))
    assert not cache.writable and "No space left" in caplog.text
    assert torch.equal(batch["pixels"], FaceDataset(faces, 32).__getitems__(list(range(2, 12)))["pixels"])
    assert (cache.state(cache.slots[2:12]) == EMPTY).all()
    # No room for a new cache at all: one warning, no cache.
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda path: type("U", (), {"free": 10})())
    assert open_cache(faces, 48, tmp_path) is None and "need" in caplog.text


def test_the_data_module_shares_one_cache_between_its_splits(tiny_manifest, tmp_path, monkeypatch):
    from phanet.data.datasets import FaceDataModule

    monkeypatch.setenv("PHANET_CACHE", str(tmp_path))
    config = load_config("demo", ["data.dataset=manifest", f"data.root={tiny_manifest}", "data.options={}", *TINY])
    datamodule = FaceDataModule(config)
    datamodule.prepare()
    parts = [datamodule.datasets[p] for p in ("train", "val", "test")]
    assert all(d.cache is datamodule.cache for d in parts) and len(list((tmp_path / "images").glob("*.pixels"))) == 1
    assert sum(len(d) for d in parts) == len(datamodule.faces)
    without = FaceDataModule(
        load_config("demo", ["data.dataset=manifest", f"data.root={tiny_manifest}", "data.options={}", *TINY, "data.cache=false"])
    )
    without.prepare()
    assert without.cache is None


# --- mixed precision and compiled steps --------------------------------------------------------


def _tiny_phanet() -> PhaNet:
    torch.manual_seed(0)
    return PhaNet(
        list("ABCD"),
        ["-30", "0", "30"],
        32,
        input_size=64,
        backbone={"depth": 10, "growth_rate": 6, "stem_pool": False},
        attention={"hidden": 16, "grid": 2},
        sal_hidden=8,
        head_hidden=32,
    )


def test_bf16_autocast_keeps_losses_squares_and_task_weights_right():
    """Under bfloat16 autocast (CPU here; the same code path on CUDA) the loss agrees with float32
    within 2 %, the squares within 0.002 of the side, and λe + λp = 1, λe ≥ λp hold exactly."""
    model = _tiny_phanet().train()
    images = torch.rand(8, 3, 64, 64) * 2 - 1
    expression, pose = torch.tensor([0, 1, 2, 3] * 2), torch.tensor([0, 1, 2, MISSING] * 2)
    with torch.no_grad():
        model.pans[0].fc2.bias.copy_(torch.tensor([0.3, -0.4, 0.2]))
        model.pans[1].fc2.bias.copy_(torch.tensor([-0.2, 0.5, -0.1]))
    reference = model(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(images)
    for name in ("boxes", "scale_weights", "task_weights"):
        assert getattr(mixed, name).dtype == torch.float32, name
    torch.testing.assert_close(mixed.boxes, reference.boxes, atol=2e-3, rtol=0)
    lam = mixed.task_weights
    assert torch.equal(lam.sum(1), torch.ones(8)) and bool((lam[:, 0] >= lam[:, 1]).all())
    total32 = phanet_loss(reference, expression, pose, LossConfig()).total
    total16 = phanet_loss(mixed, expression, pose, LossConfig()).total
    assert total16.dtype == torch.float32 and abs(float(total16.detach()) / float(total32.detach()) - 1) < 0.02
    total16.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_crop_and_zoom_and_ranking_loss_under_bf16():
    images = torch.rand(4, 3, 64, 64)
    boxes = torch.tensor([[0.3, 0.6, 0.2], [0.5, 0.5, 0.25], [0.7, 0.3, 0.15], [0.41, 0.57, 0.3]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        crops = crop_and_zoom(images, boxes, 32)
    torch.testing.assert_close(crops, crop_and_zoom(images, boxes, 32), atol=1e-5, rtol=0)
    coarse, fine = torch.randn(4, 7), torch.randn(4, 7)
    target = torch.tensor([0, 3, 6, 2])
    exact = ranking_loss(coarse, fine, target)
    torch.testing.assert_close(ranking_loss(coarse.bfloat16(), fine.bfloat16(), target).float(), exact, atol=0.01, rtol=0)


def test_auto_precision_lowers_only_the_backbones_of_networks_with_crop_attention(monkeypatch):
    """``train.precision: auto``: where the CPU has native bfloat16, ``bf16-backbones`` for networks whose
    squares learn through crop-and-zoom and bf16 mixed for the others; 32 bits elsewhere. An explicit
    value passes through."""
    from phanet import runtime
    from phanet.experiments import baseline_config
    from phanet.training.run import training_precision

    config = load_config("demo", ["train.accelerator=cpu"])
    for native, squares, other in ((True, "bf16-backbones", "bf16-mixed"), (False, "32-true", "32-true")):
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda native=native: native)
        assert training_precision(config) == squares
        assert training_precision(baseline_config(config, "densenet")) == other
        assert training_precision(load_config("demo", ["train.accelerator=cpu", "model.scales=[N_S1]"])) == other
        assert training_precision(load_config("demo", ["train.accelerator=cpu", "model.scales=[H_S3]"])) == squares
        assert training_precision(load_config("demo", ["train.precision=bf16-mixed"])) == "bf16-mixed"
        assert training_precision(load_config("demo", ["train.precision=32-true"])) == "32-true"


@pytest.mark.slow
def test_compiled_training_step_matches_eager():
    pytest.importorskip("torch._inductor")
    model = _tiny_phanet().eval()
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    try:
        compiled = torch.compile(model)
        out = compiled(images)
    except Exception as exc:  # noqa: BLE001 - no C++ compiler or unsupported platform
        pytest.skip(f"torch.compile does not work on this machine: {type(exc).__name__}")
    reference = model(images)
    torch.testing.assert_close(out.expression_logits, reference.expression_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.boxes, reference.boxes, atol=1e-5, rtol=0)


# --- CPU threads on a shared machine -----------------------------------------------------------


class _SimulatedThreads:
    """Drives AdaptiveThreads with step times from a cost function of the thread count."""

    def __init__(self, cpus: int, monkeypatch):
        from phanet.training import callbacks

        self.clock = 0.0
        monkeypatch.setattr(callbacks.time, "perf_counter", lambda: self.clock)
        self.tuner = callbacks.AdaptiveThreads(cpus)
        self.threads = cpus
        self.tuner._set = self._set
        self.history: list[int] = []

    def _set(self, threads: int) -> None:
        self.threads = threads

    def steps(self, count: int, seconds_per_image) -> None:
        batch = {"expression": torch.zeros(32)}
        for _ in range(count):
            self.tuner.on_train_batch_start(None, None, batch, 0)
            self.clock += 32 * seconds_per_image(self.threads)
            self.tuner.on_train_batch_end(type("T", (), {"global_step": 0})(), None, None, batch, 0)
            self.history.append(self.threads)


def test_adaptive_threads_follow_the_load(monkeypatch):
    quiet = {2: 0.018, 1: 0.030}.__getitem__  # measured: 55 and 33 img/s
    shared = {2: 0.065, 1: 0.029}.__getitem__  # a busy loop on the other core: 15 and 35 img/s
    sim = _SimulatedThreads(2, monkeypatch)
    sim.steps(400, quiet)
    assert sim.tuner.threads == 2 and sim.history[-1] == 2
    # A probe is a switch to one thread; the first comes right after the first step.
    probes = (sim.history[0] == 1) + sum(1 for a, b in zip(sim.history, sim.history[1:]) if a == 2 and b == 1)
    assert 2 <= probes <= 6  # 20, 40, 80, 160 steps apart: a few percent of the steps at most
    assert sim.history.count(1) <= 2 * probes
    sim.steps(60, shared)
    assert sim.tuner.threads == 1
    sim.steps(400, quiet)  # the other process ended
    assert sim.tuner.threads == 2


def test_adaptive_threads_try_fewer_threads_within_the_first_steps(monkeypatch):
    # Two trainings started together on 2 cores: each step with both threads is several times slower.
    contended = {2: 0.25, 1: 0.029}.__getitem__
    sim = _SimulatedThreads(2, monkeypatch)
    sim.steps(4, contended)  # the history holds the count set after each step: the trial starts after the 1st
    assert sim.history == [1, 1, 1, 1] and sim.tuner.threads == 1
    sim.steps(400, contended)
    assert sim.tuner.threads == 1
    # on a quiet machine the early trial is one more probe, after which the period is the usual one
    quiet = _SimulatedThreads(2, monkeypatch)
    quiet.steps(30, {2: 0.018, 1: 0.030}.__getitem__)
    assert quiet.history[0:2] == [1, 1] and quiet.history[2:22] == [2] * 20 and quiet.history[22] == 1
    assert quiet.tuner.threads == 2 and quiet.tuner.period == 40  # kept twice: 40 steps to the next trial


def test_adaptive_threads_leave_a_single_core_alone(monkeypatch):
    sim = _SimulatedThreads(1, monkeypatch)
    sim.steps(100, lambda threads: 0.03)
    assert set(sim.history) == {1}


@pytest.mark.slow
def test_train_compile_trains_and_saves_plain_weights(tiny_manifest, tmp_path):
    """``train.compile`` on the CPU: the compiled network trains, and checkpoints hold the network's own
    parameter names (no ``_orig_mod``), so they load without compile."""
    pytest.importorskip("torch._inductor")
    from conftest import tiny_overrides
    from phanet.training.run import load_module, train

    try:
        torch.compile(torch.nn.Linear(2, 2))(torch.zeros(1, 2))
    except Exception as exc:  # noqa: BLE001 - no C++ compiler or unsupported platform
        pytest.skip(f"torch.compile does not work on this machine: {type(exc).__name__}")
    config = load_config(
        "demo",
        tiny_overrides(
            tiny_manifest, tmp_path / "compiled", "train.epochs=2", "train.compile=default", "train.pan_init.warmup_epochs=1"
        ),
    )
    result = train(config, progress=False)
    metrics = pd.read_csv(result.metrics_csv)
    assert len(metrics) == 2 and metrics["train/loss"].notna().all()
    assert metrics["train/loss"].iloc[1] < metrics["train/loss"].iloc[0]
    keys = torch.load(result.last_checkpoint, weights_only=True)["state_dict"].keys()
    assert not any("_orig_mod" in k for k in keys)
    module = load_module(result.best_checkpoint)
    assert module.network is module.model


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # as the script: Lightning's notes on runs without validation are not news
def test_training_throughput_small_mode():
    """``phanet.analysis.training_throughput`` as ``benchmarks/train_throughput.py --small`` runs it: the
    first pass over the training split, then positive end-to-end, model-bound and input-bound rates per
    precision."""
    from phanet.analysis import training_throughput

    cpu = torch.device("cpu")
    base = training_throughput.base_overrides(cpu, small=True)
    assert base[: len(training_throughput.SMALL)] == training_throughput.SMALL and "train.pan_init.enabled=false" in base
    first = load_config(["demo"], base)
    assert training_throughput.device_name(cpu).startswith("CPU ")
    # 2 training subjects (4, one for validation, one for test) x 25 expression levels x 9 pans
    assert training_throughput.first_pass(first).startswith("first pass over the 450 training images")
    rows = training_throughput.measure_grid(
        ["demo"], base, cpu, [first.train.batch_size], ["32-true", "bf16-mixed"], steps=3, warmup=2, repeats=1
    )
    assert [(batch, precision) for batch, precision, _ in rows] == [
        (first.train.batch_size, "32-true"),
        (first.train.batch_size, "bf16-mixed"),
    ]
    for _, _, rates in rows:
        end_to_end, model, loader = rates["end_to_end"], rates["model"], rates["input"]
        assert end_to_end > 0 and model > 0 and loader > 0
        # End to end cannot beat either bound. The three rates are timed one after the other, and the test
        # suite runs on as many workers as cores, so a rate can catch another test's burst: the check is
        # loose and catches a rate measured on the wrong thing, not a few tens of percent.
        assert end_to_end < 3 * min(model, loader)


@pytest.mark.slow
def test_precision_of_the_attention_gradients_on_a_trained_checkpoint(tiny_manifest, tmp_path):
    """``phanet.analysis.precision``: float32 gradients agree with float64 (cosine 1), every bfloat16
    cosine (all lowered, or the backbones alone) is a cosine, and the squares' mean and spread are given for S2 and S3."""
    from conftest import tiny_overrides
    from phanet.analysis import precision
    from phanet.training.run import train

    config = load_config(
        "demo", tiny_overrides(tiny_manifest, tmp_path / "run", "train.epochs=1", "train.pan_init.warmup_epochs=0")
    )
    module = precision.load_checkpoint(str(train(config, progress=False).last_checkpoint))
    rows = precision.split_cosines(module, ("fp32", "bf16", "bf16-backbones"))
    assert [(term, part) for term, part, _ in rows] == [(t, p) for t in ("ranking", "total") for p in precision.PARTS]
    for _, _, (single, *lower) in rows:
        assert single > 0.999 and all(-1.0 <= c <= 1.0 for c in lower)
    spread = precision.square_spread(module)
    assert list(spread) == ["S2", "S3"]
    for mean, std in spread.values():
        assert len(mean) == len(std) == 3 and all(0 <= v <= 1 for v in mean) and all(v >= 0 for v in std)
