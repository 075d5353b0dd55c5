"""Time to accuracy: the command line of :mod:`phanet.analysis.time_to_accuracy`.

``--publish DIR`` writes the table as DIR/time_to_accuracy.json, which ``phanet docs`` turns into the
benchmarks page's table (the runs' own provenance is in their folders; the summary records this
command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phanet.analysis import time_to_accuracy
from phanet.reports import published


def _shown_count(value: float) -> str:
    return "not reached" if value != value else f"{value:g}"


def _shown_value(value: float) -> str:
    return "not reached" if value != value else f"{value:.1f}"


def _shown_test(value: float) -> str:
    return "not tested" if value != value else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=time_to_accuracy.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (holding metrics.csv)")
    parser.add_argument("--levels", default="0.6,0.7,0.75", help="validation FER levels (default 0.6,0.7,0.75)")
    parser.add_argument("--publish", type=Path, metavar="DIR", help="write the table as DIR/time_to_accuracy.json")
    args = parser.parse_args()
    levels = [float(level) for level in args.levels.split(",")]
    table = time_to_accuracy.table(args.runs, levels)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if args.publish:
        shown = table.copy()
        for column in shown.columns[1:]:
            shown_as = _shown_test if column.startswith("test") else _shown_count if column.startswith("epoch") else _shown_value
            shown[column] = shown[column].map(shown_as)
        command = "python benchmarks/time_to_accuracy.py " + " ".join(sys.argv[1:])
        note = "Read by benchmarks/time_to_accuracy.py from the runs' metrics.csv; the page beside the table says which runs."
        summary = published.measured([("Time to validation FER accuracy", shown)], command, note, None, None, None)
        published.write(summary, None, args.publish, "time_to_accuracy")
        print(f"written: {args.publish / 'time_to_accuracy.json'}")


if __name__ == "__main__":
    main()
