"""``phanet data``: look at a dataset the way training will see it."""

from __future__ import annotations

import argparse

from phanet.commands._dataset_args import add_dataset_arguments
from phanet.text import plural, printable

HELP = "inspect a dataset: counts per expression, pose and subject, and every file skipped"
DESCRIPTION = """\
Parse a dataset tree with its adapter and report what training would get.

  phanet data inspect --dataset kdef --root /data/KDEF
  phanet data inspect --dataset affectnet --root /data/AffectNet --option partition=validation \\
      --option openface_csv=/data/openface --manifest affectnet-val.csv
  phanet data list

'inspect' reads every image (use --no-read to skip that) and lists each file it could not parse or
read with the reason (an image declaring more than 64 megapixels counts as unreadable); files a
protocol leaves out on purpose are summarised by reason. --manifest and --skipped do not replace
existing files without --overwrite.
"""

#: Subjects listed one by one up to this many; above, a summary.
MAX_LISTED_SUBJECTS = 500


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    inspect = sub.add_parser(
        "inspect",
        help="parse a dataset tree and print its counts and skipped files",
        description="Parse a dataset tree and print its counts and skipped files.",
    )
    add_dataset_arguments(inspect)
    inspect.add_argument("--manifest", metavar="OUT.csv", help="write the common manifest of the usable samples")
    inspect.add_argument("--skipped", metavar="OUT.csv", help="write every skipped file with its reason")
    inspect.add_argument("--no-read", action="store_true", help="do not decode the images (faster; finds no corrupt files)")
    inspect.add_argument("--workers", type=int, default=4, metavar="N", help="threads that decode images (default 4)")
    inspect.add_argument("--overwrite", action="store_true", help="replace existing --manifest and --skipped files")
    inspect.add_argument("--no-progress", action="store_true", help="no progress bar while images are read")
    sub.add_parser("list", help="list the registered datasets and their options")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list()
    return _inspect(args)


def _list() -> int:
    import inspect

    from phanet.data.registry import available_datasets, dataset_options

    for name, description in available_datasets().items():
        print(f"{name}: {description}")
        for option, default in dataset_options(name).items():
            shown = "(required)" if default is inspect.Parameter.empty else repr(default)
            print(f"    {option} = {shown}")
    return 0


def _table(title: str, counts: dict[str, int]) -> list[str]:
    width = max([len(k) for k in counts] + [4])
    return [title] + [f"  {name:<{width}}  {count:>7}" for name, count in counts.items()]


def _cross_table(faces) -> list[str]:
    from collections import Counter

    from phanet.data.records import MISSING

    cells = Counter((s.expression, s.pose) for s in faces.samples)
    columns = list(range(len(faces.poses))) + ([MISSING] if any(p == MISSING for _, p in cells) else [])
    names = [faces.poses[p] if p != MISSING else "(none)" for p in columns]
    width = max([len(n) for n in names] + [5])
    label = max(len(e) for e in faces.expressions)
    lines = ["Expression x pose:", "  " + " " * label + "".join(f"  {n:>{width}}" for n in names)]
    for e, expression in enumerate(faces.expressions):
        lines.append(f"  {expression:<{label}}" + "".join(f"  {cells[(e, p)]:>{width}}" for p in columns))
    return lines


def _subjects(counts: dict[str, int]) -> list[str]:
    import statistics

    values = list(counts.values())
    if len(values) > 1 and max(values) == 1:
        return [
            f"Subjects: {len(values)} (no subject ids in this dataset: each image is its own subject, so splits are by image)"
        ]
    if len(values) > MAX_LISTED_SUBJECTS:
        return [
            f"Subjects: {len(values)} (images per subject: min {min(values)}, "
            f"median {statistics.median(values):g}, max {max(values)}; --manifest lists them all)"
        ]
    width = max(len(k) for k in counts)
    cells = [f"{name:<{width}} {count:>5}" for name, count in counts.items()]
    return [f"Subjects: {len(values)}"] + ["  " + "   ".join(cells[i : i + 6]) for i in range(0, len(cells), 6)]


def _skipped(skipped: list[tuple[str, str]]) -> list[str]:
    from collections import Counter

    from phanet.data.adapters.common import is_excluded

    broken = sorted((reason, path) for path, reason in skipped if not is_excluded(reason))
    excluded = Counter(reason for _, reason in skipped if is_excluded(reason))
    lines = []
    if broken:
        lines.append(f"Skipped {plural(len(broken), 'file')} that could not be parsed or read:")
        lines += [f"  {printable(path)}: {reason}" for reason, path in broken]
    else:
        lines.append("Skipped: none could not be parsed or read")
    if excluded:
        lines.append(f"Left out by the protocol: {plural(sum(excluded.values()), 'file')}")
        lines += [f"  {count:>7}  {reason.split(': ', 1)[-1]}" for reason, count in sorted(excluded.items())]
    return lines


def _inspect(args: argparse.Namespace) -> int:
    import pandas as pd

    from phanet.checks import output_file
    from phanet.commands._dataset_args import load_from_args
    from phanet.data.verify import without_unreadable
    from phanet.files import write_csv

    for name, path in (("manifest", args.manifest), ("skipped", args.skipped)):
        if path:
            output_file(path, name, args.overwrite)
    faces = load_from_args(args)
    if not args.no_read:
        faces = without_unreadable(faces, workers=args.workers, progress=not args.no_progress)
    counts = faces.counts()
    lines = [
        f"{faces.name} at {faces.root}: {plural(len(faces), 'usable image')}, {plural(len(counts['subject']), 'subject')}, "
        f"{len(faces.expressions)} expressions, {len(faces.poses)} poses" + ("" if args.no_read else " (every image decoded)"),
        *_table("Expressions:", counts["expression"]),
    ]
    if faces.poses:
        lines += _table("Poses:", counts["pose"]) + _cross_table(faces)
    else:
        lines.append("Poses: none (this dataset has no pose labels; pose is masked out of the loss)")
    lines += _subjects(counts["subject"]) + _skipped(faces.skipped)
    print("\n".join(lines))
    if args.manifest:
        print(f"Manifest: {faces.write_manifest(args.manifest)}")
    if args.skipped:
        rows = [(printable(path), reason) for path, reason in faces.skipped]
        write_csv(args.skipped, pd.DataFrame(rows, columns=["path", "reason"]))
        print(f"Skipped files: {args.skipped}")
    return 0
