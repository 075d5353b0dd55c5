"""SAL and the DCML head trained again on a trained PhaNet's frozen features: the command line of
:mod:`phanet.analysis.head_refit`."""

from __future__ import annotations

import argparse

import pandas as pd

from phanet.analysis import head_refit


def main() -> None:
    parser = argparse.ArgumentParser(description=head_refit.__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a PhaNet run folder with joint SAL")
    parser.add_argument("--variants", default="fixed,sal", help=f"comma-separated, of {', '.join(head_refit.VARIANTS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--by", action="store_true", help="also print the mean c per pose and per expression")
    args = parser.parse_args()
    table, by_tables = head_refit.head_refit(
        args.run, args.variants.split(","), [int(s) for s in args.seeds.split(",")], args.epochs, args.by
    )
    pd.set_option("display.width", 250)
    print(table.round(3).T.to_string(header=False))
    for name, frame in by_tables.items():
        print(f"\nmean c on the test faces, {name}:")
        print(frame.round(3).to_string())


if __name__ == "__main__":
    main()
