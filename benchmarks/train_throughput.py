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

import argparse
import logging
import platform
import statistics
import tempfile
import time
import warnings
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

#: Overrides of ``--small``: a tiny network on 32 px renders (the CI check that the script works).
SMALL = [
    "data.options={preset: bu3dfe, subjects: 4, size: 32}", "data.split.val=1", "data.split.test=1",
    "model.image_size=32", "model.input_size=null", "model.backbone.depth=10", "model.backbone.growth_rate=6",
    "model.backbone.stem_pool=false", "model.attention.grid=2", "model.attention.hidden=16",
    "model.sal_hidden=8", "model.head_hidden=32",
]


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


def _fit(config: Config, datamodule: FaceDataModule, steps: int, warmup: int, loader=None) -> float:
    module = PhaNetModule(config.to_dict(), datamodule.faces.expressions, datamodule.faces.poses)
    clock = StepClock(warmup)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(config, Path(tmp), [clock], progress=None, max_steps=warmup + steps,
                               max_epochs=-1, limit_val_batches=0)
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
        rates["end_to_end"].append(_fit(config, datamodule, steps, warmup))
        rates["model"].append(_fit(config, datamodule, steps, warmup, ResidentBatches(resident, warmup + steps)))
    return {key: statistics.median(values) for key, values in rates.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", help="preset or YAML (default: demo)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="auto", help="comma-separated train.precision values (auto: "
                                                            "what training picks on this device)")
    parser.add_argument("--batch", default=None, help="comma-separated batch sizes (default: the preset's)")
    parser.add_argument("--workers", type=int, default=None, help="data.num_workers (default: the preset's)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each rate (median reported)")
    parser.add_argument("--subjects", type=int, default=None, help="subjects rendered (default: the preset's)")
    parser.add_argument("--small", action="store_true", help="a tiny network on tiny renders, in seconds")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="further config overrides")
    args = parser.parse_intermixed_args(argv)
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    device = torch.device(args.device)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    base = list(SMALL) if args.small else []
    if args.subjects:
        base.append(f"data.options.subjects={args.subjects}")
    if args.workers is not None:
        base.append(f"data.num_workers={args.workers}")
    base += ["train.pan_init.enabled=false", "train.pan_init.warmup_epochs=0", f"train.accelerator={accelerator}",
             "train.devices=1", *args.overrides]
    first = load_config(args.config or ["demo"], base)
    batches = [int(b) for b in args.batch.split(",")] if args.batch else [first.train.batch_size]
    precisions = [resolve_precision(p, accelerator) for p in args.precision.split(",")]
    if device.type == "cuda":
        name = f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    else:
        name = f"CPU {platform.machine()} ({usable_cpus()} usable cores, {torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; config {'+'.join(args.config or ['demo'])}"
          f"{' (--small)' if args.small else ''}; input {first.input_size} px, network {first.model.image_size} px; "
          f"data.num_workers {first.data.num_workers}; median of {args.repeats} runs of {args.steps} timed steps "
          f"after {args.warmup}")
    print(first_pass(first))
    rows = []
    for batch in batches:
        for precision in precisions:
            config = load_config(args.config or ["demo"], [*base, f"train.batch_size={batch}",
                                                           f"train.precision={precision}"])
            L.seed_everything(config.seed, verbose=False)
            r = measure(config, device, args.steps, args.warmup, args.repeats)
            rows.append((batch, precision, r))
    reference = rows[0][2]["end_to_end"]
    print(f"{'batch':>5s} {'precision':>11s} {'end to end':>11s} {'model bound':>12s} {'input bound':>12s} "
          f"{'input/model':>12s} {'e2e/model':>10s} {'e2e vs row 1':>13s}   (img/s)")
    for batch, precision, r in rows:
        print(f"{batch:5d} {precision:>11s} {r['end_to_end']:11.1f} {r['model']:12.1f} {r['input']:12.1f} "
              f"{r['input'] / r['model']:12.2f} {r['end_to_end'] / r['model']:10.2f} {r['end_to_end'] / reference:13.2f}")


if __name__ == "__main__":
    main()
