"""Does bfloat16 train PhaNet's squares? The command line of :mod:`phanet.analysis.precision`."""

from __future__ import annotations

import argparse

from phanet.analysis import precision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=precision.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    args = parser.parse_args(argv)
    for checkpoint in args.checkpoints:
        module = precision.load_checkpoint(checkpoint)
        print(f"{checkpoint} (trained in {module.config.train.precision})")
        print(f"  {'loss':8s} {'part':12s} {'cos(fp32, fp64)':>16s} {'cos(bf16, fp64)':>16s}")
        for term, part, single, half in precision.gradient_cosines(module):
            print(f"  {term:8s} {part:12s} {single:16.3f} {half:16.3f}")
        for name, (mean, std) in precision.square_spread(module).items():
            print(
                f"  {name} square (x, y, l): mean {', '.join(f'{v:.3f}' for v in mean)}; "
                f"std over 256 images {', '.join(f'{v:.3f}' for v in std)}"
            )


if __name__ == "__main__":
    main()
