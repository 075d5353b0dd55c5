"""Two CPU trainings started together: how long their first epoch takes against their later ones.

Two identical trainings start at the same moment, each with every usable core and
:class:`~phanet.training.callbacks.AdaptiveThreads` choosing its thread count (``train.threads``
unset), for each first-trial delay asked for (``--first`` steps before AdaptiveThreads first tries
fewer threads), after one training alone for comparison. Each process's epochs are timed from
its own log; printed per process: its epoch seconds, its thread count at the end of each epoch, and
the ratio of its first epoch to the median of its later ones (the first epoch has the same steps as
the others, the PAN warm-up being switched off; the alone row shows what the first epoch costs
without a second process).

Run it on an otherwise quiet machine: another process on the cores is what it measures.

    python benchmarks/paired_start.py                           # first trial after 20 and after 4 steps
    python benchmarks/paired_start.py --first 4,1,4,1        # each delay twice, to see the spread
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

#: Each process sets AdaptiveThreads' first trial delay, then runs the ``phanet train`` command.
CHILD = """
import functools, sys
from phanet.training import callbacks
callbacks.AdaptiveThreads.__init__ = functools.partialmethod(callbacks.AdaptiveThreads.__init__,
                                                             first_period=int(sys.argv[1]))
from phanet.cli import main
sys.exit(main(sys.argv[2:]))
"""
EPOCH_LINE = re.compile(r"^epoch (\d+)/\d+: .*; (\d+(?:\.\d+)?) s$")


def train_command(out: Path, args: argparse.Namespace) -> list[str]:
    return [
        "train",
        "--config",
        "demo",
        "--out",
        str(out),
        "--no-progress",
        f"data.options={{preset: bu3dfe, subjects: {args.subjects}, size: 128}}",
        f"model.scales=[{args.scales}]",
        "model.joint_sa=false",
        f"train.epochs={args.epochs}",
        "train.early_stop=0",
        "train.max_minutes=null",
        "train.pan_init.enabled=false",
    ]


def epoch_seconds(log: str) -> list[float]:
    return [float(m.group(2)) for m in map(EPOCH_LINE.match, log.splitlines()) if m]


def together(first: int, count: int, root: Path, args: argparse.Namespace) -> list[dict]:
    """Start ``count`` trainings together, each into a new folder under ``root``; one row per process."""
    start = len(list(root.iterdir()))
    outs = [root / f"run{start + i}_first{first}" for i in range(1, count + 1)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(first), *train_command(out, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for out in outs
    ]
    rows = []
    for i, (proc, out) in enumerate(zip(procs, outs), 1):
        log, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"training {out} failed ({proc.returncode}):\n{log[-2000:]}")
        seconds = epoch_seconds(log)
        threads = pd.read_csv(out / "metrics.csv")["cpu_threads"].tolist()
        rows.append(
            {
                "first trial after": first,
                "processes": count,
                "process": i,
                "epoch seconds": seconds,
                "threads": threads,
                "first / median of later": seconds[0] / statistics.median(seconds[1:]),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", default="20,4", help="first-trial delays in steps, comma-separated")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--subjects", type=int, default=20, help="subjects of the built-in data")
    parser.add_argument("--scales", default="N_S1", help="the network's scales, e.g. N_S1 or N_S1,H_S2,H_S3")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is compared with the later ones")
    with tempfile.TemporaryDirectory() as tmp:
        delays = [int(first) for first in args.first.split(",")]
        # One training alone first: what its first epoch costs without a second process (loading, warm-up).
        rows = together(delays[-1], 1, Path(tmp), args)
        rows += [row for first in delays for row in together(first, 2, Path(tmp), args)]
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
