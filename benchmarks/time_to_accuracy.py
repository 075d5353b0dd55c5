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


def _shown(value: float, missing: str, form: str) -> str:
    """A cell of the published table: ``missing`` for NaN, else ``value`` in ``form``."""
    return missing if value != value else format(value, form)


def _format_of(column: str) -> tuple[str, str]:
    """What a column shows for NaN, and its number format: untested runs, levels not reached, epoch counts."""
    if column.startswith("test"):
        return "not tested", ".1f"
    return "not reached", "g" if column.startswith("epoch") else ".1f"


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
            missing, form = _format_of(column)
            shown[column] = shown[column].map(lambda v, missing=missing, form=form: _shown(v, missing, form))
        command = "python benchmarks/time_to_accuracy.py " + " ".join(sys.argv[1:])
        note = "Read by benchmarks/time_to_accuracy.py from the runs' metrics.csv; the page beside the table says which runs."
        summary = published.measured([("Time to validation FER accuracy", shown)], command, note, None, None, None)
        published.write(summary, None, args.publish, "time_to_accuracy")
        print(f"written: {args.publish / 'time_to_accuracy.json'}")


if __name__ == "__main__":
    main()
