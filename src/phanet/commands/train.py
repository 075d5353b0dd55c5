"""phanet train."""

from __future__ import annotations

import argparse
import json

HELP = "train PhaNet or a baseline from a config preset or YAML file"
DESCRIPTION = """Train PhaNet (or a baseline) into a run folder.

  phanet train --config demo
  phanet train --config paper --config kdef data.root=/data/KDEF --out runs/kdef
  phanet train --config demo train.epochs=30 "model.scales=[N_S1,H_S2]" --out runs/ablation
  phanet train --out runs/kdef --resume            # continue an interrupted run
  phanet train --out runs/kdef --resume optim.lr=0.001 train.epochs=200   # ... with new settings
  phanet train --config paper --devices 4 --strategy ddp --precision 16-mixed

Overrides are KEY=VALUE pairs with dotted config keys; values are read as YAML (quote values with
brackets or spaces for the shell). Every value is checked before anything is written.

A run folder has one writer at a time: a second training into the same --out is refused while the
first runs. SIGTERM, Ctrl+C, SIGHUP (a closed terminal) or SIGQUIT stops a run:
OUT/checkpoints/last.ckpt keeps the last finished epoch, the epoch in progress is dropped (it runs
again on --resume), and the exit status is 128 + the signal (143 SIGTERM, 130 SIGINT, 129 SIGHUP,
131 SIGQUIT). --resume continues from last.ckpt. The data, model, loss, seed, optimizer and
schedule kinds must stay as they were; learning rates, weight decay, momentum, milestones,
patience, epochs and devices may change and apply from the first resumed epoch.
"""


#: The help of --no-progress for every command that trains.
NO_PROGRESS_HELP = "no progress bar: one line per epoch instead (loss, accuracies, time), as when the output is not a terminal"

#: The config keys the device options set, as the commands that offer them name them in errors.
TRAINER_FLAGS = {
    f"train.{key}": f"train.{key} (--{key.replace('_', '-')})"
    for key in ("accelerator", "devices", "strategy", "num_nodes", "precision")
}
FLAGS = TRAINER_FLAGS


def add_trainer_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("devices (any Lightning accelerator and strategy)")
    group.add_argument("--accelerator", help="cpu, gpu, cuda, mps, tpu or auto (train.accelerator)")
    group.add_argument("--devices", help="number of devices, a list like 0,1, or auto (train.devices)")
    group.add_argument("--strategy", help="auto, ddp or ddp_spawn (train.strategy; fsdp and deepspeed are not supported)")
    group.add_argument("--num-nodes", type=int, help="number of nodes for multi-node training (train.num_nodes)")
    group.add_argument(
        "--precision",
        help="auto (on GPUs and CPUs with native bfloat16: bf16-backbones for PhaNet, its backbones in "
        "bfloat16 and its squares in 32 bits, and bf16-mixed for networks without crop-and-zoom "
        "attention; else 32-true), bf16-backbones, 32-true, bf16-mixed, 16-mixed, ... (train.precision)",
    )


def trainer_overrides(args: argparse.Namespace) -> list[str]:
    pairs = [
        ("accelerator", args.accelerator),
        ("devices", args.devices),
        ("strategy", args.strategy),
        ("num_nodes", args.num_nodes),
        ("precision", args.precision),
    ]
    # JSON text is YAML too: each value reaches the config as the text given (a "#" or ":" included).
    return [f"train.{key}={json.dumps(value)}" for key, value in pairs if value is not None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.epochs=10")
    parser.add_argument(
        "--config",
        action="append",
        help="preset name (paper, demo, kdef, ...) or YAML file, repeatable: "
        "later ones override earlier ones (--config paper --config kdef); with --resume the default "
        "is the run's own OUT/config.yaml",
    )
    parser.add_argument("--out", help="run folder (config key 'out')")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint, with the overrides given"
    )
    parser.add_argument("--no-progress", action="store_true", help=NO_PROGRESS_HELP)
    add_trainer_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from phanet.config import load_config
    from phanet.errors import PhanetError
    from phanet.training.run_folder import RunFolder

    overrides = list(args.overrides) + trainer_overrides(args)
    if args.out:
        overrides.append(f"out={json.dumps(args.out)}")
    source = args.config
    if args.resume and source is None:
        if not args.out:
            raise PhanetError("--resume: give the run folder with --out")
        stored = RunFolder(args.out).config_file
        if not stored.is_file():  # False also for a name the file system refuses
            raise PhanetError(f"--resume: {args.out} holds no run to resume (no config.yaml)")
        source = [str(stored)]
    if source is None:
        raise PhanetError("--config: give a preset (demo, paper) or a YAML file")
    config = load_config(source, overrides)
    # PyTorch and Lightning load only now: a mistyped preset or value is reported at once.
    from phanet.training.run import is_rank_zero, train

    result = train(config, resume=args.resume, progress=not args.no_progress)
    if not is_rank_zero():  # a process the ddp launcher started: rank 0 reports the run
        return 0
    if result.finished:
        print(result.finished)
    print(f"run folder: {result.run_dir}")
    print(f"best checkpoint: {result.best_checkpoint} (val expression accuracy {result.best_score:.4f})")
    print(f"metrics: {result.metrics_csv}")
    return 0
