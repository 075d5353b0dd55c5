"""Where a training step goes: the command line of :mod:`phanet.analysis.epoch_profile`.

``--publish DIR`` writes the table as DIR/epoch_profile.json, which ``phanet docs`` turns into the
benchmarks page's table.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from phanet.analysis import epoch_profile
from phanet.analysis.training_throughput import SMALL
from phanet.reports import published


def main() -> None:
    parser = argparse.ArgumentParser(description=epoch_profile.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per network (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="steps before the timed ones (default 3)")
    parser.add_argument("--small", action="store_true", help="a tiny network on 32 px renders (seconds)")
    parser.add_argument("--publish", type=Path, metavar="DIR", help="write the table as DIR/epoch_profile.json")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the demo preset")
    args = parser.parse_args()
    started, load = time.time(), os.getloadavg()[0]
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    overrides = [*(SMALL if args.small else []), *args.overrides]
    table = epoch_profile.profile(overrides, args.threads, args.steps, args.warmup)
    print(f"{args.threads} thread(s), {args.steps} timed steps after {args.warmup}; milliseconds per training step")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if args.publish:
        shown = table.copy()
        for column in ("ms per step", "share %"):
            shown[column] = shown[column].map(lambda v: "" if v != v else f"{v:.1f}")
        command = "python benchmarks/epoch_profile.py " + " ".join(sys.argv[1:])
        note = "Measured by benchmarks/epoch_profile.py; the page beside the table says how."
        title = f"Milliseconds per training step, {args.threads} thread(s), {args.steps} timed steps after {args.warmup}"
        summary = published.measured([(title, shown)], command, note, args.threads, started, load)
        published.write(summary, None, args.publish, "epoch_profile")
        print(f"written: {args.publish / 'epoch_profile.json'}")


if __name__ == "__main__":
    main()
