"""Do expression models trained on real photographs read the rendered expressions as labelled? The command
line of :mod:`phanet.analysis.realism`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import cv2
import pandas as pd

from phanet.analysis import realism
from phanet.compat import SCRIPT_OPTIONS, deprecated
from phanet.errors import PhanetError
from phanet.synth.expressions import EXPRESSION_NAMES


def markdown(table: pd.DataFrame | pd.Series, index: str) -> str:
    frame = table.to_frame() if isinstance(table, pd.Series) else table
    head = f"| {index} | " + " | ".join(str(c) for c in frame.columns) + " |"
    lines = [head, "|---|" + "---:|" * len(frame.columns)]
    for key, row in frame.iterrows():
        lines.append(f"| {key} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    return "\n".join(lines)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=realism.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", choices=sorted(realism.MODELS), default=["fer", "facex"])
    parser.add_argument("--preset", default="bu3dfe")
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--size", type=int, default=112, help="rendered image side (pixels)")
    parser.add_argument("--seed", type=int, default=0)
    max_yaw = parser.add_mutually_exclusive_group()
    max_yaw.add_argument("--max-yaw", type=float, default=30.0, help="largest |yaw| (degrees) to render")
    max_yaw.add_argument("--max-pan", type=float, help=argparse.SUPPRESS)  # the earlier name, for one release
    parser.add_argument("--intensities", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument(
        "--framing",
        nargs="+",
        choices=list(realism.FRAMINGS),
        default=list(realism.FRAMINGS),
        help="how each face is framed for the models (default: all of them)",
    )
    parser.add_argument("--sheet", help="also write a PNG of the first subject's crops (rows: expressions)")
    args = parser.parse_args(argv)
    if args.max_pan is not None:
        args.max_yaw = args.max_pan
        deprecated("benchmarks/realism.py", "--max-pan", SCRIPT_OPTIONS["benchmarks/realism.py"]["--max-pan"], what="option")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        models = {name: realism.load_model(name) for name in args.model}
        start = time.perf_counter()
        margins = sorted({realism.MODELS[name].margin for name in models})
        rows, crops = realism.render_crops(
            args.preset, args.subjects, args.size, args.seed, args.max_yaw, args.intensities, margins, framings=args.framing
        )
        seconds = time.perf_counter() - start
    except PhanetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"preset {args.preset}, {args.subjects} subjects, {args.size} px, seed {args.seed}, |yaw| <= "
        f"{args.max_yaw:g}: {len(rows)} images rendered and framed in {seconds:.0f} s\n"
    )
    found = realism.recall(rows)
    if len(found):
        print(f"Detector recall (% of the faces found, every selected image, padded by {realism.PAD:.0%} a side):\n")
        print(markdown(found, "detector"), "\n")
    results = {f: realism.read_crops(models, rows, crops, f) for f in args.framing}
    columns = {f"{name} {f}": (name, f) for f in args.framing for name in models}

    def side_by_side(measure) -> pd.DataFrame:
        return pd.DataFrame({label: measure(results[f][name]) for label, (name, f) in columns.items()})

    print("Agreement per expression (%, intensity 4; neutral 0), per model and framing:\n")
    table = side_by_side(realism.per_expression)
    table.loc["mean"] = table.mean()
    print(markdown(table.rename(index=lambda c: EXPRESSION_NAMES.get(c, c)), "expression"), "\n")
    print("Agreement per intensity (%, the six expressions; 0 = neutral):\n")
    print(markdown(side_by_side(realism.per_intensity), "intensity"), "\n")
    print("Agreement per yaw (%, intensity 4 and neutral):\n")
    print(markdown(side_by_side(realism.per_yaw), "yaw"), "\n")
    for name in models:
        by_framing = {f: results[f][name] for f in args.framing}
        worst = min(by_framing, key=lambda f: realism.per_expression(by_framing[f]).mean())
        print(f"Confusion of {name} in its worst framing, {worst} (% of each rendered expression, intensity 4 and neutral):\n")
        print(markdown(realism.confusion(by_framing[worst]), "rendered \\ read"), "\n")
    if args.sheet:
        cv2.imwrite(args.sheet, realism.crop_sheet(rows, crops[args.framing[0], margins[-1]], len(args.intensities)))
    for name in models:
        print(realism.framing_summary(name, {f: results[f][name] for f in args.framing}, args.max_yaw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
