"""phanet demo."""

from __future__ import annotations

import argparse

from phanet.commands.train import NO_PROGRESS_HELP, TRAINER_FLAGS, add_trainer_arguments

HELP = "the built-in experiment: render data, train PhaNet and DenseNet-40, write a paper-style report"
DESCRIPTION = """Run the built-in experiment end to end on this machine, no download needed.

  phanet demo --out runs/demo
  phanet demo --out runs/demo-gpu --accelerator gpu

Renders the synthetic `bu3dfe` preset (cached in ~/.cache/phanet or $PHANET_CACHE), trains PhaNet
and the DenseNet-40 baseline with the same budget on subject-independent splits, evaluates both on
held-out subjects and writes OUT/report.md with tables (Tables I, II, IV) and figures (Figs. 5, 8–15).
An interrupted demo continues where it stopped when run again with the same --out.

On a CPU with two or more cores each network trains over every core, as two data-parallel
processes with a fixed number of threads, one network after the other: the numbers are the same
on an idle and on a busy machine, which only takes longer (a warning at the end says so).
Duration: 19 to 20 minutes on an idle 2-core CPU with native bfloat16 once the data are rendered (a
few minutes the first time), a few minutes on a GPU. No time limit; train.max_minutes sets one, and a network it
stops is named in a warning at the end and in the report's first lines.
"""

FLAGS = TRAINER_FLAGS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides of the demo preset")
    parser.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--config", action="append", help="preset or YAML file, repeatable (default: demo)")
    parser.add_argument("--seed", type=int, help="training seed (config key 'seed')")
    parser.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    add_trainer_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from phanet.commands.train import trainer_overrides
    from phanet.config import load_config

    overrides = list(args.overrides) + trainer_overrides(args)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    config = load_config(args.config or ["demo"], overrides)
    import shlex
    import sys

    from phanet.demo import run_demo

    command = shlex.join(["phanet", *(sys.argv[1:] if sys.argv[1:2] == ["demo"] else ["demo", "--out", args.out])])
    run_demo(Path(args.out), config, progress=not args.no_progress, command=command)
    return 0
