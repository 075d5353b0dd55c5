"""Inference throughput of PhaNet in PyTorch (eager) and ONNX Runtime, measured in one run.

Both run the same network on the same preprocessed faces, through the backends ``phanet predict``
uses (:class:`~phanet.predict.TorchBackend`, :class:`~phanet.predict.OnnxBackend`); face detection,
decoding and preprocessing are not timed. The network is untrained and built with the paper's
structure (three DenseNet-40 scales, two PANs, SAL, DCML; 7 expressions, 9 poses) at the chosen
input sizes: untrained weights cost the same time as trained ones. Batches of every backend are
interleaved and the medians compared, so that a drift of the machine's speed affects both alike.

    python benchmarks/predict_throughput.py                      # 64 px (demo) and 224 px (paper)
    python benchmarks/predict_throughput.py --sizes 224 --repeats 10
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

import numpy as np
import onnxruntime
import torch

from phanet.config import load_config
from phanet.export import onnx_bytes, ort_session
from phanet.models.phanet import PhaNet
from phanet.predict import ModelInfo, OnnxBackend, TorchBackend


def build(size: int) -> PhaNet:
    """The paper preset's network at 224 px; at any other size the demo preset's, which takes input
    at ``input_size`` (twice its image size: S2 and S3 cut from the full-resolution face)."""
    if size == 224:
        model_config = load_config("paper").model
    else:
        model_config = load_config("demo").model
        ratio = (model_config.input_size or model_config.image_size) // model_config.image_size
        model_config = dataclasses.replace(model_config, image_size=size, input_size=size * ratio if ratio > 1 else None)
    torch.manual_seed(0)
    return PhaNet.from_config(model_config, 7, 9).eval()


def measure(size: int, batches: list[int], repeats: int, warmup: int, threads: int) -> dict[tuple[str, int], float]:
    """Median seconds per batch for every (backend, batch size)."""
    model = build(size)
    side = model.input_size
    backends = {
        "torch": TorchBackend(model),
        "onnxruntime": OnnxBackend(
            ort_session(onnx_bytes(model, ModelInfo(list("0123456"), list("012345678"), side, "phanet")), threads)
        ),
    }
    rng = np.random.default_rng(0)
    times: dict[tuple[str, int], float] = {}
    for batch in batches:
        images = rng.uniform(-1, 1, (batch, 3, side, side)).astype(np.float32)
        samples: dict[str, list[float]] = {name: [] for name in backends}
        for step in range(warmup + repeats):
            for name, backend in backends.items():
                start = time.perf_counter()
                backend(images)
                if step >= warmup:
                    samples[name].append(time.perf_counter() - start)
        for name in backends:
            times[(name, batch)] = statistics.median(samples[name])
    return times


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes have used (Linux /proc/stat), to tell whether other work shared the CPU."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[64, 224],
        help="network image sizes in pixels (the demo network at any size but 224 reads twice that)",
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="threads of both backends (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(
        f"CPU {platform.machine()}, {os.cpu_count()} cores, threads: {threads}; torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}; median of {args.repeats} batches"
    )
    busy_before, own_before, start = _machine_busy_seconds(), sum(os.times()[:2]), time.perf_counter()
    print(f"{'input':>7s} {'batch':>5s} {'torch faces/s':>14s} {'ORT faces/s':>12s} {'ORT / torch':>12s}")
    for size in args.sizes:
        times = measure(size, args.batches, args.repeats, args.warmup, threads)
        for batch in args.batches:
            eager, ort = batch / times[("torch", batch)], batch / times[("onnxruntime", batch)]
            print(f"{size:>4d} px {batch:>5d} {eager:>14.1f} {ort:>12.1f} {ort / eager:>12.2f}")
    busy_after = _machine_busy_seconds()
    if busy_before is not None and busy_after is not None:
        others = (busy_after - busy_before - (sum(os.times()[:2]) - own_before)) / (time.perf_counter() - start)
        print(f"other processes used {max(0.0, others):.2f} of {os.cpu_count()} cores during the run")


if __name__ == "__main__":
    main()
