"""phanet evaluate."""

from __future__ import annotations

import argparse

HELP = "evaluate a checkpoint: accuracy overall and per pose, confusion matrices (JSON)"
DESCRIPTION = """Evaluate a checkpoint.

Without --data, the test split (--split) of the data the checkpoint was trained on is used, with
the same subject-independent split. With --data, another dataset is evaluated (all of it unless
--split says otherwise); its classes are matched to the model's by name.

  phanet evaluate --checkpoint runs/demo/phanet/checkpoints/best.ckpt
  phanet evaluate --checkpoint best.ckpt --data /data/KDEF --dataset kdef --out eval/kdef

An earlier evaluation.json or predictions.csv in the output folder is not replaced without --overwrite.
"""

#: resolve_eval_data's ``options`` and ``part`` come from --option and --split.
FLAGS = {"options": "--option", "part": "--split"}


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="dataset root, folder or manifest file (default: the checkpoint's own data)")
    parser.add_argument(
        "--dataset",
        help="dataset adapter for --data (manifest, folder, synth, kdef, ...); "
        "default: manifest for a .csv/.json file or a folder holding manifest.csv, else folder",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option (as data.options in a config), repeatable",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by phanet train")
    add_data_arguments(parser)
    parser.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        help="which part to evaluate (default: test for the checkpoint's data, all for --data)",
    )
    parser.add_argument(
        "--out",
        help="folder for evaluation.json and predictions.csv (default: the run folder's evaluation/, beside checkpoints/)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace evaluation.json and predictions.csv in --out")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="images per forward pass (default 64)")
    parser.add_argument(
        "--device", default=None, help="PyTorch device: cpu, cuda, cuda:N or mps (default: cuda, else mps, else cpu)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from phanet.checks import output_folder, positive, torch_device
    from phanet.evaluation import evaluate, format_summary
    from phanet.inference import TrainedModel
    from phanet.training.run_folder import EVALUATION_FILE, PREDICTIONS_FILE, RunFolder, write_evaluation
    from phanet.workflow import default_device, resolve_eval_data

    positive(args.batch_size, "batch_size")
    device = torch_device(args.device) if args.device is not None else default_device()
    out = Path(args.out) if args.out else RunFolder.holding(args.checkpoint).evaluation_dir
    output_folder(out, "out", args.overwrite, (EVALUATION_FILE, PREDICTIONS_FILE))
    model = TrainedModel.from_checkpoint(args.checkpoint, device)
    faces, description = resolve_eval_data(model.training_config, args.data, args.dataset, args.option, args.split)
    summary, frame = evaluate(model, faces, args.batch_size, progress=not args.no_progress)
    summary = {"checkpoint": str(args.checkpoint), "data": description, **summary}
    write_evaluation(out, summary, frame)
    print(f"data: {description['dataset']} ({description['part']})")
    print(format_summary(summary))
    print(f"written: {out / EVALUATION_FILE}, {out / PREDICTIONS_FILE}")
    return 0
