"""``phanet prepare``: detect, crop and cache the faces of a dataset."""

from __future__ import annotations

import argparse

from phanet.commands._dataset_args import add_dataset_arguments

HELP = "detect, crop and cache a dataset's faces with a manifest (resumable)"
DESCRIPTION = """\
Detect the face in every image of a dataset (YuNet, a learned detector; --detector haar for
OpenCV's frontal and profile cascades, the profile one also on the mirrored image) or use the
dataset's own boxes (--use-boxes, e.g. AffectNet), crop a square with a margin, resize and write
the crops under OUT/images with OUT/manifest.csv.

  phanet prepare --dataset kdef --root /data/KDEF --out data/kdef-224
  phanet prepare --dataset affectnet --root /data/AffectNet --out data/affectnet-224 --use-boxes --format jpg

Images without a detected face are skipped (--no-face skip) or centre-cropped (--no-face center);
either way they are listed in OUT/report.csv with unreadable and unparsed files. Run the same
command again to resume an interrupted run. Train on the result with
data.dataset=generic data.root=OUT.
"""

FLAGS = {"image_format": "--format"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or a previous run to resume)")
    parser.add_argument("--size", type=int, default=224, metavar="PX", help="side of the square crops, 8 to 8192 (default 224)")
    parser.add_argument(
        "--margin",
        type=float,
        default=0.2,
        metavar="M",
        help="margin around the face on each side, as a fraction of its size (default 0.2)",
    )
    parser.add_argument(
        "--no-face",
        choices=("skip", "center"),
        default="skip",
        help="images without a detected face: skip them or take a centre crop (default skip)",
    )
    parser.add_argument("--use-boxes", action="store_true", help="crop the dataset's own face boxes where it has them")
    parser.add_argument(
        "--detector",
        choices=("yunet", "haar"),
        default="yunet",
        help="face detector: yunet (default) or haar (OpenCV's cascades)",
    )
    parser.add_argument("--format", choices=("png", "jpg"), default="png", help="crop file format (default png)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="processes that detect and crop (default 1)")
    parser.add_argument(
        "--overwrite", action="store_true", help="start again in OUT, deleting OUT/images and the files a previous run wrote"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from phanet.checks import margin, positive
    from phanet.commands._dataset_args import load_from_args
    from phanet.config import parse_options
    from phanet.data.prepare import crop_size, prepare_faces

    margin(args.margin)
    crop_size(args.size)
    positive(args.workers, "workers")
    faces = load_from_args(args)
    source = {"dataset": args.dataset, "root": str(Path(args.root).resolve()), "options": parse_options(args.option)}
    result = prepare_faces(
        faces,
        args.out,
        source,
        size=args.size,
        margin=args.margin,
        no_face=args.no_face,
        use_boxes=args.use_boxes,
        image_format=args.format,
        workers=args.workers,
        overwrite=args.overwrite,
        detector=args.detector,
    )
    counts = result.counts
    crops = sum(counts.get(s, 0) for s in ("face", "box", "center"))
    print(
        f"{crops} crops in {result.out / 'images'} (face detected {counts.get('face', 0)}, dataset box "
        f"{counts.get('box', 0)}, centre crop {counts.get('center', 0)})"
    )
    print(
        f"not cropped: no face {counts.get('no_face', 0)}, unreadable {counts.get('unreadable', 0)}, "
        f"missing {counts.get('missing', 0)}; loader skipped {len(faces.skipped)}"
    )
    print(f"manifest: {result.manifest}\nreport: {result.report}")
    return 0
