"""Throughput of `phanet synth`: images per second written to disk, at 112 and 224 px, 1 and 2 workers.

Runs the real generator (identities, rendering, PNG encoding, files, manifest) into temporary folders
and times it end to end, then checks that the 1- and 2-worker folders are byte-identical. Also
reports images per CPU-second of this run's own processes, and how busy other processes kept the
machine meanwhile (from /proc/stat): on a shared machine that load slows the wall-clock numbers down.

    PYTHONPATH=src python benchmarks/synth_throughput.py [--preset bu3dfe] [--subjects 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from phanet.synth.generate import generate
from phanet.synth.settings import resolve_settings


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy (all processes), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="bu3dfe")
    parser.add_argument("--subjects", type=int, default=4, help="subjects per run at 112 px (half as many at 224 px)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    print(f"machine: {_cpu_name()}, {os.cpu_count()} logical cores, Python {platform.python_version()}")
    print(f"preset {args.preset}, end to end (identities, rendering, PNG files, manifest)\n")
    print("| size | workers | images | seconds | images/s | images per CPU-second | other load |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        subjects = max(1, args.subjects * 112 // size)
        settings = resolve_settings(args.preset, subjects, size, 0, prefix="--")
        trees = []
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                busy, own = _busy_seconds(), _own_seconds()
                start = time.perf_counter()
                faces = generate(Path(tmp) / "out", settings, workers=workers)
                seconds = time.perf_counter() - start
                # Share of the machine's cores other processes kept busy meanwhile (they slow the run down).
                cpu = _own_seconds() - own
                other = "n/a"
                if busy is not None:
                    foreign = (_busy_seconds() - busy) - cpu
                    other = f"{100 * max(foreign, 0.0) / (seconds * (os.cpu_count() or 1)):.0f} %"
                trees.append(_tree(Path(tmp) / "out"))
            print(
                f"| {size} | {workers} | {len(faces)} | {seconds:.1f} | {len(faces) / seconds:.0f} | "
                f"{len(faces) / cpu:.0f} | {other} |",
                flush=True,
            )
        identical = all(tree == trees[0] for tree in trees[1:])
        print(f"|  | identical files across worker counts: {'yes' if identical else 'NO'} | | | | | |", flush=True)


if __name__ == "__main__":
    main()
