"""The ``phanet`` command: one subcommand per module in :mod:`phanet.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``, and
may define ``FLAGS``: how the command names a library parameter or config key that it sets some
other way than by an option of that name. The modules import nothing heavy at top level so that
``phanet --help`` answers at once; the work is imported inside ``run``.

Exit status: 0 on success, 2 with one line for a :class:`~phanet.errors.PhanetError`, and 128 + the
signal's number with one line when a signal stopped the command (:class:`~phanet.runtime.Stopped`:
SIGTERM, SIGHUP and SIGQUIT stop a command the way Ctrl+C does, so that training can say what it
kept; a second signal while it says so is let pass).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

from phanet.compat import PhanetDeprecationWarning
from phanet.errors import PhanetError, PhanetWarning
from phanet.runtime import Stopped, restore_signals, stop_on_signals, stopping
from phanet.version import __version__

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
    ("app", "app"),
    ("export", "export"),
    ("docs", "docs"),
)


class _Parser(argparse.ArgumentParser):
    """A parser whose errors are one line: the message and where the options are listed (argparse prints
    the whole usage above it); the subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="phanet", description="PhaNet: multi-view facial expression recognition with joint head-pose estimation."
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
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(func=module.run, flags=getattr(module, "FLAGS", {}))
    return parser


def flag_names(args: argparse.Namespace) -> Callable[[str], str]:
    """How the command of ``args`` names a library parameter in an error: its ``FLAGS`` entry, else
    its option of that name (``resume`` → ``--resume``), else the name itself (a config key)."""
    options = {name for name in vars(args) if name not in ("func", "flags", "command", "overrides")}

    def flag(name: str) -> str:
        if name in args.flags:
            return args.flags[name]
        return f"--{name.replace('_', '-')}" if name in options else name

    return flag


def _one_line_warnings(show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints the package's own warnings (an old name, a bounded setting) as
    one line, ``phanet: warning: ...``."""

    def shown(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, (PhanetDeprecationWarning, PhanetWarning)):
            print(f"phanet: warning: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    return shown


def _escape_file_name_bytes(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: what a stream cannot encode written as escapes, a byte of a file name that
    is not UTF-8 (a lone surrogate ``\udce9``) as ``\xe9``, as :func:`phanet.text.printable` writes it."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    return "".join(
        f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c.encode("ascii", "backslashreplace").decode("ascii")
        for c in text
    ), error.end


codecs.register_error("phanet-escape", _escape_file_name_bytes)


def _printable_streams() -> None:
    """A terminal that takes only its encoding (``LANG=en_US.UTF-8``: Python's strict errors) is shown the
    names it cannot take with escapes rather than ending the command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="phanet-escape")


def main(argv: list[str] | None = None) -> int:
    _printable_streams()
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        return _main(argv)


def _main(argv: list[str] | None) -> int:
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
    empty = next((name for name, value in vars(args).items() if value == "" or (isinstance(value, list) and "" in value)), None)
    if empty is not None:  # "" is no file, folder or setting; as a path it would mean the current folder
        _say(f"phanet {args.command}: error: {flag_names(args)(empty)}: an empty value; give a name or leave the option out")
        return 2
    main_thread = threading.current_thread() is threading.main_thread()
    previous = stop_on_signals() if main_thread else {}
    try:
        return int(args.func(args) or 0)
    except PhanetError as exc:
        _say(f"phanet {args.command}: error: {exc.render(flag_names(args))}")
        return 2
    except KeyboardInterrupt as exc:
        stopped = exc if isinstance(exc, Stopped) else Stopped(signal.SIGINT, "interrupted")
        _say(f"phanet {args.command}: {stopped}")
        return stopped.exit_status
    finally:
        # A stopped command ignores further stop signals while the process ends (the interpreter drops
        # its handlers as it shuts down): a second Ctrl+C must not replace the exit status by the signal.
        restore_signals({signum: signal.SIG_IGN for signum in previous} if stopping() else previous)


def _say(line: str) -> None:
    """Print the command's last line to stderr; a terminal that is gone (SIGHUP) cannot take it."""
    with contextlib.suppress(OSError):
        print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
