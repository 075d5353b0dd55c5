"""Training and inference throughput of PhaNet against one DenseNet-40 backbone, measured in one run.

PhaNet runs three DenseNet-40 backbones (one per scale) plus two PANs, two crop-and-zooms, SAL and
the DCML head. The ratio PhaNet time / (3 × backbone time) says what that machinery costs on top of
the three backbones (target: ≤ 1.25). The steps of the models are interleaved and the medians
compared, so that a drift of the machine's speed affects every model alike. A third line times
three separate backbones trained together on the same batch: the part of PhaNet's cost that is the
three backbones' own (e.g. their memory traffic) rather than the attention machinery.

    python benchmarks/throughput.py --size 224 --batch 32
    python benchmarks/throughput.py --size 96 --batch 32 --device cuda
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from phanet.config import LossConfig
from phanet.losses import phanet_loss
from phanet.models.densenet import densenet40
from phanet.models.phanet import PhaNet


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _steps(size: int, batch: int, device: torch.device) -> dict[str, dict]:
    torch.manual_seed(0)
    images = torch.randn(batch, 3, size, size, device=device)
    expression = torch.randint(0, 7, (batch,), device=device)
    pose = torch.randint(0, 9, (batch,), device=device)
    loss_config = LossConfig()
    models = {
        "phanet": PhaNet(7, 9, size).to(device),
        "backbone": densenet40(num_classes=7).to(device),
        "three": nn.ModuleList(densenet40(num_classes=7) for _ in range(3)).to(device),
    }

    def loss_of(name: str, model: nn.Module) -> torch.Tensor:
        if name == "phanet":
            return phanet_loss(model(images), expression, pose, loss_config).total
        if name == "three":
            return sum(F.cross_entropy(net(images), expression) for net in model)
        return F.cross_entropy(model(images), expression)

    steps = {}
    for name, model in models.items():
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def train(name=name, model=model, optimizer=optimizer):
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss_of(name, model).backward()
            optimizer.step()

        def infer(name=name, model=model):
            model.eval()
            with torch.inference_mode():
                if name == "three":
                    for net in model:
                        net(images)
                else:
                    model(images)

        steps[name] = {"train": train, "infer": infer}
    return steps


def measure(size: int, batch: int, device: torch.device, repeats: int, warmup: int) -> dict[str, float]:
    """Median seconds per step of every model and mode, steps interleaved."""
    steps = _steps(size, batch, device)
    times: dict[str, list[float]] = {}
    for mode in ("train", "infer"):
        for _ in range(warmup):
            for name in steps:
                steps[name][mode]()
        for _ in range(repeats):
            for name in steps:
                _sync(device)
                start = time.perf_counter()
                steps[name][mode]()
                _sync(device)
                times.setdefault(f"{name}_{mode}", []).append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU {platform.machine()}, {torch.get_num_threads()} threads"
    r = measure(args.size, args.batch, device, args.repeats, args.warmup)
    print(
        f"device: {name}; input {args.size}x{args.size}, batch {args.batch}, torch {torch.__version__}, "
        f"median of {args.repeats} interleaved steps"
    )
    print(f"{'':28s}{'train img/s':>12s}{'infer img/s':>12s}")
    for key, label in (("phanet", "PhaNet"), ("backbone", "DenseNet-40 (one)"), ("three", "DenseNet-40 (three, joint)")):
        print(f"{label:28s}{args.batch / r[f'{key}_train']:12.1f}{args.batch / r[f'{key}_infer']:12.1f}")
    for mode in ("train", "infer"):
        ratio = r[f"phanet_{mode}"] / (3 * r[f"backbone_{mode}"])
        joint = r[f"phanet_{mode}"] / r[f"three_{mode}"]
        print(f"{mode}: PhaNet / (3 x backbone) = {ratio:.3f} (target <= 1.25); PhaNet / three backbones = {joint:.3f}")


if __name__ == "__main__":
    main()
