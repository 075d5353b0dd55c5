"""Where a training step goes: PhaNet's and DenseNet-40's step taken apart, measured in one run.

On the demo's data (rendered once into the cache) and a fixed number of threads, each network trains
a few steps as the LightningModule trains them (the same batch preparation, loss and optimiser),
with hooks that time every part of the forward and the backward pass:

- the data path: a batch read from the decoded-image cache, then normalised and augmented;
- for PhaNet, per scale: the backbone's forward and backward, the pixel attention network (PAN) that
  picks the scale's square, and the crop-and-zoom with the glue around it (what the hooked parts
  leave of the forward); SAL and the DCML head; the loss; the optimiser step; the weight average;
- for DenseNet-40 the same parts where it has them.

Each network runs in the precision it trains in (``train.precision: auto``: on a CPU with native
bfloat16, PhaNet's backbones in bfloat16 and its squares in 32 bits, DenseNet-40 under bfloat16
autocast), and PhaNet also all in 32 bits, as it trained before (:data:`NETWORKS`).

With one thread the parts run one after the other, so their times add up to the step; the table
gives each in milliseconds per step and as a share of its network's step, and the ratio of the two
steps. The Trainer's own cost (callbacks, metrics, logging) is the difference between a step timed
inside ``Trainer.fit`` and the bare step.

    python benchmarks/epoch_profile.py                       # demo preset, 1 thread
    python benchmarks/epoch_profile.py --threads 2 --steps 20
    python benchmarks/epoch_profile.py --small               # seconds: what the test suite runs
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from phanet.analysis.training_throughput import data_module, fit_rate
from phanet.config import Config, load_config
from phanet.losses import phanet_loss
from phanet.runtime import BF16_BACKBONES
from phanet.training.module import PhaNetModule
from phanet.training.optim import make_optimizer
from phanet.training.run import training_precision

#: The modules a DenseNet's ``forward_features`` runs, and those a PAN's square runs: the parts are
#: timed through them (the networks call ``forward_features`` and ``raw``, not the modules themselves).
_DENSENET = ("stem", "blocks", "final_norm")
_PAN = ("pool", "fc1", "fc2")
#: The parts of each network that are timed, as (label, module paths).
PHANET_PARTS = (
    *((f"S{s + 1} backbone", tuple(f"backbones.{s}.{m}" for m in _DENSENET)) for s in range(3)),
    *((f"S{s + 2} PAN", tuple(f"pans.{s}.{m}" for m in _PAN)) for s in range(2)),
    ("scale classifiers", tuple(f"scale_classifiers.{s}" for s in range(3))),
    ("SAL", ("sal",)),
    ("DCML head", ("head",)),
)
DENSENET_PARTS = (("backbone", tuple(f"backbone.{m}" for m in _DENSENET)), ("heads", ("expression", "pose")))


class PartClock:
    """Forward and backward wall time of named submodules, summed over the steps it is on."""

    def __init__(self, network: nn.Module, parts: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.handles: list[Any] = []
        for label, paths in parts:
            for path in paths:
                if _has(network, path):
                    self._watch(network.get_submodule(path), f"{label} forward", f"{label} backward")

    def _watch(self, module: nn.Module, forward: str, backward: str) -> None:
        started: dict[str, float] = {}

        def begin(key: str):
            return lambda *args: started.__setitem__(key, time.perf_counter())

        def end(key: str, label: str):
            def hook(*args: Any) -> None:
                if key in started:
                    self.seconds[label] += time.perf_counter() - started.pop(key)

            return hook

        self.handles += [
            module.register_forward_pre_hook(begin("f")),
            module.register_forward_hook(end("f", forward)),
            module.register_full_backward_pre_hook(begin("b")),
            module.register_full_backward_hook(end("b", backward)),
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _timed(seconds: dict[str, float], label: str, action: Any) -> Any:
    start = time.perf_counter()
    result = action()
    seconds[label] += time.perf_counter() - start
    return result


def profile_network(config: Config, steps: int, warmup: int) -> tuple[dict[str, float], float]:
    """Seconds per step of each part of ``config``'s network, and of the whole step, over ``steps``
    training steps after ``warmup``."""
    datamodule = data_module(config)
    faces = datamodule.faces
    module = PhaNetModule(config.to_dict(), faces.expressions, faces.poses)
    module.train()
    network = module.model
    optimizer = make_optimizer(config.optim, module.optimizer_groups())
    parts = PHANET_PARTS if config.model.arch == "phanet" else DENSENET_PARTS
    loader = iter(datamodule.train_dataloader())
    # the precision the network trains in: PhaNet's backbones in bfloat16 (bf16-backbones), bfloat16
    # autocast for the networks without crop-and-zoom, or 32 bits where bfloat16 is not fast
    precision = training_precision(config)
    bf16 = precision == "bf16-mixed"
    if precision == BF16_BACKBONES:
        network.backbone_dtype = torch.bfloat16
    seconds: dict[str, float] = defaultdict(float)
    clock: PartClock | None = None
    total = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            clock, seconds = PartClock(network, parts), defaultdict(float)
        start = time.perf_counter()
        batch = _timed(seconds, "data: read a batch", lambda: next(loader))
        batch = _timed(seconds, "data: normalise and augment", lambda b=batch: module.prepare_batch(b, train=True))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = _timed(seconds, "forward", lambda b=batch: network(b["image"]))
            terms = _timed(seconds, "loss", lambda b=batch, o=output: phanet_loss(o, b["expression"], b["pose"], config.loss))
        optimizer.zero_grad(set_to_none=True)
        _timed(seconds, "backward", lambda t=terms: t.total.backward())
        _timed(seconds, "optimiser step", optimizer.step)
        if config.train.ema > 0:
            _timed(seconds, "weight average", lambda: _average(network))
        if step >= warmup:
            total += time.perf_counter() - start
    assert clock is not None
    clock.remove()
    per_step = {label: value / steps for label, value in {**seconds, **clock.seconds}.items()}
    hooked_forward = sum(v for k, v in per_step.items() if k.endswith(" forward"))
    hooked_backward = sum(v for k, v in per_step.items() if k.endswith(" backward"))
    per_step["crop-and-zoom and glue, forward"] = per_step.pop("forward") - hooked_forward
    per_step["crop-and-zoom and glue, backward"] = per_step.pop("backward") - hooked_backward
    return per_step, total / steps


def _has(network: nn.Module, path: str) -> bool:
    try:
        network.get_submodule(path)
    except AttributeError:
        return False
    return True


_AVERAGES: dict[int, list[torch.Tensor]] = {}


def _average(network: nn.Module, decay: float = 0.99) -> None:
    """One update of an exponential moving average of the weights, as the weight averaging does it."""
    average = _AVERAGES.setdefault(id(network), [p.detach().clone() for p in network.parameters()])
    with torch.no_grad():
        for kept, weight in zip(average, network.parameters()):
            kept.lerp_(weight, 1 - decay)


def trainer_step(config: Config, steps: int, warmup: int) -> float:
    """Seconds per step inside ``Trainer.fit`` (its loop, the module's logging and metrics)."""
    return config.train.batch_size / fit_rate(config, data_module(config), steps, warmup)


#: The networks profiled, by name: the overrides of the demo preset that make each. PhaNet trains in the
#: precision ``train.precision: auto`` gives it; "PhaNet in 32 bits" is the same network all in 32 bits.
NETWORKS = {
    "PhaNet": [],
    "PhaNet in 32 bits": ["train.precision=32-true"],
    "DenseNet-40": ["model.arch=densenet", "loss.setting=p_e"],
}


def profile(overrides: Sequence[str], threads: int, steps: int, warmup: int) -> pd.DataFrame:
    """The table: one row per part of each network, its milliseconds per step and share of its step;
    the last rows the ratios of the PhaNets' steps to DenseNet-40's, bare and inside ``Trainer.fit``."""
    torch.set_num_threads(threads)
    rows = []
    steps_of: dict[str, float] = {}
    for name, extra in NETWORKS.items():
        config = load_config("demo", [*overrides, *extra, "train.pan_init.enabled=false", f"train.threads={threads}"])
        parts, step = profile_network(config, steps, warmup)
        steps_of[name] = step
        for label, value in sorted(parts.items(), key=lambda item: -item[1]):
            rows.append({"network": name, "part": label, "ms per step": 1000 * value, "share %": 100 * value / step})
        rows.append({"network": name, "part": "the step (sum)", "ms per step": 1000 * step, "share %": 100.0})
        fitted = trainer_step(config, steps, warmup)
        steps_of[f"{name} in Trainer.fit"] = fitted
        rows.append(
            {"network": name, "part": "the step inside Trainer.fit", "ms per step": 1000 * fitted, "share %": 100 * fitted / step}
        )
    for name in NETWORKS:
        if name != "DenseNet-40":
            for label, suffix in (("bare step", ""), ("step inside Trainer.fit", " in Trainer.fit")):
                ratio = steps_of[name + suffix] / steps_of["DenseNet-40" + suffix]
                rows.append({"network": f"{name} / DenseNet-40", "part": label, "ms per step": ratio, "share %": float("nan")})
    return pd.DataFrame(rows)
