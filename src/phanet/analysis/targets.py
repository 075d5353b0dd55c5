"""Does PhaNet train the way the paper shows? The training targets, measured on finished runs.

For a ``phanet crossval`` folder (``fold*/phanet`` and ``fold*/densenet``), a ``phanet demo``
folder (``phanet`` and ``densenet``) or a single PhaNet run folder (a ``phanet train`` output or an
``ablate`` row), one row per fold or run, then mean ± std over them:

- FER and pose accuracy of PhaNet and DenseNet-40 on the held-out subjects, and their differences;
- each scale weight c on the test images, mean ± std over the images, and the median of its
  validation std over the second half of the epochs; a weight is *pinned* when its test mean is
  within 0.01 of 0.5 or above 0.99;
- S1's expression loss in the last epoch against the entropy of the training labels' class
  frequencies (the loss of a head that predicts the prior), as a percentage below it;
- the share of test images whose S3 square holds a mouth, eye or brow landmark (the built-in
  dataset's ``lm_*`` columns), over all yaws and at the worst yaw;
- the share of test images whose S2 or S3 square is *pinned*, its centre or side at the end of the
  range its PAN bounds it to, where the PAN's output saturates and no loss moves the square.

Each target is then checked over the folds. Nothing is trained or evaluated again: the numbers come
from each run's ``metrics.csv``, ``evaluation/predictions.csv`` and ``split.json``; only the
landmarks are read from (or, for streamed data, rendered like) the dataset.

    python benchmarks/training_targets.py runs/cv3
    python benchmarks/training_targets.py runs/demo runs/demo_s1
    python benchmarks/training_targets.py runs/demo runs/demo_s1 --squares squares.png
    python benchmarks/training_targets.py runs/ablate/table6_n_s1_h_s2_h_s3_jsa runs/other/table6_n_s1_h_s2_h_s3_jsa

``--squares`` draws where each run's PANs put their squares, coloured by true expression (a square
that follows the face spreads with the pose and the face; one that signals the expression sits in
a few places per class).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from phanet.data.adapters.synth import landmark_table
from phanet.data.datasets import load_faces
from phanet.demo import demo_faces
from phanet.reports.coverage import coverage_table, local_s3_squares, pinned_squares
from phanet.training.run_folder import RunFolder

SCALE_WEIGHTS = ("c1", "c2", "c3")
#: The measurements of :func:`fold_row` that :func:`fold_summary` shows, in its order.
SHOWN = (
    "PhaNet FER",
    "DenseNet FER",
    "FER gain",
    "PhaNet pose",
    "DenseNet pose",
    "pose gap",
    "c1 mean",
    "c1 std",
    "c2 mean",
    "c2 std",
    "c3 mean",
    "c3 std",
    "c1 val std",
    "c2 val std",
    "c3 val std",
    "S1 loss",
    "prior entropy",
    "S1 below prior %",
    "S3 on region %",
    "S3 worst yaw %",
    "S2 pinned %",
    "S3 pinned %",
)


def experiment_folds(folder: Path) -> list[tuple[str, Path, Path | None]]:
    """(name, PhaNet run folder, DenseNet-40 run folder or None) for every fold of a crossval, the demo
    itself, or a single run folder."""
    folds = sorted(p for p in folder.glob("fold*") if (p / "phanet").is_dir())
    if folds:
        return [(f"{folder.name}/{p.name}", p / "phanet", p / "densenet") for p in folds]
    if (folder / "phanet").is_dir():
        return [(folder.name, folder / "phanet", folder / "densenet")]
    if RunFolder(folder).config_file.exists():
        return [(f"{folder.parent.name}/{folder.name}", folder, None)]
    raise SystemExit(f"{folder}: no phanet run folder (expected phanet/, fold*/phanet/ or a run's config.yaml)")


def prior_entropy(labels: pd.Series) -> float:
    """Entropy (nats) of the class frequencies: the cross-entropy of a head that predicts the prior."""
    freq = labels.value_counts(normalize=True).to_numpy()
    return float(-(freq * np.log(freq)).sum())


def fold_row(name: str, phanet_folder: Path, dense_folder: Path | None) -> dict[str, object]:
    phanet = RunFolder(phanet_folder)
    summary, predictions = phanet.read_evaluation()
    row: dict[str, object] = {
        "run": name,
        "PhaNet FER": 100 * summary["expression_accuracy"],
        "PhaNet pose": 100 * summary["pose_accuracy"],
    }
    dense = RunFolder(dense_folder) if dense_folder is not None else None
    if dense is not None and dense.evaluated():
        base, _ = dense.read_evaluation()
        row.update({"DenseNet FER": 100 * base["expression_accuracy"], "DenseNet pose": 100 * base["pose_accuracy"]})
        row["FER gain"] = row["PhaNet FER"] - row["DenseNet FER"]
        row["pose gap"] = row["DenseNet pose"] - row["PhaNet pose"]
    metrics = phanet.read_metrics()
    second_half = metrics.iloc[len(metrics) // 2 :]
    for c in SCALE_WEIGHTS:
        row[f"{c} mean"] = float(predictions[c].mean())
        row[f"{c} std"] = float(predictions[c].std())
        row[f"{c} val std"] = float(second_half[f"val/{c}_std"].median())
        row[f"{c} pinned"] = abs(row[f"{c} mean"] - 0.5) < 0.01 or row[f"{c} mean"] > 0.99

    config = phanet.stored_config()
    # the built-in data from its rendered folder (landmarks read from its manifest, not rendered again)
    faces = demo_faces(config, progress=False)[0] if config.data.dataset == "synth" else load_faces(config)
    train_subjects = set(json.loads(phanet.split_file.read_text())["train"])
    train_labels = pd.Series([s.expression for s in faces.samples if s.subject in train_subjects])
    prior = prior_entropy(train_labels)
    # S1's own expression loss is logged only where the loss has L_att (not Table VIII's L(e), L(p) + L(e))
    row["S1 loss"] = float(metrics["train/scale1"].iloc[-1]) if "train/scale1" in metrics else float("nan")
    row["prior entropy"] = prior
    row["S1 below prior %"] = 100 * (1 - row["S1 loss"] / prior)

    tested = set(predictions["path"])
    test_faces = faces.subset([i for i, s in enumerate(faces.samples) if s.path in tested])
    coverage = coverage_table(predictions, landmark_table(test_faces))
    s3 = coverage[coverage["scale"] == "S3"].set_index("pose")["any"]
    row["S3 on region %"] = 100 * float(s3["all"])
    row["S3 worst yaw %"] = 100 * float(s3.drop("all").min())
    attention = config.model.attention
    for scale, share in pinned_squares(predictions, attention.side_min, attention.side_max).items():
        row[f"{scale} pinned %"] = 100 * share
    return row


def fold_table(folds: list[tuple[str, Path, Path | None]]) -> pd.DataFrame:
    """:func:`fold_row` of each of ``folds`` (as :func:`experiment_folds` gives them), indexed by run."""
    return pd.DataFrame([fold_row(*fold) for fold in folds]).set_index("run")


def fold_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The :data:`SHOWN` measurements of :func:`fold_table` that the runs have, a column per run, and with
    several runs their mean and std."""
    numbers = table[[c for c in SHOWN if c in table]]
    summary = numbers.T
    if len(table) > 1:
        summary["mean"] = numbers.mean()
        summary["std"] = numbers.std(ddof=1)
    return summary


def check(table: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """(target, met, what was measured) for each target of the folds in ``table``."""
    stds = table[[f"{c} std" for c in SCALE_WEIGHTS]]
    out = [
        (
            "every c: test std > 0.02, pinned at neither 0.5 nor 1",
            bool((stds > 0.02).all().all() and not table[[f"{c} pinned" for c in SCALE_WEIGHTS]].any().any()),
            f"smallest std {stds.min().min():.3f}",
        ),
        ("PhaNet pose >= 97 %", bool((table["PhaNet pose"] >= 97).all()), f"{table['PhaNet pose'].min():.2f} % at worst"),
        (
            "S3 on mouth, eye or brow >= 90 % at every yaw",
            bool((table["S3 worst yaw %"] >= 90).all()),
            f"{table['S3 worst yaw %'].min():.1f} % at the worst yaw",
        ),
    ]
    below = table["S1 below prior %"].dropna()
    without = len(table) - len(below)  # runs whose loss has no L_att log no S1 loss
    if len(below):
        said = f"{below.min():.1f} % at worst" + (f" ({without} run(s) without L_att)" if without else "")
        out.insert(1, ("S1's expression loss >= 25 % below the prior entropy", bool((below >= 25).all()) and not without, said))
    if "FER gain" in table:
        out += [
            (
                "PhaNet pose within 1.5 points of DenseNet-40",
                bool((table["pose gap"] <= 1.5).all()),
                f"{table['pose gap'].max():.2f} points at worst",
            ),
            (
                "PhaNet FER above DenseNet-40 in every fold",
                bool((table["FER gain"] > 0).all()),
                f"{table['FER gain'].min():+.2f} points at worst",
            ),
            ("... by >= 5 points on average", bool(table["FER gain"].mean() >= 5), f"{table['FER gain'].mean():+.2f} points"),
        ]
    return out


def squares_figure(folds: list[tuple[str, Path, Path | None]], path: Path) -> Path:
    """Where each run's PANs put their squares on its test images, by true expression: the S2 square in the
    image, the S3 square in the zoomed S2 square (:func:`~phanet.reports.figures.local_squares_figure`)."""
    from phanet.reports.figures import local_squares_figure

    runs = {}
    for name, folder, _ in folds:
        phanet = RunFolder(folder)
        _, predictions = phanet.read_evaluation()
        classes = json.loads(phanet.classes_file.read_text())["expressions"]
        labels = predictions["true_expression"].map({c: i for i, c in enumerate(classes)}).to_numpy()
        runs[name] = (predictions[["s2_x", "s2_y", "s2_l"]].to_numpy(float), local_s3_squares(predictions), labels)
    return local_squares_figure(runs, classes, path)
