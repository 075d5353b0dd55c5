"""Validation curves of several experiments side by side: how far and how steadily each network learned.

For ``phanet crossval`` or ``phanet demo`` folders (the same layout as ``training_targets.py``
reads), one row per experiment, fold and method (``phanet``, ``densenet``) from each run's
``metrics.csv``:

- the epoch with the best validation FER accuracy (the checkpoint evaluated) and that accuracy;
- validation FER and pose in the last epoch;
- the *swing* of validation pose over the last ``--last`` epochs: the mean absolute change from one
  epoch to the next (points), which is large when the network evaluated moves back and forth;

then the mean over the folds per experiment and method, and, with ``--out``, a figure: validation FER
(top) and pose (bottom) per epoch, one column per fold, one colour per experiment.

    python benchmarks/validation_curves.py runs/cv3 runs/cv3_ema --labels "raw weights" "EMA 0.99" --out curves.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from phanet.analysis.targets import experiment_folds
from phanet.training.run_folder import RunFolder

METHODS = ("phanet", "densenet")


def swing(values: pd.Series, last: int) -> float:
    """Mean absolute change between consecutive values among the last ``last`` (in the values' units)."""
    tail = values.to_numpy(dtype=float)[-last:]
    return float(np.abs(np.diff(tail)).mean()) if len(tail) > 1 else float("nan")


def method_runs(folders: list[Path], labels: list[str]) -> list[tuple[str, int, str, pd.DataFrame]]:
    """(experiment label, fold number, method, its metrics table) for every run of every folder."""
    runs = []
    for folder, label in zip(folders, labels):
        for index, (_, phanet, densenet) in enumerate(experiment_folds(folder), start=1):
            paths = {"phanet": phanet, "densenet": densenet}
            runs += [
                (label, index, method, RunFolder(paths[method]).read_metrics())
                for method in METHODS
                if paths[method] is not None and paths[method].is_dir()
            ]
    return runs


def curve_rows(runs: list[tuple[str, int, str, pd.DataFrame]], last: int = 4) -> pd.DataFrame:
    rows = []
    for label, index, method, metrics in runs:
        fer, pose = metrics["val/expression_acc"] * 100, metrics["val/pose_acc"] * 100
        best = int(fer.to_numpy().argmax())
        rows.append(
            {
                "experiment": label,
                "fold": index,
                "method": method,
                "epochs": len(metrics),
                "best epoch": best + 1,
                "best val FER": fer.iloc[best],
                "val pose at best": pose.iloc[best],
                "last val FER": fer.iloc[-1],
                "last val pose": pose.iloc[-1],
                "pose swing": swing(pose, last),
                "FER swing": swing(fer, last),
            }
        )
    return pd.DataFrame(rows)


def experiment_means(table: pd.DataFrame) -> pd.DataFrame:
    """The mean over the folds of :func:`curve_rows`, per experiment and method."""
    return table.groupby(["experiment", "method"], sort=False).mean(numeric_only=True).drop(columns="fold")


def curves_figure(runs: list[tuple[str, int, str, pd.DataFrame]], labels: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folds = max(index for _, index, _, _ in runs)
    fig, axes = plt.subplots(2, folds, figsize=(4.2 * folds, 6.4), squeeze=False, sharey="row")
    colours = dict(zip(labels, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    styles = dict(zip(METHODS, ("-", ":")))
    for label, index, method, metrics in runs:
        epochs = metrics["epoch"] + 1
        for row, key in enumerate(("val/expression_acc", "val/pose_acc")):
            axes[row][index - 1].plot(
                epochs,
                metrics[key] * 100,
                styles[method],
                color=colours[label],
                marker=".",
                label=f"{label}, {'PhaNet' if method == 'phanet' else 'DenseNet-40'}",
            )
    for column in range(folds):
        axes[0][column].set_title(f"fold {column + 1}")
        axes[1][column].set_xlabel("epoch")
    axes[0][0].set_ylabel("validation FER accuracy (%)")
    axes[1][0].set_ylabel("validation pose accuracy (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
