"""phanet crossdata."""

from __future__ import annotations

import argparse

HELP = "cross-dataset test (Table IX): evaluate checkpoints on another dataset through a class mapping"
DESCRIPTION = """Evaluate checkpoints trained on one dataset on another (Table IX).

  phanet crossdata --checkpoint runs/bu3dfe/phanet/checkpoints/best.ckpt --name PhaNet \\
                   --checkpoint runs/bu3dfe/densenet/checkpoints/best.ckpt --name DenseNet \\
                   --data /data/SFEW --dataset sfew --option split=Val --out runs/cross-sfew

Expression classes are matched by meaning (AN = Anger = Angry, FE = AF = Fear, HA = Happy = smile,
...; see phanet.data.classes). Classes without a counterpart (e.g. Multi-PIE scream, squint;
AffectNet contempt) are reported with their counts and left out of the accuracy. --map FILE.yaml
overrides the mapping (data class: model class, or null to leave a class out).
"""

FLAGS = {"options": "--option"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from phanet.commands.evaluate import add_data_arguments

    parser.add_argument("--checkpoint", action="append", required=True, help="a trained checkpoint (repeatable)")
    parser.add_argument("--name", action="append", default=[], help="method name for each --checkpoint")
    add_data_arguments(parser)
    parser.add_argument("--map", help="YAML file: data expression class -> model class (null: no counterpart)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per forward pass (default 64)")
    parser.add_argument(
        "--device", default=None, help="PyTorch device: cpu, cuda, cuda:N or mps (default: cuda, else mps, else cpu)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from phanet.checks import shorten
    from phanet.config.loading import MAX_CONFIG_BYTES, parse_yaml
    from phanet.data.classes import cross_mapping
    from phanet.errors import PhanetError
    from phanet.evaluation import evaluate, format_summary
    from phanet.files import atomic_write_text, read_limited
    from phanet.inference import TrainedModel
    from phanet.reports.tables import pct, write_table
    from phanet.training.run_folder import RunFolder, write_evaluation
    from phanet.workflow import default_device, resolve_eval_data

    if args.data is None:
        raise PhanetError("--data: give the folder or manifest of the dataset to test on")
    if args.name and len(args.name) != len(args.checkpoint):
        raise PhanetError("--name: give one name per --checkpoint")
    overrides: dict[str, str | None] = {}
    if args.map:
        try:
            overrides = parse_yaml(read_limited(args.map, MAX_CONFIG_BYTES, "class map").decode("utf-8"), args.map) or {}
        except (OSError, ValueError, PhanetError) as exc:  # ValueError: not UTF-8
            reason = shorten(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise PhanetError(f"--map: {args.map} is not a readable YAML mapping ({reason})") from None
        if not isinstance(overrides, dict):
            raise PhanetError(f"--map: {args.map} must map data classes to model classes")
    out = Path(args.out)
    rows, mapping_rows = [], []
    for i, checkpoint in enumerate(args.checkpoint):
        name = args.name[i] if args.name else RunFolder.holding(checkpoint).path.name or f"model{i + 1}"
        model = TrainedModel.from_checkpoint(checkpoint, args.device or default_device())
        faces, description = resolve_eval_data(model.training_config, args.data, args.dataset, args.option, "all")
        mapping = cross_mapping(faces.expressions, model.expressions, overrides)
        for data_class in faces.expressions:
            mapping_rows.append(
                {
                    "Method": name,
                    "Data class": data_class,
                    "Model class": mapping.get(data_class, "(no counterpart)"),
                    "Images": sum(1 for s in faces.samples if faces.expressions[s.expression] == data_class),
                }
            )
        summary, frame = evaluate(model, faces, args.batch_size, mapping, progress=True)
        summary = {"checkpoint": checkpoint, "data": description, "mapping": mapping, **summary}
        write_evaluation(out / name, summary, frame)
        print(f"{name}:\n{format_summary(summary)}\n")
        rows.append(
            {
                "Methods": name,
                "Accuracy": pct(summary["expression_accuracy"]),
                "Images scored": int(summary["samples"] - sum(summary["unmatched_expressions"].values())),
                "Left out (no counterpart)": ", ".join(f"{k} ({v})" for k, v in summary["unmatched_expressions"].items()) or "-",
            }
        )
    table = write_table(pd.DataFrame(rows), out / "table9", "Table IX — FER accuracy (%) across datasets", ["Accuracy"])
    mapping_md = write_table(pd.DataFrame(mapping_rows), out / "class_mapping", "Class mapping used")
    atomic_write_text(out / "report.md", f"# Cross-dataset test on {args.data}\n\n{table}\n\n{mapping_md}\n")
    print(table)
    return 0
