"""What ``train.sync_batchnorm`` costs on a CPU: a PhaNet training step (forward and backward) of the
demo's network in two data-parallel ``gloo`` processes of one thread, with 16 faces each, with plain
batch normalisation (each process its own 16 faces), with the synchronised one
(``phanet.training.sync_norm``), and with the synchronised one's arithmetic but no communication; and
the latency of one small all-reduce. Ratios are to the plain step, measured in this run.

    python benchmarks/sync_batchnorm.py [--steps 6] [--batch 16]
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

MODES = ("plain", "synchronised", "synchronised, no communication")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, mode: str, steps: int, batch: int, results: dict) -> None:
    from phanet.config import load_config
    from phanet.training import sync_norm
    from phanet.training.module import PhaNetModule

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        if mode == "all-reduce":
            values = torch.randn(200)
            start = time.perf_counter()
            for _ in range(500):
                dist.all_reduce(values)
            results[mode] = (time.perf_counter() - start) / 500
            return
        config = load_config("demo", [])
        torch.manual_seed(0)
        poses = ["-90", "-60", "-45", "-30", "0", "30", "45", "60", "90"]
        network = PhaNetModule(config.to_dict(), ["AN", "DI", "FE", "HA", "NE", "SA", "SU"], poses).model.train()
        if mode != "plain":
            sync_norm.SyncBatchNormEverywhere().apply(network)
        if mode == "synchronised, no communication":
            sync_norm.dist.all_reduce = lambda tensor: None  # type: ignore[assignment]
        images = torch.randn(batch, 3, config.model.input_size, config.model.input_size)
        for step in range(steps + 2):
            if step == 2:
                start = time.perf_counter()
            output = network(images)
            (output.expression_logits.sum() + output.pose_logits.sum()).backward()
        if rank == 0:
            results[mode] = (time.perf_counter() - start) / steps
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per mode (after 2 untimed)")
    parser.add_argument("--batch", type=int, default=16, help="faces per process")
    args = parser.parse_args()
    with mp.Manager() as manager:
        results = manager.dict()
        for mode in ("all-reduce", *MODES):
            mp.start_processes(_worker, args=(_port(), mode, args.steps, args.batch, results), nprocs=2, start_method="spawn")
        measured = dict(results)
    print(f"one all-reduce of 200 floats between the two processes: {measured['all-reduce'] * 1e6:.0f} us")
    print("| batch normalisation | ms per step | ratio to plain |\n|---|---:|---:|")
    for mode in MODES:
        print(f"| {mode} | {measured[mode] * 1000:.0f} | {measured[mode] / measured['plain']:.2f} |")


if __name__ == "__main__":
    main()
