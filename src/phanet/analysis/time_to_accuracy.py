"""Time to accuracy: how long a training takes until its validation FER accuracy first reaches given levels.

What a user waits for is not an epoch but an accuracy. For each run folder (``phanet train``,
``phanet demo``'s ``phanet/`` and ``densenet/``, a crossval fold), the table gives, for every
level, the first epoch whose validation FER accuracy reaches it and the wall time of the epochs up
to it (``metrics.csv``'s ``seconds``: training and validation, not the data rendering or the
test), so that recipes are compared by the time to the same accuracy::

    python benchmarks/time_to_accuracy.py runs/demo/phanet runs/demo/densenet --levels 0.6,0.7,0.75
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from phanet.training.module import MONITOR
from phanet.training.run_folder import RunFolder

#: The levels of validation FER accuracy reported by default.
LEVELS = (0.60, 0.70, 0.75)


def time_to_levels(metrics: pd.DataFrame, levels: Sequence[float] = LEVELS) -> dict[str, float]:
    """For each level, the first epoch (counted from 1) whose validation FER accuracy reaches it and
    the minutes of the epochs up to and including it; NaN for a level never reached. Also the best
    validation FER accuracy and the epochs run."""
    per_epoch = metrics.groupby("epoch").last().sort_index()
    if "seconds" not in per_epoch:
        raise ValueError("metrics.csv holds no epoch times (written before they were recorded)")
    minutes = per_epoch["seconds"].cumsum() / 60
    row: dict[str, float] = {
        "epochs": float(len(per_epoch)),
        "minutes": float(minutes.iloc[-1]),
        "best val FER %": 100 * float(per_epoch[MONITOR].max()),
    }
    for level in levels:
        reached = per_epoch.index[per_epoch[MONITOR] >= level]
        first = reached[0] if len(reached) else None
        row[f"epoch to {100 * level:g} %"] = math.nan if first is None else float(first + 1)
        row[f"minutes to {100 * level:g} %"] = math.nan if first is None else float(minutes.loc[first])
    return row


def table(runs: Sequence[str | Path], levels: Sequence[float] = LEVELS) -> pd.DataFrame:
    """One row per run folder; with its test FER and pose accuracy when it was evaluated (NaN if not)."""
    rows = []
    for run in runs:
        folder = RunFolder(run)
        tested = folder.read_evaluation()[0] if folder.evaluated() else {}
        row = {"run": str(run), **time_to_levels(folder.read_metrics(), levels)}
        for key, column in (("expression_accuracy", "test FER %"), ("pose_accuracy", "test pose %")):
            row[column] = 100 * float(tested.get(key, math.nan))
        rows.append(row)
    return pd.DataFrame(rows)
