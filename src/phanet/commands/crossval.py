"""phanet crossval."""

from __future__ import annotations

import argparse

from phanet.commands.train import NO_PROGRESS_HELP, TRAINER_FLAGS, add_trainer_arguments, trainer_overrides

HELP = "subject-independent K-fold cross-validation (mean ± std) of PhaNet and baselines"
DESCRIPTION = """Subject-independent K-fold cross-validation (the paper uses 5 folds).

  phanet crossval --config demo --folds 5 --out runs/cv
  phanet crossval --config demo --folds 3 --methods phanet,densenet,hog_fc --out runs/cv3

Each subject is in exactly one test fold; validation subjects are drawn from the other folds.
Finished folds in --out are reused, so folds can also train apart, in separate processes or on
separate machines sharing --out (--fold 1, --fold 2, ...); a run without --fold then writes the tables.
Writes folds.md/.csv, summary.md/.csv and table5.md/.csv (accuracy per expression).
"""

FLAGS = TRAINER_FLAGS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")
    parser.add_argument(
        "--config",
        action="append",
        help="preset name or YAML file, repeatable: later ones "
        "override earlier ones, e.g. --config paper --config kdef (default: demo)",
    )
    parser.add_argument("--folds", type=int, default=5, help="number of folds K (default: 5)")
    parser.add_argument("--methods", default="phanet", help="comma-separated: phanet, densenet, vgg19, hog_fc")
    parser.add_argument(
        "--fold", type=_fold_numbers, metavar="K[,K...]", help="train only these folds (1 to --folds) and write no tables"
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    add_trainer_arguments(parser)


def _fold_numbers(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fold numbers like 2 or 1,3, got {text!r}") from None
    return numbers


def run(args: argparse.Namespace) -> int:
    import os
    import time
    from pathlib import Path

    from phanet.config import load_config

    started, load = time.time(), os.getloadavg()[0]

    config = load_config(args.config or ["demo"], list(args.overrides) + trainer_overrides(args))
    from phanet.data.datasets import load_faces
    from phanet.experiments import baseline_config, crossval_runs
    from phanet.reports.summaries import crossval_tables, per_expression_table
    from phanet.reports.tables import write_table

    methods = {name.strip(): baseline_config(config, name.strip()) for name in args.methods.split(",") if name.strip()}
    out = Path(args.out)
    faces = load_faces(config)
    results = crossval_runs(config, faces, args.folds, methods, out, progress=not args.no_progress, only=args.fold)
    if args.fold is not None:
        folds = ", ".join(str(k) for k in args.fold)
        print(f"fold {folds} of {args.folds} done in {out}; a run without --fold writes the tables once every fold is")
        return 0
    per_fold, summary = crossval_tables(results)
    folds_md = write_table(per_fold, out / "folds", f"Accuracy (%) per fold on {faces.name}")
    summary_md = write_table(summary, out / "summary", f"{args.folds}-fold cross-validation on {faces.name}")
    table5_md = write_table(
        per_expression_table(results), out / "table5", f"FER accuracy (%) per expression, mean over {args.folds} folds (Table V)"
    )
    print(folds_md + "\n\n" + summary_md + "\n\n" + table5_md)
    _publish(results, config, faces, out, args, started, load)
    return 0


def _publish(results, config, faces, out, args, started: float, load: float) -> None:
    """The published summary of the folds (:mod:`phanet.reports.published`) in ``out``."""
    from phanet.commands._published import command_line, landmarks_of
    from phanet.experiments import METHOD_NAMES
    from phanet.reports import published
    from phanet.runtime import uses_cuda
    from phanet.synth.settings import GENERATOR_VERSION

    runs = [
        (METHOD_NAMES.get(name, name), k, None, run.run_dir)
        for name, folds in results.items()
        for k, run in enumerate(folds, start=1)
    ]
    device = "CUDA" if uses_cuda(config.train.accelerator) else "CPU"
    version = GENERATOR_VERSION if config.data.dataset == "synth" else None
    published.publish(
        runs,
        "crossval",
        out,
        command_line("crossval", args.out),
        config.train.threads,
        device,
        started,
        load,
        version,
        landmarks_of(faces),
    )
