"""Summarise and draw the training dynamics of runs trained with ``train.dynamics=N``.

    phanet train --config demo --out runs/dyn/literal train.dynamics=10
    phanet train --config demo --out runs/dyn/sigmoid train.dynamics=10 model.sal_form=sigmoid ...
    python benchmarks/training_dynamics.py runs/dyn/literal runs/dyn/sigmoid --out runs/dyn/figures

For every run folder: ``<out>/<run>_dynamics.png`` (gradients per part, the S1 backbone's gradient
per loss part, SAL's pre-activations and the scale weights over the steps) and one line of a table
printed as Markdown (and written to ``<out>/dynamics_summary.csv``):

- ``stuck steps cN %``: the share of recorded steps at which weight N received (almost) no gradient:
  with the literal gate of Eq. 7, SAL's pre-activation negative for every sample of the batch (c =
  0.5 exactly, a dead weight), or with either gate, the batch mean of c above 0.99 or below 0.01
  (a saturated sigmoid); counted over the steps at which SAL was updated (not held);
- ``c (last half)``: the mean and the within-batch standard deviation of each weight over the second
  half of the recorded steps;
- ``S1 loss``: S1's expression loss in the first and the last epoch (``metrics.csv``), against the
  entropy of the training class frequencies;
- the validation accuracies of the last epoch.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from phanet.config import Config, config_from_dict, read_yaml
from phanet.reports.figures import training_dynamics_figure
from phanet.reports.tables import to_markdown


def prior_entropy(run: Path, config: Config) -> float:
    """Entropy (nats) of the expression frequencies of the run's training subjects."""
    import json

    from phanet.data.registry import load_dataset

    split = json.loads((run / "split.json").read_text())
    faces = load_dataset(config.data.dataset, config.data.root, **config.data.options)
    counts = pd.Series([s.expression for s in faces.samples if s.subject in set(split["train"])]).value_counts()
    p = counts / counts.sum()
    return float(-(p * p.apply(math.log)).sum())


def summarise(run: Path, config: Config, entropy: float | None) -> dict:
    dynamics = pd.read_csv(run / "dynamics.csv")
    metrics = pd.read_csv(run / "metrics.csv")
    row: dict = {"run": run.name, "steps": int(dynamics["step"].max()) + 1, "epochs": len(metrics)}
    late = dynamics[dynamics["step"] >= dynamics["step"].max() / 2]
    form = config.model.sal_form
    row["SAL gate"] = form
    trained = dynamics[dynamics["update/SAL"] > 0] if "update/SAL" in dynamics else dynamics  # not held
    for i in (1, 2, 3):
        if f"sal/z{i}_positive" in dynamics:
            # no gradient: Eq. 7's ReLU closed for the whole batch (literal), or the sigmoid saturated
            dead = (trained[f"sal/z{i}_positive"] == 0) if form == "literal" else False
            saturated = (trained[f"sal/c{i}_mean"] > 0.99) | (trained[f"sal/c{i}_mean"] < 0.01)
            row[f"stuck steps c{i} %"] = round(100 * float((dead | saturated).mean()), 1)
        if f"sal/c{i}_mean" in late:
            row[f"c{i} (last half)"] = f"{late[f'sal/c{i}_mean'].mean():.3f} ± {late[f'sal/c{i}_std'].mean():.3f}"
    if "train/scale1" in metrics:
        row["S1 loss first → last"] = f"{metrics['train/scale1'].iloc[0]:.3f} → {metrics['train/scale1'].iloc[-1]:.3f}"
        if entropy is not None:
            row["prior entropy"] = round(entropy, 3)
    for column in ("val/expression_acc", "val/pose_acc"):
        if column in metrics:
            row[column] = round(100 * float(metrics[column].iloc[-1]), 2)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders trained with train.dynamics > 0")
    parser.add_argument("--out", type=Path, required=True, help="folder for the figures and the summary")
    parser.add_argument("--no-entropy", action="store_true", help="skip reading the data for the prior entropy")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for run in args.runs:
        if not (run / "dynamics.csv").is_file():
            print(f"{run}: no dynamics.csv (train it with train.dynamics=N)", file=sys.stderr)
            return 2
        training_dynamics_figure(pd.read_csv(run / "dynamics.csv"), args.out / f"{run.name}_dynamics.png", run.name)
        config = config_from_dict(read_yaml(run / "config.yaml"))
        rows.append(summarise(run, config, None if args.no_entropy else prior_entropy(run, config)))
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "dynamics_summary.csv", index=False)
    print(to_markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
