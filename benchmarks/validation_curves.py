"""Validation curves of several experiments side by side: the command line of :mod:`phanet.analysis.curves`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from phanet.analysis import curves


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=curves.__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="crossval or demo folders")
    parser.add_argument("--labels", nargs="+", help="one name per folder (default: the folder names)")
    parser.add_argument("--last", type=int, default=4, help="epochs over which the swing is measured")
    parser.add_argument("--out", type=Path, help="write the figure here")
    args = parser.parse_args(argv)
    labels = args.labels or [folder.name for folder in args.folders]
    if len(labels) != len(args.folders):
        parser.error(f"--labels: {len(labels)} names for {len(args.folders)} folders")
    runs = curves.method_runs(args.folders, labels)
    table = curves.curve_rows(runs, args.last)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(2).to_string(index=False))
        print()
        print(curves.experiment_means(table).round(2).to_string())
    if args.out:
        print(f"figure: {curves.curves_figure(runs, labels, args.out)}")


if __name__ == "__main__":
    main()
