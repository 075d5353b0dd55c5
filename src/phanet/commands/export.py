"""phanet export."""

from __future__ import annotations

import argparse

HELP = "export a checkpoint to ONNX (self-contained: class lists and input size in its metadata)"
DESCRIPTION = """Export the network of a checkpoint to an ONNX file for ONNX Runtime.

  phanet export --checkpoint runs/demo/phanet/checkpoints/best.ckpt --onnx phanet.onnx
  phanet predict photo.jpg --checkpoint phanet.onnx

The graph takes preprocessed faces, float32 (batch, 3, S, S), RGB scaled as (value/255 - 0.5)/0.5,
and returns expression_logits, pose_logits, boxes, scale_weights and task_weights; the batch axis
is dynamic. The file's metadata hold the class lists, the input size S and the architecture. Before
the file is written, the export is checked against PyTorch on random inputs; an export that does
not reproduce PyTorch's logits is not written.
"""

#: export_onnx writes its ``out`` to --onnx.
FLAGS = {"out": "--onnx"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by phanet train")
    parser.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    parser.add_argument(
        "--opset",
        type=int,
        default=None,
        help="ONNX opset (default 20, the first with AffineGrid; an unsupported one is refused "
        "with the range the installed torch can write)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")


def run(args: argparse.Namespace) -> int:
    from phanet.export import OPSET
    from phanet.inference import export_onnx

    out, info, differences = export_onnx(
        args.checkpoint, args.onnx, OPSET if args.opset is None else args.opset, args.overwrite, check=not args.no_check
    )
    print(
        f"written: {out} ({out.stat().st_size / 1e6:.1f} MB; {info.arch}, input {info.input_size} px, "
        f"{len(info.expressions)} expressions, {len(info.poses)} poses)"
    )
    if differences is not None:
        print("largest difference to PyTorch: " + ", ".join(f"{k} {v:.2e}" for k, v in differences.items()))
    return 0
