"""``phanet demo``: the built-in experiment. Render (or reuse) the synthetic ``bu3dfe`` data, train
PhaNet and the DenseNet-40 baseline with the same budget on subject-independent splits, evaluate
both on held-out subjects, and write a paper-style report with tables and figures."""

from __future__ import annotations

import math
import os
import platform
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from phanet.config import Config
from phanet.data.adapters.synth import landmark_table
from phanet.data.cache import cache_root
from phanet.data.classes import expression_legend, expression_word
from phanet.data.datasets import make_split
from phanet.data.records import LabeledFaces
from phanet.data.registry import load_dataset
from phanet.errors import PhanetError, PhanetWarning
from phanet.experiments import (
    METHOD_NAMES,
    PROCESSES,
    MethodRun,
    baseline_config,
    data_parallel,
    data_parallel_threads,
    run_method,
)
from phanet.files import atomic_write_text
from phanet.inference import TrainedModel
from phanet.reports import figures, published
from phanet.reports.attention import attention_figures, pick_examples
from phanet.reports.coverage import coverage_by_pose, coverage_table
from phanet.reports.embedding import representations, tsne
from phanet.reports.summaries import ended_by, per_expression_table
from phanet.reports.tables import expression_pose_table, method_table, per_pose_table, to_markdown, write_table
from phanet.runtime import LoadWatch, usable_cpus, uses_cuda
from phanet.synth import settings as synth_settings
from phanet.synth.generate import generate
from phanet.text import plural
from phanet.training.run import time_cap, training_precision
from phanet.training.run_folder import RunFolder
from phanet.version import __version__

FEATURES = {"PhaNet": "Pixel and scale attention", "DenseNet-40": "Dense features"}


def demo_faces(config: Config, progress: bool = True) -> tuple[LabeledFaces, Path]:
    """The configured synthetic dataset, rendered to the cache once and reused afterwards.

    The cache folder is named after the generator version as well, so a new version renders its own
    images instead of training on those of an earlier one.
    """
    if config.data.dataset != "synth":
        raise PhanetError(f"data.dataset: the demo runs on the built-in synth data, not {config.data.dataset!r}")
    options = dict(config.data.options)
    settings = synth_settings.resolve_settings(**options)
    name = (
        f"{settings.preset.name}-{settings.subjects}s-{settings.size}px-seed{settings.seed}-v{synth_settings.GENERATOR_VERSION}"
    )
    folder = config.data.root or str(cache_root() / "synth" / name)
    if not (Path(folder) / "manifest.csv").exists():
        wrap = None
        if progress:

            def wrap(counts, total):
                with tqdm(total=total, desc="rendering", unit="img") as bar:
                    for count in counts:
                        bar.update(count)
                        yield count

        generate(folder, settings, workers=usable_cpus(), progress=wrap)
    return load_dataset("synth", folder, **options), Path(folder)


def _figures(runs: dict[str, MethodRun], faces: LabeledFaces, test: LabeledFaces, out: Path) -> dict[str, Path]:
    phanet = runs["PhaNet"]
    paths: dict[str, Path] = {}
    summary = phanet.summary
    paths["cm_expression"] = figures.confusion_matrix_figure(
        summary["confusion_expression"],
        summary["expression_classes"],
        out / "fig5a_confusion_expression.png",
        "PhaNet — expression (held-out subjects)",
    )
    if summary.get("confusion_pose"):
        paths["cm_pose"] = figures.confusion_matrix_figure(
            summary["confusion_pose"],
            [f"{p}°" for p in summary["pose_classes"]],
            out / "fig5c_confusion_pose.png",
            "PhaNet — head pose (held-out subjects)",
        )
    paths["cm_expression_densenet"] = figures.confusion_matrix_figure(
        runs["DenseNet-40"].summary["confusion_expression"],
        summary["expression_classes"],
        out / "fig5a_confusion_expression_densenet.png",
        "DenseNet-40 — expression (held-out subjects)",
    )
    paths["per_pose"] = figures.per_pose_accuracy_figure(
        {name: run.summary["expression_accuracy_per_pose"] for name, run in runs.items()},
        out / "fig5b_accuracy_per_pose.png",
        "FER accuracy per yaw angle (held-out subjects)",
    )
    model = TrainedModel.from_checkpoint(phanet.checkpoint)
    examples = pick_examples(test, count=12, seed=0)
    attention = attention_figures(model, test, examples, out, prefix="fig9_")
    paths["squares"] = attention["squares"]
    if "maps" in attention:
        paths["maps"] = attention["maps"]
    paths["fig12"] = figures.scale_weights_figure(
        phanet.metrics, out / "fig12_scale_weights_training.png", "train", "Scale attention weights and training loss"
    )
    paths["fig13"] = figures.scale_weights_figure(
        phanet.metrics, out / "fig13_scale_weights_validation.png", "val", "Scale attention weights and FER accuracy (validation)"
    )
    paths["fig15"] = figures.task_weights_figure(
        {"with constraint factor": phanet.metrics}, out / "fig15_task_weights.png", "DCML"
    )
    rng = np.random.default_rng(0)
    chosen = sorted(rng.choice(len(test), size=min(900, len(test)), replace=False).tolist())
    features = representations(model, test, chosen)
    labels = np.array([test.samples[i].expression for i in chosen])
    paths["tsne"] = figures.tsne_figure(
        {
            "(a) f: joint SAL (Eq. 8)": (tsne(features["f"]), labels),
            "(b) M_F: scales fused without SAL weights (Eq. 6)": (tsne(features["M_F"]), labels),
        },
        test.expressions,
        out / "fig14_tsne.png",
    )
    return paths


def _schedule(config: Config) -> str:
    """The budget in words: epochs, learning-rate schedule, stopping rules."""
    t, opt = config.train, config.optim
    if opt.scheduler == "plateau":
        decay = f"×{opt.lr_decay} after {opt.plateau_patience + 1} epochs without a better validation FER accuracy"
    elif opt.scheduler == "cosine":
        decay = f"along half a cosine to ×{opt.lr_decay} at epoch {t.epochs}"
    else:
        decay = f"×{opt.lr_decay} at {', '.join(str(m) for m in opt.milestones)} of the run"
    stops = [f"at most {t.epochs} epochs"]
    if t.early_stop:
        stops.append(f"stopped after {t.early_stop} epochs without a better validation FER accuracy")
    if t.chance_margin is not None and (t.early_stop or opt.scheduler == "plateau"):
        stops.append(
            f"those epochs counted from the first with a validation FER accuracy {t.chance_margin * 100:g} points above chance"
        )
    if t.max_minutes:
        stops.append(f"at most {t.max_minutes:g} minutes of training per method")
    names = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}
    parts = "".join(f"; {name} at ×{factor:g} of it" for name, factor in opt.part_lr.items())
    return f"{'; '.join(stops)}; batch {t.batch_size}, {names.get(opt.name, opt.name)} lr {opt.lr}, {decay}{parts}"


def _expression_classes(expressions: list[str]) -> str:
    """``6 expressions × 4 intensities + neutral`` when neutral is one of the classes."""
    neutral = [e for e in expressions if e.lower() in ("ne", "neutral")]
    if not neutral:
        return plural(len(expressions), "expression")
    return f"{plural(len(expressions) - 1, 'expression')} × 4 intensities + neutral"


def _describe(
    config: Config,
    faces: LabeledFaces,
    folder: Path,
    split,
    seconds: float,
    reused: list[str],
    runs: dict[str, MethodRun] | None = None,
) -> str:
    o = config.data.options
    t = config.train
    trained = ", ".join(f"{name} {len(run.metrics)}" for name, run in (runs or {}).items())
    device = torch.cuda.get_device_name() if uses_cuda(t.accelerator) else f"CPU ({usable_cpus()} usable cores)"
    return "\n".join(
        [
            f"- **Run**: `phanet demo` (phanet {__version__}, torch {torch.__version__}, Python {platform.python_version()}) "
            f"on {device}, finished {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {seconds / 60:.1f} min"
            + (f" ({' and '.join(reused)} trained by an earlier run into the same folder)." if reused else "."),
            f"- **Seed**: {config.seed} (training); data seed {o.get('seed', 0)}; split seed {config.data.split.seed}.",
            f"- **Data**: built-in procedurally rendered multi-view dataset, preset `{o.get('preset', 'bu3dfe')}` "
            f"({_expression_classes(faces.expressions)}, yaws {', '.join(p + '°' for p in faces.poses)}), "
            f"{plural(len(faces.subjects()), 'subject')}, {plural(len(faces), 'image')} of {o.get('size')} px, "
            f"cached in `{folder}`.",
            f"- **Split (subject-independent)**: {plural(len(split.subjects['train']), 'training subject')} "
            f"({plural(len(split.train), 'image')}), {len(split.subjects['val'])} validation ({len(split.val)}), "
            f"{len(split.subjects['test'])} test ({len(split.test)}); "
            "no subject is in two parts.",
            f"- **Budget (both methods)**: {_schedule(config)}"
            + (f"; epochs trained: {trained}" if trained else "")
            + f"; network input {config.model.image_size} px"
            + (f" (S2 and S3 cut from the {config.model.input_size} px image)" if config.model.input_size else "")
            + f", schedule `{t.schedule}`, SAL gate `{config.model.sal_form}` (Eq. 7)"
            + f", precision {training_precision(config)} (PhaNet) and "
            f"{training_precision(baseline_config(config, 'densenet'))} (DenseNet-40). "
            + (
                f"Validation, checkpoints and testing use an exponential moving average of the weights (decay "
                f"{t.ema:g} per step). "
                if t.ema > 0
                else ""
            )
            + "The checkpoint with the best validation FER accuracy is tested.",
            *([f"- **Training**: {_trainings(config, runs)}."] if runs else []),
        ]
    )


def _trainings(config: Config, runs: dict[str, MethodRun]) -> str:
    """Per network: the epochs trained, their wall time (training and validation), what ended the
    training and its precision."""
    methods = {label: method for method, label in METHOD_NAMES.items()}
    parts = []
    for name, run in runs.items():
        network = baseline_config(config, methods[name])
        minutes = run.metrics["seconds"].sum() / 60 if "seconds" in run.metrics else float("nan")
        parts.append(
            f"{name} {plural(len(run.metrics), 'epoch')} in {minutes:.1f} min, ended by {ended_by(run.run_dir)}, "
            f"precision {training_precision(network)}{_processes(run)}"
        )
    return "; ".join(parts)


def _processes(run: MethodRun) -> str:
    """``, 2 processes of 1 thread`` for a data-parallel training, from its stored config; else ``""``."""
    stored = RunFolder(run.run_dir).stored_config()
    if stored is None or not stored.train.strategy.startswith("ddp"):
        return ""
    t = stored.train
    threads = f" of {plural(t.threads, 'thread')}" if t.threads else ""
    return f", {t.devices} processes{threads} with {t.batch_size} faces each per step"


def _weights_on_test(predictions: pd.DataFrame) -> str:
    """c1..c3, λe and λp as the mean ± standard deviation over the test faces (their predictions' columns)."""
    parts = []
    for column, name in (("c1", "c1"), ("c2", "c2"), ("c3", "c3"), ("lambda_e", "λe"), ("lambda_p", "λp")):
        values = predictions[column].dropna() if column in predictions else pd.Series(dtype=float)
        parts.append(f"{name} = {values.mean():.3f} ± {values.std(ddof=0):.3f}" if len(values) else f"{name}: not computed")
    return ", ".join(parts)


def _below_chance(runs: dict[str, MethodRun], faces: LabeledFaces, train_rows: list[int]) -> list[str]:
    """For each method and expression recognised below chance, what the data say of it: what its test
    faces were read as (the confusion matrix) and its share of the training images against the others'."""
    counts = faces.expression_counts(train_rows)
    shares = [count / max(1, sum(counts)) for count in counts]
    lines = []
    for name, run in runs.items():
        classes = run.summary["expression_classes"]
        matrix = np.asarray(run.summary["confusion_expression"], dtype=float)
        for i, expression in enumerate(classes):
            accuracy = run.summary.get("expression_accuracy_per_class", {}).get(expression, math.nan)
            if math.isnan(accuracy) or accuracy >= 1 / len(classes) or expression not in faces.expressions:
                continue
            row, k = matrix[i], faces.expressions.index(expression)
            read_as = [j for j in np.argsort(-row) if j != i and row[j] > 0][:2]
            others = float(np.mean([share for j, share in enumerate(shares) if j != k]))
            lines.append(
                f"- {name} recognises {expression} ({expression_word(expression)}) in {accuracy:.0%} of its "
                f"{int(row.sum())} test faces; it reads them as "
                + " and ".join(f"{classes[j]} ({expression_word(classes[j])}) {row[j] / row.sum():.0%}" for j in read_as)
                + f". {expression} is {shares[k]:.1%} of the training images, each other expression {others:.1%} on "
                f"average ({others / max(shares[k], 1e-9):.1f} times as many)."
            )
    return lines


def run_demo(out: Path, config: Config, progress: bool = True, command: str = "phanet demo") -> Path:
    """Run the demo into ``out``; returns the report's path. Finished parts in ``out`` are reused.

    Besides the report, ``out`` gets the published summary of the run (``summary.json``) and its
    test's per-image table (``predictions.csv.gz``, :mod:`phanet.reports.published`); ``command``
    is the command line the summary names."""
    start, load = time.time(), os.getloadavg()[0]
    out.mkdir(parents=True, exist_ok=True)
    print("[1/4] data: the built-in multi-view dataset", flush=True)
    faces, folder = demo_faces(config, progress)
    split = make_split(faces, config)
    runs: dict[str, MethodRun] = {}
    busy = None
    device = "cuda" if uses_cuda(config.train.accelerator) else "cpu"
    threads = data_parallel_threads(config, device)
    with LoadWatch() as watch:
        for step, method in ((2, "phanet"), (3, "densenet")):
            label, method_config = METHOD_NAMES[method], baseline_config(config, method)
            how = ""
            if threads:
                method_config = data_parallel(method_config, threads)
                batch = method_config.train.batch_size
                how = (
                    f" on every core: {PROCESSES} processes of {plural(threads, 'thread')}, "
                    f"{batch} faces each per step ({PROCESSES * batch} in all);"
                )
            print(f"[{step}/4] training {label}{how} up to {config.train.epochs} epochs", flush=True)
            runs[label] = run_method(method, method_config, faces, split, out, progress, device=device)
    if threads and not all(run.reused for run in runs.values()):
        busy = watch.busy(PROCESSES * threads)
        if busy:  # the training took longer; fixed thread counts and no time limit keep its numbers
            busy += " while the networks trained: they took longer, and their numbers are the same as on an idle machine"
    print("[4/4] report: tables and figures", flush=True)
    test = faces.subset(split.test)
    fig_dir = out / "figures"
    paths = _figures(runs, faces, test, fig_dir)
    tables = out / "tables"
    summaries = {name: run.summary for name, run in runs.items()}
    table1 = write_table(method_table(summaries, FEATURES), tables / "table1_methods", bold_max=["Acc. of pose", "Acc. of FER"])
    table2 = write_table(per_pose_table(summaries), tables / "table2_per_pose", bold_max=[])
    table4 = write_table(
        expression_pose_table(runs["PhaNet"].predictions, faces.expressions, faces.poses), tables / "table4_expression_by_pose"
    )
    landmarks = landmark_table(test)
    coverage = coverage_table(runs["PhaNet"].predictions, landmarks)
    coverage_md = write_table(coverage_by_pose(coverage), tables / "attention_coverage")
    table_expr = write_table(per_expression_table({name: [run] for name, run in runs.items()}), tables / "fer_per_expression")
    report = out / "report.md"
    rel = {k: p.relative_to(out).as_posix() for k, p in paths.items()}
    phanet, dense = runs["PhaNet"].summary, runs["DenseNet-40"].summary
    gain = 100 * (phanet["expression_accuracy"] - dense["expression_accuracy"])
    caps = [
        cap for method, label in (("phanet", "PhaNet"), ("densenet", "DenseNet-40")) if (cap := _cap(runs[label], config, method))
    ]
    codes = expression_legend(faces.expressions)
    weak = _below_chance(runs, faces, split.train)
    lines = [
        "# PhaNet demo report",
        "",
        *[line for cap in caps for line in (f"> **Warning: time limit.** {cap}.", "")],
        _describe(config, faces, folder, split, time.time() - start, [label for label, run in runs.items() if run.reused], runs),
        "",
        f"Expression codes: {codes}." if codes else None,
        "",
        "Accuracies are percentages on the held-out test subjects. The paper's numbers (BU-3DFE, 224 px, "
        "150 epochs on a GPU) are not expected here: this is a small CPU budget on synthetic faces.",
        "",
        "## Methods (Table I)",
        "",
        table1,
        "",
        f"PhaNet − DenseNet-40 FER accuracy: **{gain:+.2f}** points on this run (one seed; "
        "the documentation's results page gives the mean ± std over three folds).",
        "",
        "## FER accuracy per expression",
        "",
        table_expr,
        "",
        "Test faces per expression: "
        + ", ".join(f"{e} {n}" for e, n in zip(faces.expressions, faces.expression_counts(split.test)))
        + ".",
        "",
        *(["Expressions recognised below chance, and what the data say of them:", "", *weak, ""] if weak else []),
        "## FER accuracy per yaw angle (Table II)",
        "",
        table2,
        "",
        "## PhaNet: expression × pose (Table IV layout)",
        "",
        table4,
        "",
        "## Confusion matrices (Fig. 5)",
        "",
        f"![PhaNet expression confusion]({rel['cm_expression']})",
        f"![PhaNet pose confusion]({rel['cm_pose']})" if "cm_pose" in rel else "",
        f"![DenseNet-40 expression confusion]({rel['cm_expression_densenet']})",
        f"![accuracy per pose]({rel['per_pose']})",
        "",
        "## Attended regions (Figs. 8–10)",
        "",
        "Each test image with the S2 (red) and S3 (yellow) squares PhaNet chose, the zoomed S2 and S3 regions "
        "below it. Above each image, its true expression and yaw, then the expression PhaNet predicted: "
        "`AN −45° → SA` is an angry face at −45° read as sad. Then the class activation maps of the three "
        "scales (each scale's classifier weights of its predicted expression over the channels of its last "
        "convolutional map, scaled per image to [0, 1]).",
        "",
        "How often each square holds a visible landmark of the mouth (centre or a corner), an eye or a brow "
        "(the renderer's ground truth, `lm_*` columns of the manifest), % of the test images per yaw:",
        "",
        coverage_md,
        "",
        f"![attended squares]({rel['squares']})",
        f"![attention maps]({rel['maps']})" if "maps" in rel else "",
        "",
        "## Scale attention (Figs. 12–13) and dynamic task weights (Fig. 15)",
        "",
        f"On the test faces (mean ± standard deviation over the faces): {_weights_on_test(runs['PhaNet'].predictions)}.",
        "",
        "Figs. 12 and 13 draw each scale weight's mean per epoch over the training (Fig. 12) or validation "
        "(Fig. 13) faces; the shaded band around it is ± one standard deviation over those faces. "
        "An epoch cut short by the time limit is drawn where it stopped.",
        "",
        f"![scale weights, training]({rel['fig12']})",
        f"![scale weights, validation]({rel['fig13']})",
        f"![task weights]({rel['fig15']})",
        "",
        "## Representations (Fig. 14)",
        "",
        "t-SNE of test samples coloured by expression: (a) PhaNet's joint representation f, re-weighted by "
        "SAL; (b) the same network's scale features concatenated without the SAL weights. (A network trained "
        "without SAL is compared by `phanet ablate`.)",
        "",
        f"![t-SNE]({rel['tsne']})",
        "",
        "## Files",
        "",
        "- `phanet/`, `densenet/`: run folders (config, split, per-epoch metrics.csv, checkpoints, evaluation/).",
        "- `tables/`: every table as Markdown and CSV; `figures/`: every figure as PNG.",
        "",
    ]
    atomic_write_text(report, "\n".join(line for line in lines if line is not None) + "\n")
    device = torch.cuda.get_device_name() if uses_cuda(config.train.accelerator) else "CPU"
    timing: tuple[float | None, float | None] = (None, None) if any(r.reused for r in runs.values()) else (start, load)
    published.publish(
        [(name, None, None, run.run_dir) for name, run in runs.items()],
        "demo",
        out,
        command,
        threads or config.train.threads,
        device,
        *timing,
        synth_settings.GENERATOR_VERSION,
        landmarks,
    )
    print(f"report: {report}")
    print(to_markdown(method_table(summaries, FEATURES)))
    for note in [*caps, *([busy] if busy else [])]:
        warnings.warn(note, PhanetWarning, stacklevel=2)
    return report


def _cap(run: MethodRun, config: Config, method: str) -> str | None:
    """What the time limit did to ``run``, naming the network, or None when it did not bind."""
    folder = RunFolder(run.run_dir)
    cap = time_cap(folder, baseline_config(config, method))
    return cap.replace(str(folder.path), METHOD_NAMES[method], 1) if cap else None
