"""phanet export."""

from __future__ import annotations

import argparse

HELP = "export a checkpoint to ONNX (self-contained: class lists and input size in its metadata)"
DESCRIPTION = """Export the network of a checkpoint to an ONNX file for ONNX Runtime.

  phanet export --checkpoint runs/demo/phanet/checkpoints/best.ckpt --onnx phanet.onnx
  phanet predict photo.jpg --checkpoint phanet.onnx

The graph takes preprocessed faces, float32 (batch, 3, S, S), RGB scaled as (value/255 - 0.5)/0.5,
and returns expression_logits, pose_logits, boxes, scale_weights and task_weights; the batch axis
is dynamic. The file's metadata hold the class lists, the input size S and the architecture. After
writing, the export is checked against PyTorch on random inputs.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by phanet train")
    parser.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 20, the first with AffineGrid)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")


def run(args: argparse.Namespace) -> int:
    from phanet.errors import PhanetError
    from phanet.export import OPSET, export_onnx, max_difference, ort_session, read_metadata
    from phanet.training.run import load_module

    out = export_onnx(args.checkpoint, args.onnx, args.opset or OPSET, args.overwrite)
    info = read_metadata(out)
    print(f"written: {out} ({out.stat().st_size / 1e6:.1f} MB; {info.arch}, input {info.input_size} px, "
          f"{len(info.expressions)} expressions, {len(info.poses)} poses)")
    if not args.no_check:
        differences = max_difference(load_module(args.checkpoint).model, ort_session(out), info.input_size)
        worst = max(differences["expression_logits"], differences["pose_logits"])
        print("largest difference to PyTorch: " + ", ".join(f"{k} {v:.2e}" for k, v in differences.items()))
        if not worst <= 1e-3:
            out.unlink()
            raise PhanetError(f"--onnx: {out} differs from PyTorch by {worst:.2e} in the logits; "
                              "the export is not usable and was removed")
    return 0
