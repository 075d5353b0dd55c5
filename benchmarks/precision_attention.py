"""Does bfloat16 train PhaNet's squares? The command line of :mod:`phanet.analysis.precision`.

With ``--splits`` it compares the splits between bfloat16 and 32 bits instead (gradient cosines with
float64 and the time of a training step, in one run); ``--publish DIR`` writes that comparison as
DIR/precision_splits.json, which ``phanet docs`` turns into the benchmarks page's table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from phanet.analysis import precision
from phanet.reports import published

#: The precisions whose gradients each checkpoint's are compared in, without ``--splits``.
ATTENTION_SPLITS = ("fp32", "bf16", "bf16-backbones")


def _attention(checkpoint: str) -> None:
    module = precision.load_checkpoint(checkpoint)
    print(f"{checkpoint} (trained in {module.config.train.precision})")
    print(f"  {'loss':8s} {'part':12s}" + "".join(f"{f'cos({name}, fp64)':>26s}" for name in ATTENTION_SPLITS))
    for term, part, cosines in precision.split_cosines(module, ATTENTION_SPLITS):
        print(f"  {term:8s} {part:12s}" + "".join(f"{c:26.3f}" for c in cosines))
    for name, (mean, std) in precision.square_spread(module).items():
        print(
            f"  {name} square (x, y, l): mean {', '.join(f'{v:.3f}' for v in mean)}; "
            f"std over 256 images {', '.join(f'{v:.3f}' for v in std)}"
        )


def _splits(checkpoint: str) -> pd.DataFrame:
    """One row per loss term and part, then the step time: a column per split."""
    module = precision.load_checkpoint(checkpoint)
    names = list(precision.SPLITS)  # the reference column is timed too: its step is a 32-bit one
    rows = [
        [f"cos with fp64: {term} loss, {part}", *(f"{c:.3f}" for c in cosines)]
        for term, part, cosines in precision.split_cosines(module, names)
    ]
    times = precision.split_times(module, names)
    rows.append(["ms per training step (batch 32)", *(f"{times[n]:.0f}" for n in names)])
    rows.append(["step time / fp32", *(f"{times[n] / times['fp32']:.2f}" for n in names)])
    return pd.DataFrame(rows, columns=["measure", *names])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--splits", action="store_true", help="compare the splits between bfloat16 and 32 bits")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads for --splits (default 1)")
    parser.add_argument("--publish", type=Path, metavar="DIR", help="with --splits: write DIR/precision_splits.json")
    args = parser.parse_args(argv)
    if not args.splits:
        for checkpoint in args.checkpoints:
            _attention(checkpoint)
        return 0
    torch.set_num_threads(args.threads)
    started, load = time.time(), os.getloadavg()[0]
    for checkpoint in args.checkpoints:
        table = _splits(checkpoint)
        print(checkpoint)
        print(table.to_string(index=False))
        if args.publish:
            command = "python benchmarks/precision_attention.py " + " ".join(sys.argv[1:])
            note = "Measured by benchmarks/precision_attention.py --splits; the page beside the table says how."
            title = f"Splits between bfloat16 and 32 bits on {checkpoint}"
            summary = published.measured([(title, table)], command, note, args.threads, started, load)
            published.write(summary, None, args.publish, "precision_splits")
            print(f"written: {args.publish / 'precision_splits.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
