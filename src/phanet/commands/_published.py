"""What the experiment commands (demo, crossval, ablate) hand to their published summary: the command
line as typed, and the landmarks of the built-in data (none for other datasets)."""

from __future__ import annotations

import shlex
import sys
from typing import Any


def command_line(command: str, out: str) -> str:
    """The command line of this run as typed (``phanet COMMAND ...``); ``phanet COMMAND --out OUT`` when
    the command was called from Python instead."""
    typed = sys.argv[1:]
    return shlex.join(["phanet", *(typed if typed[:1] == [command] else [command, "--out", out])])


def landmarks_of(faces: Any) -> Any:
    """The landmark table of the built-in data's ``faces`` (the ground truth of where the squares
    looked); None for a dataset without landmarks."""
    from phanet.data.adapters.synth import landmark_table
    from phanet.errors import PhanetError

    try:
        return landmark_table(faces)
    except (PhanetError, KeyError, OSError):
        return None
