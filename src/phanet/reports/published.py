"""Published results: an experiment's numbers as a small summary and its test's per-image table, and the
Markdown tables the documentation shows, generated from them.

An experiment folder (``phanet demo``, ``phanet crossval``, ``phanet ablate``) becomes two files:

- ``NAME.json``, the summary: how it was made (command, commit, version, generator version, machine,
  threads, load, wall time), and per trained network its evaluation (accuracies overall, per
  expression, per yaw, confusion matrices), how it trained (epochs, the tested epoch, what ended
  it), its scale weights over the test images and where its squares looked;
- ``NAME_predictions.csv.gz``, every test image's row of ``phanet evaluate`` for every network, with
  the landmark columns of the built-in data: every number of the summary can be recomputed from it
  (:func:`check_predictions`) without the run folders.

:func:`phanet.reports.results_pages.render` turns a summary into the Markdown of its results section;
``phanet docs`` writes them into ``docs/results/`` and checks that the committed pages are what the
summaries give. A
summary whose runs were not kept (``"source": "transcribed"``) holds its numbers as a report gave
them, says so in its ``note``, and has no per-image table.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from phanet.errors import PhanetError
from phanet.files import atomic_write_bytes, write_json
from phanet.reports.coverage import coverage_table
from phanet.reports.summaries import training_columns
from phanet.synth.landmarks import landmark_columns
from phanet.training.run_folder import RunFolder
from phanet.version import __version__

#: The kinds of experiment a summary is written for.
KINDS = ("demo", "crossval", "ablation")
#: The evaluation figures a summary keeps of each network (``evaluation.json`` without the bulk).
KEPT = (
    "samples",
    "expression_classes",
    "pose_classes",
    "expression_accuracy",
    "pose_accuracy",
    "expression_accuracy_per_class",
    "expression_accuracy_per_pose",
    "confusion_expression",
    "confusion_pose",
    "mean_scale_weights",
    "mean_task_weights",
    "scales",
    "joint_sa",
    "loss_setting",
    "test_subjects",
)
#: The landmarks that stand for the expression regions (mouth, eyes, brows), kept beside each image's row.
LANDMARKS = ("mouth", "mouth_left", "mouth_right", "left_eye", "right_eye", "left_brow", "right_brow")
#: Numbers in the published table: 6 significant digits (float32 holds about 7).
FLOAT_FORMAT = "%.6g"
#: Columns of the published table that hold text (class names such as "-30" included).
TEXT_COLUMNS = ("name", "fold", "table", "path", "subject", "true_expression", "expression", "true_pose", "pose")
#: Columns of the evaluation rows that the published table leaves out: the squares in pixels are
#: unknown in an evaluation (NaN), and the index is the run's own.
DROPPED = ("index", "s2_x0", "s2_y0", "s2_x1", "s2_y1", "s3_x0", "s3_y0", "s3_x1", "s3_y1")


def _spread(predictions: pd.DataFrame) -> dict[str, list[float]]:
    """Mean and standard deviation over the test images of the scale weights c1..c3 (NaN: not fused)."""
    weights = predictions[["c1", "c2", "c3"]].astype(float)
    return {"mean": [float(v) for v in weights.mean()], "std": [float(v) for v in weights.std()]}


def _coverage(predictions: pd.DataFrame) -> dict[str, dict[str, float]] | None:
    """Where the squares looked: the share of test images, per yaw and ``all``, whose S2 square holds
    any expression region and whose S3 square holds the mouth, an eye, a brow or any of them."""
    needed = [c for name in LANDMARKS for c in landmark_columns(name)]
    if not all(c in predictions for c in needed) or predictions[["s2_x", "s3_x"]].isna().all(axis=None):
        return None
    table = coverage_table(predictions, predictions)
    shares = {}
    for scale, region in (("S2", "any"), ("S3", "any"), ("S3", "mouth"), ("S3", "eye"), ("S3", "brow")):
        part = table[table["scale"] == scale]
        label = f"{scale} square on mouth, eye or brow" if region == "any" else f"{scale} square on {region}"
        shares[label] = {str(pose): float(value) for pose, value in zip(part["pose"], part[region])}
    return shares


def _published(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` as the published table reads back (numbers to 6 significant digits), so that every
    number of the summary is computed from exactly what is published."""
    return _read_table(io.StringIO(rows.to_csv(index=False, float_format=FLOAT_FORMAT)))


def _read_table(source: Any) -> pd.DataFrame:
    frame = pd.read_csv(source, dtype=dict.fromkeys(TEXT_COLUMNS, str), keep_default_na=False, na_values=[""])
    text = [c for c in TEXT_COLUMNS if c in frame]
    frame[text] = frame[text].fillna("")
    return frame


def summarize(
    runs: Sequence[tuple[str, int | None, str | None, str | Path]], kind: str, landmarks: pd.DataFrame | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The summary of an experiment and its per-image table (module docstring).

    ``runs``: each evaluated run folder of the experiment as (name in the tables, fold or None,
    table or None (``6``, ``8``, ``fig15`` for the ablations), run folder). ``landmarks``: ``path``
    and the landmark columns of the test images (the built-in data's
    :func:`~phanet.data.adapters.synth.landmark_table`), kept beside each row so that where the
    squares looked can be recomputed.
    """
    if kind not in KINDS:
        raise PhanetError.about("kind", "expected one of {kinds}, got {kind!r}", kinds=", ".join(KINDS), kind=kind)
    published, tables = [], []
    keep = [c for name in LANDMARKS for c in landmark_columns(name)]
    for name, fold, table, run_dir in runs:
        folder = RunFolder(run_dir)
        summary, predictions = folder.read_evaluation()
        predictions = predictions.drop(columns=[c for c in DROPPED if c in predictions])
        if landmarks is not None:
            predictions = predictions.merge(landmarks[["path", *keep]].drop_duplicates("path"), on="path", how="left")
        predictions.insert(0, "table", table or "")
        predictions.insert(0, "fold", "" if fold is None else str(fold))
        predictions.insert(0, "name", name)
        predictions = _published(predictions)
        trained = training_columns(SimpleNamespace(metrics=folder.read_metrics(), run_dir=folder.path))
        published.append(
            {
                "name": name,
                "fold": fold,
                "table": table,
                "evaluation": {k: summary[k] for k in KEPT if k in summary},
                "training": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in trained.items()},
                "scale_weights": _spread(predictions),
                "coverage": _coverage(predictions),
            }
        )
        tables.append(predictions)
    return {"kind": kind, "source": "run", "runs": published}, pd.concat(tables, ignore_index=True)


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu() -> str:
    with_name = Path("/proc/cpuinfo")
    if with_name.is_file():
        for line in with_name.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def provenance(
    command: str,
    threads: int | None,
    device: str,
    started: float | None,
    load_at_start: float | None,
    generator_version: int | None,
) -> dict[str, Any]:
    """How an experiment was made, for its summary: the command, the code (version, commit, and whether
    the working tree had changes), the machine (CPU, usable cores, device, PyTorch), the thread count,
    the 1-minute load average at the start and the end, and the wall time (None where unknown: a
    summary made afterwards from a run folder knows neither the start nor its load)."""
    import torch

    from phanet.runtime import usable_cpus

    commit = _git("rev-parse", "--short=12", "HEAD")
    changed = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "command": command,
        "phanet_version": __version__,
        "commit": (commit + (" with local changes" if changed else "")) if commit else "unknown",
        "generator_version": generator_version,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpu": _cpu(), "usable_cores": usable_cpus(), "device": device, "torch": torch.__version__},
        "threads": threads if threads is not None else "adaptive",
        "load": None if load_at_start is None else [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
        "minutes": None if started is None else round((time.time() - started) / 60, 1),
    }


def measured(
    tables: Sequence[tuple[str, pd.DataFrame]],
    command: str,
    note: str,
    threads: int | None,
    started: float | None,
    load_at_start: float | None,
) -> dict[str, Any]:
    """The summary of a benchmark's tables (each a title and a frame, written as text) with its
    :func:`provenance` on the CPU; ``phanet docs`` shows the tables as they are."""
    summary: dict[str, Any] = {
        "kind": "transcribed",
        "source": "measured",
        "inline": True,
        "note": note,
        "tables": [
            {"title": title, "columns": [str(c) for c in table.columns], "rows": [[str(v) for v in row] for row in table.values]}
            for title, table in tables
        ],
    }
    summary.update(provenance(command, threads, "cpu", started, load_at_start, None))
    return summary


def publish(
    runs: Sequence[tuple[str, int | None, str | None, str | Path]],
    kind: str,
    out: str | Path,
    command: str,
    threads: int | None,
    device: str,
    started: float | None,
    load_at_start: float | None,
    generator_version: int | None,
    landmarks: pd.DataFrame | None = None,
) -> list[Path]:
    """An experiment's summary and per-image table, written by the experiment into its folder
    ``out`` as ``summary.json`` and ``predictions.csv.gz`` (:func:`summarize`, :func:`provenance`)."""
    summary, predictions = summarize(runs, kind, landmarks)
    summary.update(provenance(command, threads, device, started, load_at_start, generator_version))
    return write(summary, predictions, out, "summary")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write(summary: dict[str, Any], predictions: pd.DataFrame | None, folder: str | Path, name: str) -> list[Path]:
    """``folder/NAME.json`` and, with ``predictions``, ``folder/NAME_predictions.csv.gz`` (written
    atomically, the table first); the paths written."""
    folder = Path(folder)
    written = []
    if predictions is not None:
        table = folder / f"{name}_predictions.csv.gz"
        text = predictions.to_csv(index=False, float_format=FLOAT_FORMAT).encode()
        atomic_write_bytes(table, gzip.compress(text, mtime=0))
        summary = {**summary, "predictions": table.name}
        written.append(table)
    write_json(folder / f"{name}.json", _clean(summary))
    written.append(folder / f"{name}.json")
    return written


def read(path: str | Path) -> dict[str, Any]:
    """A summary, its missing numbers (null) as NaN."""

    def nan(value: Any) -> Any:
        if value is None:
            return math.nan
        if isinstance(value, dict):
            return {k: nan(v) for k, v in value.items()}
        if isinstance(value, list):
            return [nan(v) for v in value]
        return value

    summary = json.loads(Path(path).read_text())
    runs = summary.get("runs", [])
    return {**summary, "runs": [{**run, "evaluation": nan(run["evaluation"])} for run in runs]}


def read_predictions(summary_path: str | Path) -> pd.DataFrame | None:
    """The per-image table beside a summary (None for a transcribed one)."""
    summary = json.loads(Path(summary_path).read_text())
    name = summary.get("predictions")
    if not name:
        return None
    return _read_table(Path(summary_path).parent / name)


def _accuracy(rows: pd.DataFrame, true: str, predicted: str) -> float:
    scored = rows[rows[true] != ""]
    return float((scored[true] == scored[predicted]).mean()) if len(scored) else math.nan


def check_predictions(summary: dict[str, Any], predictions: pd.DataFrame) -> list[str]:
    """What in ``summary`` its per-image table does not give back: accuracies overall, per expression
    and per yaw, and where the squares looked (an empty list when every number agrees)."""
    problems = []
    for run in summary["runs"]:
        rows = predictions[(predictions["name"] == run["name"]) & (predictions["fold"] == str(run["fold"] or ""))]
        evaluation = run["evaluation"]
        where = f"{run['name']}" + (f", fold {run['fold']}" if run["fold"] else "")
        expected = {
            "expression_accuracy": _accuracy(rows, "true_expression", "expression"),
            "pose_accuracy": _accuracy(rows, "true_pose", "pose"),
        }
        for key, value in expected.items():
            if not math.isclose(evaluation[key], value, abs_tol=1e-9) and not (math.isnan(value) and math.isnan(evaluation[key])):
                problems.append(f"{where}: {key} {evaluation[key]} in the summary, {value} from the table")
        for yaw, value in evaluation.get("expression_accuracy_per_pose", {}).items():
            got = _accuracy(rows[rows["true_pose"] == yaw], "true_expression", "expression")
            if not math.isclose(value, got, abs_tol=1e-9):
                problems.append(f"{where}: FER at yaw {yaw} {value} in the summary, {got} from the table")
        if run.get("coverage") is not None and _coverage(rows) != run["coverage"]:
            problems.append(f"{where}: where the squares looked differs from the table")
    return problems
