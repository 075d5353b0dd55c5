"""Writing the dataset to a folder: PNGs, ``manifest.csv``, ``synth.json`` and a dataset card.

``manifest.csv`` is the common manifest of :mod:`phanet.data.records`, which every dataset reader
takes, followed by the landmark columns of :mod:`~phanet.synth.landmarks`.

Work is split into chunks of one subject and expression, rendered by a pool of worker processes.
Each image's pixels depend only on the settings and the sample (see
:mod:`~phanet.synth.synthesize`) and PNGs are written with fixed compression, so the files are
byte-identical whatever the number of workers. Files are written atomically and existing ones are
kept, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import pandas as pd

from phanet.data.records import LabeledFaces, Sample
from phanet.errors import PhanetError
from phanet.files import atomic_write_bytes, atomic_write_text, parse_json, remove_temporaries, write_csv, write_json
from phanet.synth.expressions import EXPRESSION_NAMES
from phanet.synth.landmarks import LANDMARK_COLUMNS, LANDMARKS, landmark_record
from phanet.synth.presets import Preset, SampleSpec, sample_specs
from phanet.synth.settings import SETTINGS_FILE, SynthSettings
from phanet.text import format_angle, plural

#: zlib level of the PNGs; fixed so that equal pixels always give equal bytes.
PNG_COMPRESSION = 3


def encode_png(image) -> bytes:
    ok, buffer = cv2.imencode(".png", image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buffer.tobytes()


def to_sample(spec: SampleSpec, preset: Preset) -> Sample:
    """The common record of ``spec`` (its row of ``manifest.csv``)."""
    return Sample(
        path=spec.path,
        subject=spec.subject_id,
        expression=preset.expressions.index(spec.expression),
        pose=spec.pose,
        intensity=spec.intensity,
        yaw=float(spec.yaw),
        pitch=float(spec.pitch),
    )


def _init_worker() -> None:
    # One thread per process: the pool already uses every core.
    cv2.setNumThreads(1)


def _render_chunk(task: tuple[list[tuple[SampleSpec, bool]], int, int, str]) -> list[tuple[str, dict]]:
    """Render a chunk of (sample, write the PNG?) pairs; returns each sample's path and landmark columns."""
    from phanet.synth.synthesize import render_spec

    specs, seed, size, out = task
    rows = []
    for spec, write in specs:
        render = render_spec(spec, seed, size)
        if write:
            path = Path(out) / spec.path
            atomic_write_bytes(path, encode_png(render.image))
        rows.append((spec.path, landmark_record(render.landmarks)))
    return rows


def _known_landmarks(manifest: Path) -> dict[str, dict]:
    """Landmark columns per path of an earlier run's manifest (none when it predates them or is unreadable)."""
    try:
        table = pd.read_csv(manifest, dtype={"path": str})
    except (OSError, ValueError, pd.errors.ParserError):
        return {}
    if not all(c in table.columns for c in LANDMARK_COLUMNS) or table[list(LANDMARK_COLUMNS)].isna().any(axis=None):
        return {}
    table = table.astype({c: int for c in LANDMARK_COLUMNS if c.endswith("_vis")})
    return {row["path"]: {c: row[c] for c in LANDMARK_COLUMNS} for row in table.to_dict("records")}


def prepare_folder(out: Path, settings: SynthSettings) -> None:
    """Create ``out`` (or check it) and record the settings; refuse a folder made with other settings."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PhanetError.about("out", "cannot write to {out} ({reason})", out=out, reason=exc.strerror or exc) from None
    record = settings.to_json()
    path = out / SETTINGS_FILE
    if path.exists():
        try:
            old = parse_json(path.read_text())
        except (OSError, ValueError):
            old = None
        old = old if isinstance(old, dict) else {}
        differs = [k for k, v in record.items() if k != "subjects" and old.get(k) != v]
        if differs:
            key = differs[0]
            raise PhanetError.about(
                "out",
                "{out} holds a synth dataset made with {key} {old!r}, not {new!r}; choose another folder or delete it",
                out=out,
                key=key,
                old=old.get(key),
                new=record[key],
            )
    elif any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise PhanetError.about(
            "out", "{out} is not empty and holds no {file}; choose an empty or new folder", out=out, file=SETTINGS_FILE
        )
    write_json(path, record)


def _chunks(work: list[tuple[SampleSpec, bool]]) -> list[list[tuple[SampleSpec, bool]]]:
    groups: dict[tuple[int, str], list[tuple[SampleSpec, bool]]] = {}
    for spec, write in work:
        groups.setdefault((spec.subject, spec.expression), []).append((spec, write))
    return list(groups.values())


def generate(
    out: str | Path,
    settings: SynthSettings,
    workers: int | None = None,
    progress: Callable[[Iterable[int], int], Iterable[int]] | None = None,
) -> LabeledFaces:
    """Render every image of ``settings`` into ``out`` and write the manifest (with the landmark columns of
    :mod:`~phanet.synth.landmarks`) and card.

    ``workers`` processes (default: all cores; 1 renders in this process). ``progress`` wraps the
    stream of per-chunk image counts (e.g. a tqdm factory taking the iterable and the total). Images
    already in ``out`` are kept; their landmarks come from the manifest of the earlier run, or are
    rendered again when it has none.
    """
    out = Path(out)
    prepare_folder(out, settings)
    remove_temporaries(out)  # what a killed run was writing
    preset = settings.preset
    specs = sample_specs(preset, settings.subjects, settings.seed, settings.poses)
    landmarks = _known_landmarks(out / "manifest.csv")
    work = [(s, not (out / s.path).is_file()) for s in specs]
    work = [(s, write) for s, write in work if write or s.path not in landmarks]
    tasks = [(chunk, settings.seed, settings.size, str(out)) for chunk in _chunks(work)]
    workers = max(1, min(int(workers or os.cpu_count() or 1), max(len(tasks), 1)))
    if workers == 1:
        results: Iterable[list[tuple[str, dict]]] = map(_render_chunk, tasks)
        pool = None
    else:
        # Fresh interpreters: a forked child can inherit OpenCV's thread pool in a locked state and hang.
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(workers, initializer=_init_worker)
        results = pool.imap_unordered(_render_chunk, tasks)

    def counts() -> Iterator[int]:
        for rows in results:
            landmarks.update(rows)
            yield len(rows)

    try:
        for _ in progress(counts(), len(work)) if progress else counts():
            pass
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    written = LabeledFaces(
        name=f"synth-{preset.name}",
        expressions=list(preset.expressions),
        poses=preset.pose_names(settings.poses),
        samples=[to_sample(s, preset) for s in specs],
        root=out,
    )
    table = written.to_frame().join(pd.DataFrame([landmarks[s.path] for s in specs], columns=list(LANDMARK_COLUMNS)))
    write_csv(out / "manifest.csv", table)
    atomic_write_text(out / "README.md", dataset_card(written, settings))
    return written


def dataset_card(faces: LabeledFaces, settings: SynthSettings) -> str:
    """A short Markdown description of the generated dataset with counts per class and pose."""
    preset = settings.preset
    counts = faces.counts()
    intensity = Counter(s.intensity for s in faces.samples)
    expr_pose = Counter((s.expression, s.pose) for s in faces.samples)
    lines = [
        f"# Synthetic multi-view facial expressions: `{preset.name}`",
        "",
        f"Rendered by `phanet synth` (generator version {settings.to_json()['version']}): {preset.description}.",
        f"{plural(len(faces), 'image')} of {plural(settings.subjects, 'subject')}, "
        f"{settings.size}x{settings.size} px, seed {settings.seed}.",
        "",
        "Columns of `manifest.csv`: path, subject, expression, pose (class = yaw angle), intensity (0 = neutral,",
        "1 subtle ... 4 full), yaw and pitch (exact degrees), face box (empty: the images are face crops),",
        "then landmarks `lm_<point>_x`, `lm_<point>_y` (normalised image coordinates, x right, y down, in [0, 1])",
        "and `lm_<point>_vis` (1 visible, 0 hidden by the head or outside the image) for the points",
        ", ".join(LANDMARKS) + ";",
        "left and right are the subject's own sides (the left eye is on the viewer's right in a frontal view).",
        "Yaw > 0: the face turns towards the viewer's right (the subject's right cheek shows); pitch > 0: looking up.",
    ]
    if preset.continuous:
        bins = ", ".join(format_angle(b) for b in settings.pose_angles())
        lines.append(
            f"Yaw is drawn uniformly in [{preset.yaw_range[0]:g}, {preset.yaw_range[1]:g}] and pitch in "
            f"[{preset.pitch_range[0]:g}, {preset.pitch_range[1]:g}]; "
            f"the pose class is the nearest bin of {bins}."
        )
    else:
        low, high = preset.pitch_range
        lines.append(f"Pitch varies uniformly in [{low:g}, {high:g}] degrees around level.")
    header = "| expression | " + " | ".join(faces.poses) + " | total |"
    lines += ["", "## Images per expression and pose", "", header, "|" + "---|" * (len(faces.poses) + 2)]
    for e, name in enumerate(faces.expressions):
        row = [expr_pose.get((e, p), 0) for p in range(len(faces.poses))]
        label = f"{name} ({EXPRESSION_NAMES[name]})" if name in EXPRESSION_NAMES else name
        lines.append(f"| {label} | " + " | ".join(str(c) for c in row) + f" | {sum(row)} |")
    totals = [counts["pose"].get(p, 0) for p in faces.poses]
    lines.append("| total | " + " | ".join(str(c) for c in totals) + f" | {len(faces)} |")
    lines += ["", "## Images per intensity", "", "| intensity | images |", "|---|---|"]
    lines += [f"| {k} | {intensity[k]} |" for k in sorted(intensity)]
    return "\n".join(lines) + "\n"
