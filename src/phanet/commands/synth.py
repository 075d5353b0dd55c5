"""``phanet synth``: render the built-in multi-view facial-expression dataset, or preview it."""

from __future__ import annotations

import argparse

from phanet.text import plural

HELP = "render the built-in multi-view facial-expression dataset (or contact sheets of it)"
DESCRIPTION = """\
Render procedurally generated 3D heads showing facial expressions (FACS action units at four
intensities) at exact yaw/pitch angles, like BU-3DFE's multi-view renders of 3D scans.

Writes DIR/<subject>/*.png, DIR/manifest.csv (path, subject, expression, pose, intensity, yaw, pitch,
and lm_<point>_x, lm_<point>_y, lm_<point>_vis: eyes, brows, nose tip and mouth in normalised image
coordinates), DIR/synth.json (the settings) and DIR/README.md (a dataset card with counts per class
and pose).
The same seed gives byte-identical files whatever --workers is; an interrupted run resumes.

presets:
  bu3dfe      AN DI FE HA NE SA SU x 4 intensities, yaws -90 -60 -45 -30 0 30 45 60 90 (100 subjects)
  kdef        the same 7 expressions at full intensity, 2 takes, yaws -90 -45 0 45 90 (70 subjects)
  multipie    DI NE SC SM SQ SU, yaws -30 -15 0 15 30 (270 subjects)
  continuous  bu3dfe classes, yaw uniform in [-90, 90], pose class = nearest bu3dfe yaw (100 subjects)
  affectnet   AN CO DI FE HA NE SA SU, yaw uniform in [-45, 45] (100 subjects)

pose convention: yaw > 0 turns the face towards the viewer's right (the subject's right cheek
shows); pitch > 0 looks up. A horizontal flip maps yaw to -yaw.

examples:
  phanet synth --preset bu3dfe --subjects 40 --size 96 --out data/synth
  phanet synth --preset kdef --preview sheets/kdef.png
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="bu3dfe", help="dataset preset (default: bu3dfe)")
    parser.add_argument("--out", metavar="DIR", help="folder to write the images, manifest.csv and card into")
    parser.add_argument(
        "--subjects", type=int, metavar="N", help="render the first N subjects, at most 10,000 (default: the preset's count)"
    )
    parser.add_argument("--size", type=int, default=112, metavar="PX", help="image side in pixels (default: 112)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed: identities, scenes, poses (default: 0)")
    parser.add_argument(
        "--poses",
        type=float,
        nargs="+",
        metavar="DEG",
        help="pose classes (yaw angles) of a continuous preset, e.g. --poses -90 -45 0 45 90",
    )
    parser.add_argument(
        "--yaw-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="yaw range of a continuous preset, within -90 90"
    )
    parser.add_argument(
        "--pitch-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="pitch range, within -30 30 (default: the preset's)"
    )
    parser.add_argument("--workers", type=int, metavar="K", help="worker processes (default: all cores)")
    parser.add_argument(
        "--preview", metavar="FILE.png", help="write contact sheets: FILE.png (expressions x yaws) and FILE_identities.png"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from phanet.errors import PhanetError
    from phanet.synth.settings import resolve_settings

    settings = resolve_settings(
        args.preset, args.subjects, args.size, args.seed, args.poses, args.yaw_range, args.pitch_range, prefix="--"
    )
    if args.workers is not None and args.workers < 1:
        raise PhanetError(f"--workers: expected at least 1 worker process, got {args.workers}")
    if not args.out and not args.preview:
        raise PhanetError("--out: give a folder to write the dataset to (or --preview FILE.png for contact sheets)")
    if args.preview:
        from phanet.synth.preview import write_previews

        target = Path(args.preview)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            written = write_previews(target, settings)
        except OSError as exc:
            raise PhanetError(f"--preview: cannot write {target} ({exc.strerror or exc})") from None
        for path in written:
            print(f"wrote {path}")
    if args.out:
        from tqdm import tqdm

        from phanet.runtime import bounded_by_cpus
        from phanet.synth.generate import generate

        def progress(counts, total):
            with tqdm(total=total, unit="img", desc=f"synth {settings.preset.name}", dynamic_ncols=True) as bar:
                for n in counts:
                    bar.update(n)
                    yield n

        print(
            f"rendering {settings.subjects:,} subjects of preset {settings.preset.name} at {settings.size} px into {args.out}",
            flush=True,
        )
        workers = bounded_by_cpus(args.workers, "--workers") if args.workers else None
        faces = generate(args.out, settings, workers=workers, progress=progress)
        print(f"wrote {plural(len(faces), 'image')}, {Path(args.out) / 'manifest.csv'} and {Path(args.out) / 'README.md'}")
    return 0
