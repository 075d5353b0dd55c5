"""phanet predict."""

from __future__ import annotations

import argparse

from phanet.text import plural

HELP = "expression, head pose and attended regions of every face in images, folders and videos"
DESCRIPTION = """Predict expression, head pose and the attended S2/S3 squares of every face.

INPUT may be image files, folders (searched recursively for images and videos) or videos. Faces
are found with the detector of `phanet prepare` (YuNet; --detector haar for OpenCV's frontal and
profile cascades) and cropped with the same margin, unless --no-detect says the inputs are face
crops already. One row per face; an image with
no face gets a `no_face` row, a file that is not a readable image an `unreadable` row (so does an
image declaring more than 64 megapixels). Drawings are at most 2048 pixels on their longer side.

  phanet predict photo.jpg --checkpoint best.ckpt
  phanet predict photos/ clip.mp4 --checkpoint best.ckpt --out results.csv --visualize drawn/
  phanet predict clip.mp4 --checkpoint model.onnx --every-nth-frame 5 --out results.json
  phanet predict crops/ --checkpoint best.ckpt --no-detect --out crops.csv

--checkpoint takes a .ckpt of `phanet train` (run with PyTorch, or ONNX Runtime with --backend
onnx) or a .onnx file of `phanet export` (ONNX Runtime). The columns are listed in the README.
"""

#: Columns printed when no --out is given.
SUMMARY_COLUMNS = ("file", "frame", "face", "status", "expression", "expression_prob", "pose", "pose_prob")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or videos")
    parser.add_argument("--checkpoint", required=True, help="a .ckpt of phanet train or a .onnx of phanet export")
    parser.add_argument("--out", help="write the table to this .csv or .json file (default: print a summary)")
    parser.add_argument(
        "--visualize", metavar="DIR", help="write every image (and every predicted video frame) with the faces drawn to DIR"
    )
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="faces per forward pass (default 32)")
    parser.add_argument(
        "--every-nth-frame",
        type=int,
        default=1,
        metavar="K",
        help="in videos, predict frames 0, K, 2K, ... (default 1: every frame)",
    )
    parser.add_argument("--no-detect", action="store_true", help="the inputs are face crops: no face detection")
    parser.add_argument(
        "--margin", type=float, default=0.2, help="margin around a detected face, as for phanet prepare (default 0.2)"
    )
    parser.add_argument("--min-face", type=int, default=24, metavar="PX", help="smallest face side to detect (default 24)")
    parser.add_argument(
        "--detector",
        choices=("yunet", "haar"),
        default="yunet",
        help="face detector: yunet (default) or haar (OpenCV's cascades); the one the training data were prepared with",
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="run a .ckpt with PyTorch or ONNX Runtime (a .onnx always runs on ONNX Runtime)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="PyTorch device for a .ckpt run with PyTorch: cpu, cuda, cuda:N or mps (default: cuda, else mps, else cpu)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file and --visualize images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")


def _check_arguments(args: argparse.Namespace) -> None:
    """Everything the command line says, checked before the model is loaded."""
    from pathlib import Path

    from phanet.checks import SHOWN_PATH, margin, output_file, output_folder, positive, shorten, torch_device
    from phanet.errors import PhanetError

    positive(args.batch_size, "batch_size")
    positive(args.every_nth_frame, "every_nth_frame")
    margin(args.margin)
    if args.device is not None:
        torch_device(args.device)
    if args.out:
        output_file(args.out, "out", args.overwrite, suffixes=(".csv", ".json"))
    if args.visualize:
        folder = output_folder(args.visualize, "visualize", args.overwrite)
        if folder.is_dir() and any(folder.iterdir()) and not args.overwrite:
            raise PhanetError(
                f"--visualize: {shorten(folder, SHOWN_PATH)} is not empty; choose an empty folder or pass --overwrite"
            )
    for path in args.inputs:
        try:
            found = Path(path).exists()
        except OSError:  # a name too long to look up
            found = False
        if not found:
            raise PhanetError(f"{shorten(path, SHOWN_PATH)}: no such file or folder")


class _Drawings:
    """Writes the drawn images under one folder with unique names: ``<stem>.png`` for an image,
    ``<stem>_frame<index>.jpg`` for a video frame. A drawing that cannot be encoded or written
    (a full disk) is counted in ``failed`` with the reason, and the run goes on."""

    def __init__(self, folder) -> None:
        self.folder = folder
        self.used: set[str] = set()
        self.written = 0
        self.failed: list[str] = []

    def write(self, result) -> None:
        import cv2

        from phanet.errors import PhanetError
        from phanet.files import atomic_write_bytes
        from phanet.predict import draw_predictions

        stem = result.file.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0] or "image"
        name = f"{stem}_frame{result.frame:06d}" if result.frame >= 0 else stem
        suffix = ".jpg" if result.frame >= 0 else ".png"
        unique, n = name, 1
        while unique + suffix in self.used:
            n += 1
            unique = f"{name}-{n}"
        self.used.add(unique + suffix)
        path = self.folder / (unique + suffix)
        try:
            encoded, data = cv2.imencode(suffix, cv2.cvtColor(draw_predictions(result.image, result.rows), cv2.COLOR_RGB2BGR))
        except cv2.error:
            encoded = False
        if not encoded:
            self.failed.append(f"{path}: OpenCV could not encode the drawing")
            return
        try:
            atomic_write_bytes(path, data.tobytes())
        except PhanetError as exc:
            self.failed.append(str(exc))
            return
        self.written += 1

    def summary(self) -> str:
        line = f"drawn: {plural(self.written, 'image')} in {self.folder}"
        if self.failed:
            line += f"; not drawn: {len(self.failed)} (first: {self.failed[0]})"
        return line


#: The predictor's parameters whose flag has another name (the others are written as their own flag).
FLAGS = {"path": "--checkpoint"}


def run(args: argparse.Namespace) -> int:
    from collections import Counter
    from pathlib import Path

    from phanet.predict import Predictor, write_table
    from phanet.workflow import default_device

    _check_arguments(args)
    drawings = _Drawings(Path(args.visualize)) if args.visualize else None
    rows = []
    predictor = Predictor.load(
        args.checkpoint,
        backend=args.backend,
        device=args.device or default_device(),
        detect=not args.no_detect,
        margin=args.margin,
        min_face=args.min_face,
        batch_size=args.batch_size,
        detector=args.detector,
    )
    for result in predictor.iter_predict(
        args.inputs, every_nth_frame=args.every_nth_frame, keep_images=drawings is not None, progress=not args.no_progress
    ):
        rows.extend(result.rows)
        if drawings is not None and result.image is not None:
            drawings.write(result)
    table = predictor.table(rows)
    statuses = Counter(table["status"])
    images = table.drop_duplicates(["file", "frame"])
    print(
        f"{plural(len(images), 'image or frame', 'images or frames')}, {plural(statuses.get('ok', 0), 'face')}; "
        f"no face: {statuses.get('no_face', 0)}, unreadable: {statuses.get('unreadable', 0)}"
        + (f", non-finite scores: {statuses['non_finite']}" if statuses.get("non_finite") else "")
    )
    if args.out:
        print(f"written: {write_table(table, args.out)}")
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", 40, "display.width", 160, "display.precision", 3):
            print(table[[c for c in SUMMARY_COLUMNS if c in table.columns]].to_string(index=False, max_rows=40, na_rep=""))
    if drawings is not None:
        print(drawings.summary())
    return 0
