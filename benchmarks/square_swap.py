"""S3 read with other faces' squares: the command line of :mod:`phanet.analysis.square_swap`."""

from __future__ import annotations

import argparse

import torch

from phanet.analysis import square_swap
from phanet.compat import SCRIPT_OPTIONS, deprecated


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=square_swap.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders of evaluated PhaNets")
    parser.add_argument("--images", type=int, default=700, help="test faces to use, a fixed random subset (default 700)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--faces", help="also draw the squares on one test subject's faces into this figure (one run only), and skip the swap"
    )
    parser.add_argument("--face-expressions", default="SA,AN,HA", help="rows of --faces (default SA,AN,HA)")
    yaws = parser.add_mutually_exclusive_group()
    yaws.add_argument("--face-yaws", default="-60,-45,45,60", help="columns of --faces (default -60,-45,45,60)")
    yaws.add_argument("--face-pans", help=argparse.SUPPRESS)  # the earlier name, for one release
    args = parser.parse_args(argv)
    if args.faces and len(args.runs) != 1:
        parser.error("--faces draws one run")
    if args.face_pans is not None:
        args.face_yaws = args.face_pans
        deprecated(
            "benchmarks/square_swap.py", "--face-pans", SCRIPT_OPTIONS["benchmarks/square_swap.py"]["--face-pans"], what="option"
        )
    return args


def main() -> None:
    args = parse_arguments()
    if args.faces:
        print(square_swap.faces_figure(args.runs[0], args.faces, args.face_expressions.split(","), args.face_yaws.split(",")))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    for run in args.runs:
        table, summary = square_swap.square_swap(run, args.images, args.seed)
        print(
            f"\n{run}: S3 accuracy (%) per true expression, with each face's own S3 square, with the S3 "
            "square of a face of each expression (same yaw), and with the mean square"
        )
        shown = table.copy()
        numeric = shown.columns.drop(["expression", "faces"])
        shown[numeric] = (100 * shown[numeric]).round(1)
        print(shown.to_string(index=False))
        print(
            f"S3 accuracy: own square {100 * summary['own']:.1f} %, a square of the same expression "
            f"{100 * summary['same']:.1f} %, of another expression {100 * summary['other']:.1f} %, the mean "
            f"square {100 * summary['mean']:.1f} %; names the donor's expression {100 * summary['donor_says_donor']:.1f} % "
            f"(with its own square {100 * summary['own_says_donor']:.1f} %): donor leak "
            f"{100 * summary['donor_leak']:+.1f} points"
        )


if __name__ == "__main__":
    main()
