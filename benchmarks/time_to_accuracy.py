"""Time to accuracy: the command line of :mod:`phanet.analysis.time_to_accuracy`."""

from __future__ import annotations

import argparse

from phanet.analysis import time_to_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=time_to_accuracy.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (holding metrics.csv)")
    parser.add_argument("--levels", default="0.6,0.7,0.75", help="validation FER levels (default 0.6,0.7,0.75)")
    args = parser.parse_args()
    levels = [float(level) for level in args.levels.split(",")]
    print(time_to_accuracy.table(args.runs, levels).to_string(index=False, float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
