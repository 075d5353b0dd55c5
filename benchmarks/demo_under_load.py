"""The plain ``phanet demo`` on an idle machine and beside two CPU-bound processes: the same numbers?

Runs the demo command twice into new folders under ``--out``: first alone, then while two other
processes each keep a core busy (a Python loop that never sleeps). Both runs use the same rendered
data (the cache) and the same overrides (by default ``train.epochs=2``, so that the pair takes
minutes rather than hours; give ``--epochs 12`` for the demo's whole budget). Printed per run: its
wall time, the mean 1-minute load while it trained, and each network's FER and pose accuracy on the
test subjects; then whether the two runs' per-image tables (every test image's logits, classes,
squares and scale weights, both networks) are identical to the last digit.

    python benchmarks/demo_under_load.py --out /tmp/under-load
    python benchmarks/demo_under_load.py --out /tmp/under-load --publish docs/results
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from phanet.reports import published
from phanet.runtime import LoadWatch


def _spin() -> None:
    while True:
        pass


def run(out: Path, epochs: int, busy: int) -> dict:
    """One plain demo into ``out`` beside ``busy`` spinning processes: its row of the table."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
    for spinner in spinners:
        spinner.start()
    command = [sys.executable, "-m", "phanet", "demo", "--out", str(out), "--no-progress", f"train.epochs={epochs}"]
    start = time.time()
    try:
        with LoadWatch(every=15) as watch:
            done = subprocess.run(command, capture_output=True, text=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
    if done.returncode != 0:
        sys.exit(f"demo_under_load: {' '.join(command)} failed:\n{done.stderr[-2000:]}")
    summary = published.read(out / "summary.json")
    row = {"run": f"beside {busy} CPU-bound processes" if busy else "alone", "minutes": (time.time() - start) / 60}
    row["mean load"] = watch.mean
    for network in summary["runs"]:
        evaluation = network["evaluation"]
        row[f"{network['name']} FER %"] = 100 * evaluation["expression_accuracy"]
        row[f"{network['name']} pose %"] = 100 * evaluation["pose_accuracy"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the two demo runs")
    parser.add_argument("--epochs", type=int, default=2, help="train.epochs of both runs (default 2; the demo's is 12)")
    parser.add_argument("--publish", type=Path, metavar="DIR", help="write the table as DIR/demo_under_load.json")
    args = parser.parse_args()
    if args.out.exists():
        sys.exit(f"demo_under_load: {args.out} exists; give a new folder")
    started, load = time.time(), os.getloadavg()[0]
    rows = [run(args.out / name, args.epochs, busy) for name, busy in (("idle", 0), ("loaded", 2))]
    tables = [published.read_predictions(args.out / name / "summary.json") for name in ("idle", "loaded")]
    identical = tables[0].equals(tables[1])
    table = pd.DataFrame(rows)
    shown = table.copy()
    for column in shown.columns[1:]:
        digits = 2 if "%" in column else 1
        shown[column] = shown[column].map(lambda v, digits=digits: f"{v:.{digits}f}")
    shown["per-image table"] = ["", "identical to the run alone" if identical else "differs from the run alone"]
    print(shown.to_string(index=False))
    if args.publish:
        command = "python benchmarks/demo_under_load.py " + " ".join(sys.argv[1:])
        note = (
            f"Both runs are `phanet demo --no-progress train.epochs={args.epochs}` on the same rendered data; the "
            "second ran while two other processes each kept a core busy."
        )
        summary = published.measured([("The demo alone and under load", shown)], command, note, None, started, load)
        published.write(summary, None, args.publish, "demo_under_load")
        print(f"written: {args.publish / 'demo_under_load.json'}")
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
