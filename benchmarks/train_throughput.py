"""End-to-end training throughput: the command line of :mod:`phanet.analysis.training_throughput`."""

from __future__ import annotations

import argparse
import logging
import warnings

import torch

from phanet.analysis import training_throughput
from phanet.config import load_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=training_throughput.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", help="preset or YAML (default: demo)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--precision", default="auto", help="comma-separated train.precision values (auto: what training picks on this device)"
    )
    parser.add_argument("--batch", default=None, help="comma-separated batch sizes (default: the preset's)")
    parser.add_argument("--workers", type=int, default=None, help="data.num_workers (default: the preset's)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each rate (median reported)")
    parser.add_argument("--subjects", type=int, default=None, help="subjects rendered (default: the preset's)")
    parser.add_argument("--small", action="store_true", help="a tiny network on tiny renders, in seconds")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="further config overrides")
    args = parser.parse_intermixed_args(argv)
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    device = torch.device(args.device)
    presets = args.config or ["demo"]
    base = training_throughput.base_overrides(device, args.small, args.subjects, args.workers, args.overrides)
    first = load_config(presets, base)
    batches = [int(b) for b in args.batch.split(",")] if args.batch else [first.train.batch_size]
    print(
        f"device: {training_throughput.device_name(device)}; torch {torch.__version__}; config {'+'.join(presets)}"
        f"{' (--small)' if args.small else ''}; input {first.input_size} px, network {first.model.image_size} px; "
        f"data.num_workers {first.data.num_workers}; median of {args.repeats} runs of {args.steps} timed steps "
        f"after {args.warmup}"
    )
    print(training_throughput.first_pass(first))
    rows = training_throughput.measure_grid(
        presets, base, device, batches, args.precision.split(","), args.steps, args.warmup, args.repeats
    )
    reference = rows[0][2]["end_to_end"]
    print(
        f"{'batch':>5s} {'precision':>11s} {'end to end':>11s} {'model bound':>12s} {'input bound':>12s} "
        f"{'input/model':>12s} {'e2e/model':>10s} {'e2e vs row 1':>13s}   (img/s)"
    )
    for batch, precision, r in rows:
        print(
            f"{batch:5d} {precision:>11s} {r['end_to_end']:11.1f} {r['model']:12.1f} {r['input']:12.1f} "
            f"{r['input'] / r['model']:12.2f} {r['end_to_end'] / r['model']:10.2f} {r['end_to_end'] / reference:13.2f}"
        )


if __name__ == "__main__":
    main()
