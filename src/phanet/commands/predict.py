"""phanet predict."""

from __future__ import annotations

import argparse

from phanet.text import plural

HELP = "expression, head pose and attended regions of every face in images, folders and videos"
DESCRIPTION = """Predict expression, head pose and the attended S2/S3 squares of every face.

INPUT may be image files, folders (searched recursively for images and videos) or videos. Faces
are found with the detector of `phanet prepare` (YuNet; --detector haar for OpenCV's frontal and
profile cascades) and cropped with the same margin, unless --no-detect says the inputs are face
crops already. One row per face; an image with no face gets a `no_face` row, and whatever cannot be
read an `unreadable` row: a file that is not a decodable image, an image declaring more than 64
megapixels, a named pipe or device with an image's name, a sub-folder that cannot be listed.
Drawings are at most 2048 pixels on their longer side.

  phanet predict photo.jpg --checkpoint best.ckpt
  phanet predict photos/ clip.mp4 --checkpoint best.ckpt --out results.csv --visualize drawn/
  phanet predict clip.mp4 --checkpoint model.onnx --every-nth-frame 5 --out results.json
  phanet predict crops/ --checkpoint best.ckpt --no-detect --out crops.csv

--checkpoint takes a .ckpt of `phanet train` (run with PyTorch, or ONNX Runtime with --backend
onnx) or a .onnx file of `phanet export` (ONNX Runtime). The columns are listed in
docs/guides/prediction.md#output-columns.

With --out, the rows are written to OUT.partial as they come; the table replaces it at the end. A
run stopped on the way (SIGTERM, Ctrl+C, a closed terminal, a kill) keeps them there: the same
command with --resume continues it, skipping every picture done. One run writes an --out or a
--visualize folder at a time: a second one is refused while the first lives.
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
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out file and --visualize images (never an input photo), or the rows of a stopped run",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the stopped run whose rows OUT.partial holds, with the same settings"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")


def _check_arguments(args: argparse.Namespace) -> None:
    """Everything the command line says, checked before PyTorch or the model is loaded."""
    import os
    from pathlib import Path

    from phanet.checks import SHOWN_PATH, device_name, margin, output_file, output_folder, positive, shorten
    from phanet.errors import PhanetError
    from phanet.text import printable

    positive(args.batch_size, "batch_size")
    positive(args.every_nth_frame, "every_nth_frame")
    if args.min_face < 1:
        raise PhanetError.about("min_face", "expected 1 or more pixels, got {value}", value=args.min_face)
    margin(args.margin)
    if args.device is not None:
        device_name(args.device)
    if args.resume and not args.out:
        raise PhanetError("--resume: give the --out of the stopped run")
    if args.out:
        output_file(args.out, "out", args.overwrite or args.resume, suffixes=(".csv", ".json"))
    if args.visualize:
        output_folder(args.visualize, "visualize", args.overwrite)
    for path in args.inputs:
        try:
            found = os.path.lexists(path) and Path(path).exists()
        except (OSError, ValueError):  # a name too long to look up, a NUL byte
            found = False
        if not found:
            raise PhanetError(f"{printable(shorten(path, SHOWN_PATH))}: no such file or folder")


def _settings(args: argparse.Namespace) -> dict:
    """What makes a resumed run the same run: every setting that changes a row."""
    import os

    return {
        "inputs": [os.path.abspath(path) for path in args.inputs],
        "checkpoint": os.path.abspath(args.checkpoint),
        "backend": args.backend,
        "no_detect": args.no_detect,
        "margin": args.margin,
        "min_face": args.min_face,
        "detector": args.detector,
        "every_nth_frame": args.every_nth_frame,
    }


class _Drawings:
    """Writes the drawn images under one folder with unique names: ``<stem>.png`` for an image,
    ``<stem>_frame<index>.jpg`` for a video frame. A drawing that cannot be encoded or written
    (a full disk) is counted in ``failed`` with the reason, and the run goes on.

    The folder is held with an exclusive ``flock`` while the run lives, so that two runs never draw
    into it at once, and its emptiness is checked under that lock. A name already taken by a file of
    the folder that is one of the inputs (``--visualize`` into the input folder) is never used; with
    ``resume``, no file of the folder is replaced.
    """

    def __init__(self, folder, inputs: list[str], overwrite: bool, resume: bool) -> None:
        import os

        from phanet.checks import SHOWN_PATH, shorten
        from phanet.errors import PhanetError
        from phanet.files import lock_folder

        self.folder = folder
        self.written = 0
        self.failed: list[str] = []
        shown = shorten(folder, SHOWN_PATH)
        self.fd = lock_folder(folder)
        if self.fd is None:
            raise PhanetError(
                f"--visualize: {shown} is being drawn into by another phanet predict; wait for it to end or choose another folder"
            )
        names = {entry.name for entry in os.scandir(folder)}
        if names and not (overwrite or resume):
            self.close()
            raise PhanetError(f"--visualize: {shown} is not empty; choose an empty folder or pass --overwrite")
        self.used = set(names) if resume else set()
        self.used |= self._inputs_in_folder(inputs, names)

    def _inputs_in_folder(self, inputs: list[str], names: set[str]) -> set[str]:
        """The names of the folder's files that are inputs: those named directly, and every image or
        video of the folder when it lies in a folder given as input."""
        import os

        from phanet.data.io import IMAGE_SUFFIXES
        from phanet.predict import VIDEO_SUFFIXES

        here = os.path.realpath(self.folder)
        taken = set()
        for item in inputs:
            real = os.path.realpath(item)
            if os.path.isdir(real) and (here == real or here.startswith(real.rstrip(os.sep) + os.sep)):
                suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
                taken |= {name for name in names if os.path.splitext(name)[1].lower() in suffixes}
            elif os.path.dirname(real) == here:
                taken.add(os.path.basename(real))
        return taken

    def write(self, result) -> None:
        import cv2

        from phanet.errors import PhanetError
        from phanet.files import atomic_write_bytes
        from phanet.predict import draw_predictions

        stem = _stem(result.file)
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

    def close(self) -> None:
        import os

        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _stem(file: str) -> str:
    """The name a drawing of ``file`` starts with: its file name without the extension (``image`` for none)."""
    import os

    return os.path.splitext(os.path.basename(file))[0] or "image"


#: The predictor's parameters whose flag has another name (the others are written as their own flag).
FLAGS = {"path": "--checkpoint", "inputs": "INPUT"}


def _summary(table, unreadable: str) -> str:
    from collections import Counter

    statuses = Counter(table["status"])
    images = table.drop_duplicates(["file", "frame"])
    return (
        f"{plural(len(images), 'image or frame', 'images or frames')}, {plural(statuses.get('ok', 0), 'face')}; "
        f"no face: {statuses.get('no_face', 0)}, unreadable: {statuses.get('unreadable', 0)}"
        + (f" (first: {unreadable})" if unreadable else "")
        + (f", non-finite scores: {statuses['non_finite']}" if statuses.get("non_finite") else "")
    )


def run(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    _check_arguments(args)
    # PyTorch, OpenCV and the model load only now: a mistyped argument is answered at once.
    from pathlib import Path

    from phanet.errors import PhanetError
    from phanet.predict import Predictor, write_table
    from phanet.predict.journal import RowJournal
    from phanet.workflow import default_device

    with ExitStack() as stack:
        journal = RowJournal.open(args.out, _settings(args), args.resume, args.overwrite) if args.out else None
        finished = False
        if journal is not None:
            stack.callback(lambda: journal.close(finished))
        drawings = _Drawings(Path(args.visualize), args.inputs, args.overwrite, args.resume) if args.visualize else None
        if drawings is not None:
            stack.callback(drawings.close)
        rows = list(journal.rows) if journal is not None else []
        unreadable = ""
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
        results = predictor.iter_predict(
            args.inputs,
            every_nth_frame=args.every_nth_frame,
            keep_images=drawings is not None,
            progress=not args.no_progress,
            done=journal.done if journal is not None else (),
        )
        try:
            for result in results:
                if journal is not None:
                    journal.add(result)
                rows.extend(result.rows)
                unreadable = unreadable or result.reason
                if drawings is not None and result.image is not None:
                    drawings.write(result)
        except KeyboardInterrupt as exc:
            raise _stopped(exc, journal) from None
        table = predictor.table(rows)
        print(_summary(table, unreadable))
        if args.out:
            try:
                written = write_table(table, args.out)
            except PhanetError as exc:
                raise _kept(exc, journal) from None
            print(f"written: {written}")
            finished = True
        else:
            import pandas as pd

            with pd.option_context("display.max_rows", 40, "display.width", 160, "display.precision", 3):
                print(table[[c for c in SUMMARY_COLUMNS if c in table.columns]].to_string(index=False, max_rows=40, na_rep=""))
        if drawings is not None:
            print(drawings.summary())
    return 0


def _kept(exc, journal):
    """A table that could not be written: its rows stay in the partial file, and the line says so."""
    from phanet.errors import PhanetError

    if journal is None or not (journal.added or journal.done):
        return exc
    return PhanetError(f"{exc}; the rows are kept in {journal.path}: run the same command with --resume to write it")


def _stopped(exc: KeyboardInterrupt, journal):
    """What a signal that stopped the run says: how many pictures are kept, and how to go on."""
    import signal

    from phanet.runtime import Stopped

    signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
    name = signal.Signals(signum).name
    if journal is None or not (journal.added or journal.done):
        return Stopped(signum, f"stopped by {name}" + ("" if journal is None else "; no picture was done"))
    done = journal.added + len(journal.done)
    return Stopped(
        signum,
        f"stopped by {name} after {plural(done, 'image or frame', 'images or frames')}; their rows are kept in "
        f"{journal.path}: run the same command with --resume to continue",
    )
