"""Old names that still work for one release: the one table of renamed options, keys and groups.

Every rename of something a user writes (a config key, a dataset option, a named group of a file-name
pattern) has one entry here, with the release that will stop accepting the old name. Code that reads
such a name calls :func:`deprecated`, which warns with :class:`PhanetDeprecationWarning` (a
``FutureWarning``, shown to users by default) and returns the new name; the command line prints it
as one line, ``phanet: warning: ...``.
"""

from __future__ import annotations

import warnings

#: The release that stops accepting the old names below.
REMOVED_IN = "0.3"


class PhanetDeprecationWarning(FutureWarning):
    """An old name was used; the message gives the new one."""


#: Config keys, as (section, old key) -> new key.
CONFIG_KEYS: dict[tuple[str, str], str] = {("model", "source_size"): "input_size"}

#: Each dataset's earlier name for the option that chooses its pose classes, now ``poses`` everywhere.
DATASET_OPTIONS: dict[str, dict[str, str]] = {
    "bu3dfe": {"pans": "poses"},
    "kdef": {"angles": "poses"},
    "multipie": {"cameras": "poses"},
    "affectnet": {"pose_bins": "poses"},
    "synth": {"bins": "poses"},
}

#: Named groups of a dataset's file-name ``pattern`` option, as dataset -> {old group: new group}.
PATTERN_GROUPS: dict[str, dict[str, str]] = {"bu3dfe": {"pan": "yaw"}}

#: Command-line options of the scripts beside the package, as script -> {old option: new option}.
SCRIPT_OPTIONS: dict[str, dict[str, str]] = {
    "benchmarks/realism.py": {"--max-pan": "--max-yaw"},
    "benchmarks/square_swap.py": {"--face-pans": "--face-yaws"},
}


def deprecated(where: str, old: str, new: str, what: str | None = None) -> str:
    """Warn that ``old`` in ``where`` is now called ``new``; returns ``new``.

    ``old`` is a key of ``where``, or else ``what`` says what it names inside it (``"named group"`` of
    a pattern)."""
    renamed = f"{where}: the {what} {old!r} is now called {new!r}" if what else f"{where}.{old} is now called {where}.{new}"
    warnings.warn(f"{renamed}; the old name stops working in phanet {REMOVED_IN}", PhanetDeprecationWarning, stacklevel=3)
    return new


def dataset_option(dataset: str, option: str) -> str | None:
    """The current name of ``option`` of ``dataset`` when it is an old one, else None."""
    return DATASET_OPTIONS.get(dataset, {}).get(option)
