"""A dataset of AffectNet's size: time to the first training step and peak memory, by data.num_workers.

Writes a manifest of ``--rows`` rows (default 300,000, AffectNet's size) that point at ``--files``
real 224 px images (default 300) with a distinct face box per row, so that every row is its own
image to decode and its own slot in the decoded-image cache (a sparse file of rows × 224 × 224 × 3
bytes, 45 GB for 300,000 rows; only what is read takes disk space). Then, for each worker count, a
fresh process trains the ``paper`` preset's network at 224 px for a few steps while this process
samples the memory of it and its DataLoader workers (proportional set size, so that pages the
processes share are counted once).

The same training on a 3,000-row manifest runs first: the network's own activations at 224 px and
batch 32 take most of the memory, so what a large manifest costs is the difference.

    python benchmarks/large_manifest.py                      # 300,000 rows; workers 0, 2, 4
    python benchmarks/large_manifest.py --rows 50000 --workers 0,8
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

EXPRESSIONS = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger"]


def write_dataset(folder: Path, rows: int, files: int) -> Path:
    rng = np.random.default_rng(0)
    names = []
    for i in range(files):
        image = cv2.GaussianBlur(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8), (9, 9), 3)
        names.append(f"img{i:04d}.png")
        cv2.imwrite(str(folder / names[-1]), image)
    index = np.arange(rows)
    columns = {
        "path": np.array(names)[index % files],
        "subject": [f"s{i // 100:05d}" for i in index],
        "expression": np.array(EXPRESSIONS)[index % len(EXPRESSIONS)],
        "pose": np.array(["-45", "0", "45"])[index % 3],
        "face_x": (index // files) * 1e-3,
        "face_y": 0.0,
        "face_w": 200.0,
        "face_h": 200.0,
    }
    import pandas as pd

    manifest = folder / "manifest.csv"
    pd.DataFrame(columns).to_csv(manifest, index=False)
    return manifest


def pss_kib(pid: int) -> int:
    """Proportional set size of ``pid`` and all its descendants, KiB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


CHILD = """
import sys, time
start = time.perf_counter()
import lightning as L
from phanet.config import load_config
from phanet.training import run

class Stop(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == 0:
            print(f"first step after {time.perf_counter() - start:.1f} s", flush=True)
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step >= STEPS:
            trainer.should_stop = True

original = run.make_trainer
run.make_trainer = lambda config, run_dir, callbacks, **kw: original(config, run_dir, [*callbacks, Stop()], **kw)
config = load_config("paper", sys.argv[1:])
run.train(config, progress=False)
print(f"done after {time.perf_counter() - start:.1f} s", flush=True)
"""


def run_child(manifest: Path, out: Path, workers: int, steps: int, cache: Path) -> tuple[str, float]:
    overrides = [
        "data.dataset=manifest",
        f"data.root={manifest}",
        "data.options={}",
        f"out={out}",
        f"data.num_workers={workers}",
        "data.split.val=1",
        "data.split.test=1",
        "data.cache=true",
        f"data.cache_dir={cache}",
        "train.batch_size=32",
        "train.pan_init.enabled=false",
        "train.pan_init.warmup_epochs=0",
        "train.accelerator=cpu",
        "data.flip=true",
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD.replace("STEPS", str(steps)), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, pss_kib(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    done.set()
    sampler.join()
    lines = [line for line in output.splitlines() if line.startswith(("first step", "done", "phanet"))]
    if process.returncode:
        lines.append(f"exit status {process.returncode}: {output.strip().splitlines()[-1]}")
    return "; ".join(lines), peak / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=3_000,
        help="the same training on a manifest this small first: what the network itself takes",
    )
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--workers", default="0,2,4")
    parser.add_argument("--steps", type=int, default=3, help="training steps after the first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"manifests of {args.baseline_rows:,} and {args.rows:,} rows over {args.files} files of 224 px; "
            f"the paper network at 224 px, batch 32, on the CPU"
        )
        print(f"{'rows':>9s}  {'workers':>7s}  {'peak memory (PSS, GB)':>22s}  {'over the baseline':>17s}  timings")
        baseline = None
        for rows, worker_list in ((args.baseline_rows, "0"), (args.rows, args.workers)):
            folder = Path(tmp) / f"rows{rows}"
            folder.mkdir()
            manifest = write_dataset(folder, rows, args.files)
            for workers in (int(w) for w in worker_list.split(",")):
                timings, peak = run_child(manifest, folder / f"run{workers}", workers, args.steps, folder / "cache")
                baseline = peak if baseline is None else baseline
                print(f"{rows:9,d}  {workers:7d}  {peak:22.2f}  {peak - baseline:+17.2f}  {timings}", flush=True)


if __name__ == "__main__":
    main()
