"""Linear probes against a trained PhaNet's own heads: the command line of :mod:`phanet.analysis.head_probe`."""

from __future__ import annotations

import argparse
from pathlib import Path

from phanet.analysis import head_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=head_probe.__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a PhaNet run folder (checkpoints/best.ckpt)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per part")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the head-only refit")
    args = parser.parse_args()
    table = head_probe.head_probe(args.run, args.limit, args.epochs)
    wide = table.pivot_table(index="readout", columns="task", values=["train", "test"], sort=False)
    print((wide * 100).round(1).to_string())


if __name__ == "__main__":
    main()
