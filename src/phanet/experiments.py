"""Running the paper's experiments: train a method, evaluate it on held-out subjects, reuse finished runs.

Every experiment command (demo, ablate, crossval) is a list of :func:`run_method` calls into one
output folder, one run folder (:class:`~phanet.training.run_folder.RunFolder`) per method. A
finished run (evaluated) is reused, an interrupted one resumes from its last checkpoint, so a long
experiment can be stopped and started again.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from phanet.config import Config, config_from_dict
from phanet.data.records import LabeledFaces
from phanet.data.splits import Split, subject_folds, subject_split
from phanet.errors import PhanetError
from phanet.evaluation import evaluate
from phanet.inference import TrainedModel
from phanet.runtime import usable_cpus
from phanet.training.run import train
from phanet.training.run_folder import RunFolder

log = logging.getLogger(__name__)


@dataclass
class MethodRun:
    """A trained and evaluated method."""

    name: str
    run_dir: Path
    summary: dict[str, Any]
    predictions: pd.DataFrame
    metrics: pd.DataFrame
    #: True when ``out/name`` already held the finished run and nothing was trained.
    reused: bool = False

    @property
    def checkpoint(self) -> Path:
        return RunFolder(self.run_dir).best


def variant(config: Config, overrides: dict[str, Any]) -> Config:
    """A copy of ``config`` with dotted-key ``overrides`` applied and validated."""
    values = copy.deepcopy(config.to_dict())
    for key, value in overrides.items():
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return config_from_dict(values)


def run_method(
    name: str, config: Config, faces: LabeledFaces, split: Split, out: Path, progress: bool = True, device: str = "cpu"
) -> MethodRun:
    """Train ``config`` on ``split.train`` (validating on ``split.val``) and evaluate the best
    checkpoint on ``split.test``; results in the run folder ``out/name``.

    A folder holding another run (:data:`~phanet.training.run_folder.SAME_RUN`) is refused; one
    holding this run is resumed with ``config``'s budget, and reused once evaluated when that budget
    is the one it was trained with (:data:`~phanet.training.run_folder.BUDGET`)."""
    folder = RunFolder(out / name)
    config = variant(config, {"out": str(folder.path)})
    if folder.holds_files() and folder.config_file.exists():
        difference = folder.difference(config, budget=folder.evaluated())
        if difference is not None:
            advice = (
                "remove its evaluation folder to train it on with these settings"
                if folder.evaluated() and folder.difference(config) is None
                else "remove it"
            )
            raise PhanetError.about(
                "out",
                "{run} holds a run with other settings ({difference}); choose another {out} or {advice}",
                run=folder.path,
                difference=difference,
                advice=advice,
            )
    elif folder.holds_files():
        raise PhanetError.about(
            "out", "{run} holds files but no run (no config.yaml); choose another {out} or remove it", run=folder.path
        )
    reused = folder.evaluated()
    if not reused:
        # An attempt that never finished an epoch is started over by train() itself.
        train(config, resume=folder.finished_an_epoch(), faces=faces, split=split, progress=progress)
        model = TrainedModel.from_checkpoint(folder.best, device)
        summary, predictions = evaluate(model, faces.subset(split.test))
        summary = {
            "method": name,
            "arch": config.model.arch,
            "scales": config.model.scales,
            "joint_sa": config.model.joint_sa,
            "loss_setting": config.loss.setting,
            "test_subjects": split.subjects["test"],
            **summary,
        }
        folder.write_evaluation(summary, predictions)
    summary, predictions = folder.read_evaluation()
    return MethodRun(name, folder.path, summary, predictions, folder.read_metrics(), reused)


#: The processes of each training of the demo on a CPU with several cores (:func:`data_parallel`).
PROCESSES = 2


def data_parallel_threads(config: Config, device: str) -> int | None:
    """The threads of each process when ``phanet demo`` trains each network over every core, as
    :data:`PROCESSES` data-parallel processes, one network after the other: on a CPU with at least two
    usable cores, ``train.threads`` left to adapt (null) and no devices or strategy given, the usable
    cores shared between the processes. A thread count that does not follow the machine's load keeps
    the demo's numbers the same on an idle and on a busy machine (the order of floating-point sums
    depends on it); one-thread processes slow down with the load instead of stalling as threads that
    wait on each other do. None: one process each, as configured (a GPU, one core, or ``train.threads``,
    ``train.devices`` or ``train.strategy`` given)."""
    cores = usable_cpus()
    t = config.train
    if device != "cpu" or t.threads is not None or cores < PROCESSES or str(t.devices) not in ("auto", "1"):
        return None
    if t.strategy != "auto" or t.num_nodes != 1:
        return None
    return cores // PROCESSES


def data_parallel(config: Config, threads: int) -> Config:
    """``config`` trained as :data:`PROCESSES` processes of ``threads`` threads on the CPU, each with
    its share of ``train.batch_size`` (so that a step still sees ``train.batch_size`` faces)."""
    return variant(
        config,
        {
            "train.accelerator": "cpu",
            "train.devices": str(PROCESSES),
            "train.strategy": "ddp_spawn",
            "train.threads": threads,
            "train.batch_size": max(1, config.train.batch_size // PROCESSES),
        },
    )


#: Table VI rows in the paper's order: scales, joint SAL, label.
TABLE6_ROWS = (
    (("N_S1",), False, "N_S1 (No attention)"),
    (("H_S2",), False, "H_S2"),
    (("H_S3",), False, "H_S3"),
    (("N_S1", "H_S2"), False, "N_S1 + H_S2"),
    (("N_S1", "H_S3"), False, "N_S1 + H_S3"),
    (("H_S2", "H_S3"), False, "H_S2 + H_S3"),
    (("N_S1", "H_S2", "H_S3"), False, "N_S1 + H_S2 + H_S3"),
    (("N_S1", "H_S2", "H_S3"), True, "N_S1 + H_S2 + H_S3 + J_SA"),
)

#: Table VIII rows in the paper's order: loss setting (``loss.setting``), label.
TABLE8_ROWS = (
    ("e", "L(e)"),
    ("att_e", "L_att + L(e)"),
    ("p_e", "L(p) + L(e)"),
    ("att_e_p", "L_att + L(e) + L(p)"),
    ("multi", "L_att + λe L(e) + λp L(p) + e^(-12 λp (1-λp))"),
)


def table6_run_name(scales: tuple[str, ...] | list[str], joint_sa: bool) -> str:
    """Run folder of a Table VI row, e.g. ``table6_n_s1_h_s2_jsa``."""
    return "table6_" + "_".join(s.lower() for s in scales) + ("_jsa" if joint_sa else "")


def table8_run_name(setting: str, tables: tuple[str, ...], out: Path) -> str:
    """Run folder of a Table VIII row: its L_Multi row is Table VI's full row (all scales, J_SA),
    trained once, when Table VI is run too or its full row is already in ``out``."""
    full_row = table6_run_name(("N_S1", "H_S2", "H_S3"), True)
    if setting == "multi" and ("6" in tables or (out / full_row).exists()):
        return full_row
    return f"table8_{setting}"


def ablation_row_names(tables: tuple[str, ...], out: Path) -> list[str]:
    """Run folder names of the rows of ``tables`` (``"6"``, ``"8"``), in the order they are trained."""
    names = []
    if "6" in tables:
        names += [table6_run_name(scales, joint_sa) for scales, joint_sa, _ in TABLE6_ROWS]
    if "8" in tables:
        names += [name for name in (table8_run_name(setting, tables, out) for setting, _ in TABLE8_ROWS) if name not in names]
        names.append("fig15_no_factor")
    return names


def ablation_runs(
    config: Config,
    faces: LabeledFaces,
    split: Split,
    out: Path,
    tables: tuple[str, ...],
    progress: bool = True,
    rows: list[str] | None = None,
) -> dict[str, list[tuple[str, MethodRun]]]:
    """Table VI (attention configurations) and/or Table VIII (loss settings): one run per row.

    ``rows`` (run folder names, :func:`ablation_row_names`) trains and evaluates only those rows, so
    that the rows of one table can be spread over several processes, devices or machines sharing
    ``out``; the tables need every row (a run without ``rows`` reuses the finished ones)."""
    known = ablation_row_names(tables, out)
    if rows is not None:
        unknown = [r for r in rows if r not in known]
        if unknown or not rows:
            raise PhanetError.about(
                "rows",
                "unknown row {row} (expected names of {tables} rows: {known})",
                row=repr(unknown[0] if unknown else ""),
                tables=" and ".join(f"Table {'VI' if t == '6' else 'VIII'}" for t in tables),
                known=", ".join(known),
            )
    wanted = set(known if rows is None else rows)
    results: dict[str, list[tuple[str, MethodRun]]] = {}
    if "6" in tables:
        rows6 = []
        for scales, joint_sa, label in TABLE6_ROWS:
            name = table6_run_name(scales, joint_sa)
            if name not in wanted:
                continue
            row_config = variant(config, {"model.scales": list(scales), "model.joint_sa": joint_sa, "loss.setting": "multi"})
            rows6.append((label, run_method(name, row_config, faces, split, out, progress)))
        results["6"] = rows6
    if "8" in tables:
        rows8 = []
        for setting, label in TABLE8_ROWS:
            name = table8_run_name(setting, tables, out)
            if name not in wanted:
                continue
            row_config = variant(
                config, {"loss.setting": setting, "model.scales": ["N_S1", "H_S2", "H_S3"], "model.joint_sa": True}
            )
            rows8.append((label, run_method(name, row_config, faces, split, out, progress)))
        results["8"] = rows8
        # Fig. 15's comparison: L_Multi without the constraint factor, with λ free to leave λe >= λp
        # (only λe + λp = 1 kept), as the paper's collapse of λe needs.
        free = variant(
            config,
            {
                "loss.setting": "multi",
                "loss.constraint_factor": False,
                "model.lambda_form": "free",
                "model.scales": ["N_S1", "H_S2", "H_S3"],
                "model.joint_sa": True,
            },
        )
        results["fig15"] = (
            [("λ free, only λe + λp = 1 kept", run_method("fig15_no_factor", free, faces, split, out, progress))]
            if "fig15_no_factor" in wanted
            else []
        )
    return results


def crossval_runs(
    config: Config,
    faces: LabeledFaces,
    folds: int,
    methods: dict[str, Config],
    out: Path,
    progress: bool = True,
    only: Sequence[int] | None = None,
) -> dict[str, list[MethodRun]]:
    """Subject-independent K-fold: each fold's subjects are tested once; validation subjects come
    from the other folds (``data.split.val``). ``only``: the folds (1..K) to run, the others skipped,
    so that folds can train in separate processes or on separate machines."""
    if only is not None:
        outside = [k for k in only if not 1 <= k <= folds]
        if outside:
            raise PhanetError.about(
                "fold", "no fold {fold} among the {folds} folds (expected numbers 1 to {folds})", fold=outside[0], folds=folds
            )
    results: dict[str, list[MethodRun]] = {name: [] for name in methods}
    for k, (train_idx, test_idx) in enumerate(subject_folds(faces, folds, config.data.split.seed)):
        if only is not None and k + 1 not in only:
            continue
        rest = faces.subset(train_idx)
        inner = subject_split(rest, val=config.data.split.val, test=0, seed=config.data.split.seed + k)
        split = Split(
            train=[train_idx[i] for i in inner.train],
            val=[train_idx[i] for i in inner.val],
            test=list(test_idx),
            subjects={
                "train": inner.subjects["train"],
                "val": inner.subjects["val"],
                "test": sorted({faces.samples[i].subject for i in test_idx}),
            },
        )
        for name, method_config in methods.items():
            results[name].append(run_method(f"fold{k + 1}/{name}", method_config, faces, split, out, progress))
    return results


#: Loss setting each method trains with: PhaNet the full L_Multi, the baselines both tasks' cross-entropy.
METHOD_NAMES = {"phanet": "PhaNet", "densenet": "DenseNet-40", "vgg19": "VGG-19", "hog_fc": "HOG + 2 FC"}


def baseline_config(config: Config, method: str) -> Config:
    """``config`` for ``method`` (phanet, densenet, vgg19, hog_fc), everything else (data, budget) equal."""
    if method not in METHOD_NAMES:
        raise PhanetError.about(
            "methods", "unknown method {method} (expected {known})", method=repr(method), known=", ".join(METHOD_NAMES)
        )
    if method == "phanet":
        return variant(config, {"model.arch": "phanet"})
    return variant(config, {"model.arch": method, "loss.setting": "p_e"})
