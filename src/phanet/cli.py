"""The ``phanet`` command: one subcommand per module in :mod:`phanet.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``. The
modules import nothing heavy at top level so that ``phanet --help`` answers at once; the work is
imported inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from phanet import __version__
from phanet.errors import PhanetError

#: (subcommand, module under phanet.commands), in the order ``phanet --help`` lists them.
COMMANDS = (
    ("demo", "demo"),
    ("train", "train"),
    ("evaluate", "evaluate"),
    ("synth", "synth"),
    ("data", "data"),
    ("prepare", "prepare"),
    ("ablate", "ablate"),
    ("crossval", "crossval"),
    ("crossdata", "crossdata"),
    ("predict", "predict"),
    ("export", "export"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phanet",
        description="PhaNet: multi-view facial expression recognition with joint head-pose estimation.",
    )
    parser.add_argument("--version", action="version", version=f"phanet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS:
        try:
            module = importlib.import_module(f"phanet.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"phanet.commands.{module_name}":
                continue
            raise
        command = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may also follow the options (argparse stops collecting positionals there).
    if extra:
        if isinstance(getattr(args, "overrides", None), list) and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides.extend(extra)
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except PhanetError as exc:
        print(f"phanet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"phanet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
