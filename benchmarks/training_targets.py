"""The training targets on finished runs: the command line of :mod:`phanet.analysis.targets`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from phanet.analysis import targets
from phanet.training.run_folder import RunFolder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=targets.__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="crossval or demo output folders")
    parser.add_argument("--squares", type=Path, help="also draw the squares' positions per run into this image")
    args = parser.parse_args(argv)
    folds = [fold for f in args.folders for fold in targets.experiment_folds(f)]
    unfinished = [name for name, folder, _ in folds if not RunFolder(folder).evaluated()]
    if unfinished:
        print(f"left out, PhaNet not evaluated yet: {', '.join(unfinished)}")
    folds = [fold for fold in folds if fold[0] not in unfinished]
    table = targets.fold_table(folds)
    if args.squares:
        print(f"squares: {targets.squares_figure(folds, args.squares)}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(targets.fold_summary(table).round(3).to_string())
    print()
    for target, met, measured in targets.check(table):
        print(f"{'met' if met else 'NOT met':>7}  {target}: {measured}")


if __name__ == "__main__":
    main()
