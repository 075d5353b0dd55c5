"""End-to-end training throughput through the real data module and LightningModule, measured in one run.

Three rates for each precision and batch size asked for, on rendered images of the built-in dataset
(rendered once into the data cache, as ``phanet demo`` does):

- **end to end**: ``Trainer.fit`` on the :class:`~phanet.data.datasets.FaceDataModule` — reading
  images (from the decoded-image cache, filled by a first pass that is timed on its own),
  batching, the copy to the device, the on-device normalisation and augmentation, forward,
  loss, backward and optimizer step;
- **model bound**: the same ``Trainer.fit`` step on one batch that stays on the device (only the
  on-device augmentation, the network and the optimizer are timed);
- **input bound**: the loader alone, with the copy to the device and the on-device augmentation,
  no network.

End to end can reach at most the smaller of the other two; input bound ≥ 2× model bound means the
data never hold the accelerator back. The PAN initialisation is switched off so that every timed
step is the same full training step.

    python benchmarks/train_throughput.py                                   # demo preset, this CPU
    python benchmarks/train_throughput.py --precision 32-true,bf16-mixed    # both, ratios in one run
    python benchmarks/train_throughput.py --config paper --device cuda --batch 32,128 --workers 8
    python benchmarks/train_throughput.py --small                           # seconds: what CI runs
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from phanet.config import Config, load_config
from phanet.data.cache import EMPTY
from phanet.data.datasets import FaceDataModule, make_split
from phanet.demo import demo_faces
from phanet.runtime import resolve_precision, usable_cpus
from phanet.training.module import PhaNetModule
from phanet.training.run import make_trainer

#: Overrides of ``--small``: a tiny network on 32 px renders (what the test suite measures, in seconds).
SMALL = [
    "data.options={preset: bu3dfe, subjects: 4, size: 32}",
    "data.split.val=1",
    "data.split.test=1",
    "model.image_size=32",
    "model.input_size=null",
    "model.backbone.depth=10",
    "model.backbone.growth_rate=6",
    "model.backbone.stem_pool=false",
    "model.attention.grid=2",
    "model.attention.hidden=16",
    "model.sal_hidden=8",
    "model.head_hidden=32",
]


def _accelerator(device: torch.device) -> str:
    return "gpu" if device.type == "cuda" else "cpu"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(L.Callback):
    """Times training steps ``warmup`` … end (the device synchronised at both ends)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.steps = 0
        self.start: float | None = None
        self.end = 0.0
        self.images = 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        _sync(module.device)
        now = time.perf_counter()
        self.steps += 1
        if self.steps == self.warmup:
            self.start = now
        elif self.start is not None:
            self.end = now
            self.images += int(batch["expression"].shape[0])

    def rate(self) -> float:
        return self.images / (self.end - self.start) if self.start is not None and self.end > self.start else float("nan")


class ResidentBatches:
    """The same batch, already on the device, ``count`` times."""

    def __init__(self, batch: dict, count: int) -> None:
        self.batch, self.count = batch, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return iter([self.batch] * self.count)


def fit_rate(config: Config, datamodule: FaceDataModule, steps: int, warmup: int, loader=None) -> float:
    module = PhaNetModule(config.to_dict(), datamodule.faces.expressions, datamodule.faces.poses)
    clock = StepClock(warmup)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(
            config, Path(tmp), [clock], progress=None, max_steps=warmup + steps, max_epochs=-1, limit_val_batches=0
        )
        if loader is None:
            trainer.fit(module, datamodule=datamodule)
        else:
            trainer.fit(module, train_dataloaders=loader)
    return clock.rate()


def _input_rate(config: Config, datamodule: FaceDataModule, device: torch.device, batches: int | None) -> float:
    """Images per second of the training loader, copied to ``device`` and augmented there."""
    module = PhaNetModule(config.to_dict(), datamodule.faces.expressions, datamodule.faces.poses).to(device)
    loader = datamodule.train_dataloader()
    images, start = 0, None
    for i, batch in enumerate(loader):
        if i == 1:  # the first batch starts the workers
            _sync(device)
            start, images = time.perf_counter(), 0
        batch = module.transfer_batch_to_device(batch, device, 0)
        batch = module.prepare_batch(batch, train=True)
        images += int(batch["expression"].shape[0])
        if batches is not None and i >= batches:
            break
    _sync(device)
    return images / (time.perf_counter() - start) if start else float("nan")


def data_module(config: Config) -> FaceDataModule:
    faces, _ = demo_faces(config, progress=False)
    datamodule = FaceDataModule(config, faces=faces, split=make_split(faces, config))
    datamodule.prepare()
    return datamodule


def first_pass(config: Config) -> str:
    """One pass over the training split, which decodes every image into the cache if it is not there yet."""
    datamodule = data_module(config)
    dataset = datamodule.datasets["train"]
    cache = datamodule.cache
    empty = 0 if cache is None else int((cache.state(cache.slots[dataset.rows]) == EMPTY).sum())
    start = time.perf_counter()
    _input_rate(config, datamodule, torch.device("cpu"), None)
    rate = len(dataset) / (time.perf_counter() - start)
    if empty == len(dataset):
        return f"first pass over the {len(dataset)} training images, decoding each into the cache: {rate:.1f} img/s"
    return f"first pass over the {len(dataset)} training images ({len(dataset) - empty} already cached): {rate:.1f} img/s"


def measure(config: Config, device: torch.device, steps: int, warmup: int, repeats: int) -> dict[str, float]:
    """Medians over ``repeats`` of each rate, the end-to-end and model-bound runs interleaved."""
    datamodule = data_module(config)
    batch = next(iter(datamodule.train_dataloader()))
    resident = {k: v.to(device) for k, v in batch.items()}
    rates: dict[str, list[float]] = {"input": [], "end_to_end": [], "model": []}
    for _ in range(repeats):
        rates["input"].append(_input_rate(config, datamodule, device, steps + warmup))
        rates["end_to_end"].append(fit_rate(config, datamodule, steps, warmup))
        rates["model"].append(fit_rate(config, datamodule, steps, warmup, ResidentBatches(resident, warmup + steps)))
    return {key: statistics.median(values) for key, values in rates.items()}


def base_overrides(
    device: torch.device, small: bool = False, subjects: int | None = None, workers: int | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """The overrides of every measured run: :data:`SMALL` if ``small``, the subjects rendered and the loader's
    workers where given, no PAN initialisation, one ``device``, then ``extra``."""
    base = list(SMALL) if small else []
    if subjects:
        base.append(f"data.options.subjects={subjects}")
    if workers is not None:
        base.append(f"data.num_workers={workers}")
    return base + [
        "train.pan_init.enabled=false",
        "train.pan_init.warmup_epochs=0",
        f"train.accelerator={_accelerator(device)}",
        "train.devices=1",
        *extra,
    ]


def device_name(device: torch.device) -> str:
    """The GPU and its CUDA version, or the CPU with its usable cores and PyTorch's threads."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return f"CPU {platform.machine()} ({usable_cpus()} usable cores, {torch.get_num_threads()} threads)"


def measure_grid(
    presets: list[str],
    base: list[str],
    device: torch.device,
    batches: list[int],
    precisions: list[str],
    steps: int,
    warmup: int,
    repeats: int,
) -> list[tuple[int, str, dict[str, float]]]:
    """(batch size, precision, :func:`measure`'s rates) for each batch size and precision (``auto`` resolved
    as training resolves it on ``device``), each run seeded with its config's seed."""
    resolved = [resolve_precision(p, _accelerator(device)) for p in precisions]
    rows = []
    for batch in batches:
        for precision in resolved:
            config = load_config(presets, [*base, f"train.batch_size={batch}", f"train.precision={precision}"])
            L.seed_everything(config.seed, verbose=False)
            rows.append((batch, precision, measure(config, device, steps, warmup, repeats)))
    return rows
