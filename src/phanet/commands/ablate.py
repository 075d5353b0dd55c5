"""phanet ablate."""

from __future__ import annotations

import argparse

from phanet.commands.train import NO_PROGRESS_HELP, TRAINER_FLAGS, add_trainer_arguments, trainer_overrides
from phanet.text import plural

HELP = "Table VI (attention configurations) and Table VIII (loss settings): one training run per row"
DESCRIPTION = """Train and evaluate every row of the paper's ablation tables on one dataset/config.

  phanet ablate --config demo --out runs/ablate
  phanet ablate --config paper --config kdef data.root=/data/KDEF --table 6 --out runs/kdef-ablate

Rows already finished in --out are reused, an interrupted row resumes. Writes table6.md/.csv,
table8.md/.csv and report.md (measured ordering next to the paper's).

--rows trains only the rows named (their run folders), e.g. to spread one table over several
processes, GPUs or machines sharing --out; the same command without --rows then writes the tables
from the finished rows:

  phanet ablate --config demo --table 6 --out runs/ablate --rows table6_n_s1,table6_h_s2
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
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--table", choices=("6", "8", "all"), default="all", help="which table (default: all)")
    parser.add_argument(
        "--rows",
        help="comma-separated run folders of the rows to train and evaluate, e.g. "
        "table6_n_s1,table6_h_s2 (default: every row; the tables are written only then)",
    )
    parser.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    add_trainer_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import os
    import time
    from pathlib import Path

    from phanet.config import POSE_LOSS_SETTINGS, load_config

    config = load_config(args.config or ["demo"], list(args.overrides) + trainer_overrides(args))
    started, load = time.time(), os.getloadavg()[0]
    from phanet.data.datasets import load_faces, make_split
    from phanet.experiments import ablation_runs
    from phanet.files import atomic_write_text
    from phanet.reports.summaries import ablation_markdown, training_columns

    out = Path(args.out)
    faces = load_faces(config)
    split = make_split(faces, config)
    tables = ("6", "8") if args.table == "all" else (args.table,)
    rows = None if args.rows is None else [name.strip() for name in args.rows.split(",") if name.strip()]
    results = ablation_runs(config, faces, split, out, tables, progress=not args.no_progress, rows=rows)
    if rows is not None:
        shown = set()  # Table VIII's L_Multi row is Table VI's full row: once
        for label, row in (row for table in results.values() for row in table):
            if row.run_dir in shown:
                continue
            shown.add(row.run_dir)
            pose = (
                f", pose {100 * row.summary['pose_accuracy']:.2f} %" if row.summary["loss_setting"] in POSE_LOSS_SETTINGS else ""
            )
            trained = training_columns(row)
            print(
                f"{row.run_dir.name} ({label}): FER {100 * row.summary['expression_accuracy']:.2f} %{pose}; "
                f"tested epoch {trained['Tested epoch']} of {trained['Epochs']}, training FER then "
                f"{trained['Train FER']:.1f} %; ended by {trained['Ended by']}"
            )
        print("the tables are written by the same command without --rows once every row is finished")
        return 0
    markdown = ablation_markdown(results, faces, out)
    header = (
        f"# Ablations on {faces.name}\n\nConfig: `{' + '.join(args.config or ['demo'])}` with overrides "
        f"`{' '.join(args.overrides) or 'none'}`; seed {config.seed}; test subjects: "
        f"{len(split.subjects['test'])}, {plural(len(split.test), 'image')}. Accuracies in %.\n\n"
    )
    atomic_write_text(out / "report.md", header + markdown + "\n")
    print(markdown)
    print(f"\nwritten: {out / 'report.md'}")
    _publish(results, config, faces.subset(split.test), out, args, started, load)
    return 0


def _publish(results, config, test, out, args, started: float, load: float) -> None:
    """The published summary of the rows (:mod:`phanet.reports.published`) in ``out``."""
    from phanet.commands._published import command_line, landmarks_of
    from phanet.reports import published
    from phanet.runtime import uses_cuda
    from phanet.synth.settings import GENERATOR_VERSION

    runs = [(label, None, table, run.run_dir) for table, rows in results.items() for label, run in rows]
    device = "CUDA" if uses_cuda(config.train.accelerator) else "CPU"
    version = GENERATOR_VERSION if config.data.dataset == "synth" else None
    published.publish(
        runs,
        "ablation",
        out,
        command_line("ablate", args.out),
        config.train.threads,
        device,
        started,
        load,
        version,
        landmarks_of(test),
    )
