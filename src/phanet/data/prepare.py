"""Face preparation: detect, crop with a margin, resize and cache a dataset's faces on disk.

``OUT`` receives ``images/`` (one crop per sample, at the sample's relative path), ``manifest.csv``
(the common manifest of the crops, loadable with the ``generic`` dataset), ``classes.json`` (the
source's class lists), ``report.csv`` (every image without a detected face, unreadable, missing or
skipped by the loader, with the reason) and two files that make the run resumable:
``prepare.json`` (the settings) and ``journal.jsonl`` (one line per image done).

Every file is written atomically (:mod:`phanet.files`), so an interrupted run never leaves a
half-written file that a later run would take for a finished one, and a full disk ends the run with
one line naming the file; rerunning the same command carries on where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
from PIL import Image
from tqdm import tqdm

from phanet.checks import shorten
from phanet.data.detectors import DEFAULT_DETECTOR, DETECTORS, find_faces
from phanet.data.faces import center_box, crop_face
from phanet.data.io import read_image
from phanet.data.records import LabeledFaces, Sample
from phanet.errors import PhanetError, UnreadableImage
from phanet.files import (
    atomic_write,
    lock_folder,
    open_regular,
    parse_json,
    read_limited,
    remove_temporaries,
    write_csv,
    write_failed,
    write_json,
)
from phanet.runtime import bounded_by_cpus
from phanet.text import printable

#: Statuses that leave a crop on disk.
CROPPED = ("face", "box", "center")
NO_FACE_CHOICES = ("skip", "center")
FORMATS = {"png": "PNG", "jpg": "JPEG"}
OWN_FILES = ("prepare.json", "journal.jsonl", "manifest.csv", "classes.json", "report.csv")
MARKER = "phanet prepare"


@dataclass
class PrepareResult:
    """What a run produced: counts per status (face, box, center, no_face, unreadable, missing)."""

    out: Path
    counts: dict[str, int]
    manifest: Path
    report: Path
    problems: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Task:
    key: str
    source: str
    target: str
    box: tuple[float, float, float, float] | None
    size: int
    margin: float
    no_face: str
    image_format: str
    detector: str = DEFAULT_DETECTOR


def _crop_one(task: _Task) -> dict[str, str]:
    """Crop one image; returns its journal entry. Runs in worker processes."""
    try:
        image = read_image(task.source)
    except UnreadableImage as exc:
        return {"key": task.key, "status": "unreadable", "detail": str(exc).rsplit(": ", 1)[-1]}
    except FileNotFoundError:
        return {"key": task.key, "status": "missing", "detail": "file not found"}
    margin = task.margin
    if task.box is not None:
        status, detail, box = "box", "dataset face box", task.box
    else:
        found = find_faces(image, task.detector)
        if found:
            status, detail, box = "face", found[0].source, found[0].as_tuple()
        elif task.no_face == "center":
            status, detail, box, margin = "center", "no face found; centre crop", center_box(image.shape), 0.0
        else:
            return {"key": task.key, "status": "no_face", "detail": "no face found; skipped"}
    crop = Image.fromarray(crop_face(image, box, margin, task.size))
    options = {"quality": 95} if task.image_format == "jpg" else {}
    atomic_write(task.target, lambda handle: crop.save(handle, format=FORMATS[task.image_format], **options))
    return {"key": task.key, "status": status, "detail": detail}


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _crop_keys(faces: LabeledFaces, image_format: str) -> list[str]:
    """Crop path (relative to OUT) of every sample: its relative path under images/, made unique."""
    keys, seen = [], Counter()
    for sample in faces.samples:
        path = Path(sample.path)
        if path.is_absolute():
            try:
                path = path.relative_to(faces.root)
            except (TypeError, ValueError):
                path = Path(*path.parts[1:])
        key = (Path("images") / path).with_suffix(f".{image_format}").as_posix()
        seen[key] += 1
        if seen[key] > 1:
            key = key[: -len(image_format) - 1] + f"__{seen[key]}.{image_format}"
        keys.append(key)
    return keys


def _read_journal(path: Path) -> dict[str, dict[str, str]]:
    entries: dict[str, dict[str, str]] = {}
    if not path.exists():
        return entries
    try:
        with open_regular(path) as handle:
            text = handle.read().decode("utf-8", "replace")
    except (OSError, PhanetError) as exc:
        raise PhanetError.about("out", "{path} cannot be read ({reason})", path=path, reason=shorten(exc, 200)) from None
    for line in text.splitlines():
        try:
            entry = parse_json(line)
        except ValueError:
            continue  # the line an interrupted run was writing
        if isinstance(entry, dict) and "key" in entry and "status" in entry:
            entries[entry["key"]] = entry
    if text and not text.endswith("\n"):
        try:
            with open(path, "a") as handle:
                handle.write("\n")
        except OSError as exc:
            raise write_failed(path, exc) from None
    return entries


def _clear(out: Path) -> None:
    shutil.rmtree(out / "images", ignore_errors=True)
    for name in OWN_FILES:
        (out / name).unlink(missing_ok=True)


def _start(out: Path, settings: dict[str, Any], overwrite: bool) -> None:
    """Check that ``out`` may be written (fresh, resumable, or explicitly overwritten) and record the settings."""
    if out.exists() and not out.is_dir():
        raise PhanetError.about("out", "{path} is a file, expected a folder", path=out)
    record = out / "prepare.json"
    if record.is_file():
        try:
            previous = parse_json(read_limited(record, 10_000_000, "prepare.json"))
        except (ValueError, OSError, PhanetError):
            previous = {}
        if previous.get("tool") != MARKER:
            raise PhanetError.about("out", "{record} was not written by phanet prepare; choose another folder", record=record)
        if overwrite:
            _clear(out)
        elif previous.get("settings") != settings:
            before = previous.get("settings", {})
            changed = sorted(k for k in settings.keys() | before.keys() if before.get(k) != settings.get(k))
            raise PhanetError.about(
                "out",
                "{path} holds a prepare run with other settings ({changed}); use a new {out}, or {overwrite} to start again",
                path=out,
                changed=", ".join(changed),
            )
    elif out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise PhanetError.about(
                "out",
                "{path} is not empty and is not a phanet prepare output; choose an empty folder or pass {overwrite}",
                path=out,
            )
        _clear(out)
    write_json(record, {"tool": MARKER, "settings": settings})


def _results(tasks: list[_Task], workers: int) -> Iterable[dict[str, str]]:
    if workers <= 1:
        yield from map(_crop_one, tasks)
        return
    # Fresh interpreters: a forked child can inherit OpenCV's thread pool in a locked state and hang.
    workers = bounded_by_cpus(workers, "workers")
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)
    try:
        yield from pool.map(_crop_one, tasks, chunksize=8)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


#: Largest crop side: the largest network input (``model.input_size``); a crop of 100,000 pixels a
#: side would take 30 GB.
MAX_SIZE = 8192


def crop_size(size: int) -> int:
    """``size`` when it is a crop side phanet can use, from 8 to :data:`MAX_SIZE` pixels; one line about
    ``size`` otherwise, before any crop is allocated."""
    if not 8 <= size <= MAX_SIZE:
        raise PhanetError.about(
            "size",
            "expected a crop side from 8 to {most} pixels (the largest model.input_size), got {size}",
            most=MAX_SIZE,
            size=size,
        )
    return size


def _check_settings(
    faces: LabeledFaces, size: int, margin: float, no_face: str, use_boxes: bool, image_format: str, detector: str
) -> None:
    """Each crop setting of :func:`prepare_faces`, refused with one line naming it."""
    crop_size(size)
    if margin < 0:
        raise PhanetError.about("margin", "expected 0 or more, got {margin}", margin=margin)
    if no_face not in NO_FACE_CHOICES:
        raise PhanetError.about("no_face", "expected skip or center, got {value!r}", value=no_face)
    if image_format not in FORMATS:
        raise PhanetError.about("image_format", "expected png or jpg, got {value!r}", value=image_format)
    if detector not in DETECTORS:
        raise PhanetError.about(
            "detector", "expected one of {choices}, got {value!r}", choices=", ".join(DETECTORS), value=detector
        )
    if use_boxes and not any(s.box for s in faces.samples):
        raise PhanetError.about("use_boxes", "dataset {name!r} has no face boxes; detect faces instead", name=faces.name)


def prepare_faces(
    faces: LabeledFaces,
    out: str | Path,
    source: dict[str, Any],
    size: int = 224,
    margin: float = 0.2,
    no_face: str = "skip",
    use_boxes: bool = False,
    image_format: str = "png",
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    detector: str = DEFAULT_DETECTOR,
) -> PrepareResult:
    """Crop the faces of ``faces`` into ``out`` (see the module docstring); resumes an interrupted run.

    ``source`` describes where ``faces`` came from (dataset, root, options); with the crop settings it
    is recorded in ``prepare.json`` and must match to resume. ``detector`` names the face detector
    (:data:`phanet.data.detectors.DETECTORS`).
    """
    _check_settings(faces, size, margin, no_face, use_boxes, image_format, detector)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PhanetError.about("out", "{path} is a file, expected a folder", path=out)
    lock = lock_folder(out)
    if lock is None:
        raise PhanetError.about("out", "{path} is being written by another phanet prepare; wait for it to end", path=out)
    try:
        settings = {**source, "size": size, "margin": margin, "no_face": no_face, "use_boxes": use_boxes, "format": image_format}
        if detector != "haar":  # runs of earlier versions, which had the cascades only, record no detector
            settings["detector"] = detector
        try:
            _start(out, settings, overwrite)
        except OSError as exc:  # e.g. a name longer than the file system takes
            raise write_failed(out, exc) from None
        journal_path = out / "journal.jsonl"
        done = _read_journal(journal_path)
        # Temporary files of an interrupted run (``*.partial``: those of earlier versions of this command).
        remove_temporaries(out / "images")
        for partial in (out / "images").rglob("*.partial"):
            partial.unlink()
        keys = _crop_keys(faces, image_format)
        # Unreadable and missing files are tried again (they fail fast and may have been fixed); a face
        # search that found nothing is not.
        finished = {k for k, e in done.items() if e["status"] == "no_face" or (e["status"] in CROPPED and (out / k).is_file())}
        tasks = [
            _Task(
                key,
                str(faces.image_path(s)),
                str(out / key),
                s.box if use_boxes else None,
                size,
                margin,
                no_face,
                image_format,
                detector,
            )
            for key, s in zip(keys, faces.samples)
            if key not in finished
        ]
        try:
            with (
                open(journal_path, "a") as journal,
                tqdm(total=len(keys), initial=len(keys) - len(tasks), desc="prepare", unit="img", disable=not progress) as bar,
            ):
                for entry in _results(tasks, workers):
                    journal.write(json.dumps(entry) + "\n")
                    journal.flush()
                    done[entry["key"]] = entry
                    bar.update()
        except OSError as exc:
            raise write_failed(journal_path, exc) from None
        return _finish(faces, out, keys, done)
    finally:
        os.close(lock)


def _finish(faces: LabeledFaces, out: Path, keys: list[str], done: dict[str, dict[str, str]]) -> PrepareResult:
    kept: list[Sample] = []
    problems: list[dict[str, str]] = []
    counts: Counter[str] = Counter()
    for key, sample in zip(keys, faces.samples):
        entry = done[key]
        counts[entry["status"]] += 1
        if entry["status"] in CROPPED:
            kept.append(dataclasses.replace(sample, path=key, box=None))
        if entry["status"] not in ("face", "box"):
            problems.append({"path": sample.path, "problem": entry["status"], "detail": entry["detail"]})
    problems += [{"path": printable(path), "problem": "skipped", "detail": reason} for path, reason in faces.skipped]
    crops = LabeledFaces(name=faces.name, expressions=faces.expressions, poses=faces.poses, samples=kept, root=out)
    manifest = crops.write_manifest(out / "manifest.csv")
    write_json(out / "classes.json", {"expressions": faces.expressions, "poses": faces.poses})
    report = out / "report.csv"
    write_csv(report, pd.DataFrame(problems, columns=["path", "problem", "detail"]))
    return PrepareResult(out=out, counts=dict(counts), manifest=manifest, report=report, problems=problems)
