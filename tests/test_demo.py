"""A miniature `phanet demo` end to end: rendered data, both methods, the report and its figures."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from phanet.cli import main
from phanet.data.classes import expression_word
from phanet.synth import settings as synth_settings
from phanet.text import plural

MINI = [
    "data.options={preset: bu3dfe, subjects: 6, size: 32}",
    "data.split.val=1",
    "data.split.test=2",
    "model.image_size=32",
    "model.input_size=32",
    "model.backbone.depth=10",
    "model.backbone.growth_rate=6",
    "model.backbone.stem_pool=false",
    "model.attention.grid=2",
    "model.attention.hidden=16",
    "model.sal_hidden=8",
    "model.head_hidden=32",
    "train.epochs=2",
    "train.batch_size=32",
    "train.pan_init.warmup_epochs=1",
    "train.pan_init.steps=2",
    "train.ema=0.5",  # the demo's averaging, over the mini demo's few steps
]


@pytest.mark.slow
def test_the_demo_renders_its_own_data_for_each_generator_version(tmp_path, monkeypatch):
    from phanet.config import load_config
    from phanet.demo import demo_faces

    monkeypatch.setenv("PHANET_CACHE", str(tmp_path / "cache"))
    config = load_config("demo", ["data.options={preset: bu3dfe, subjects: 1, size: 32}"])
    faces, folder = demo_faces(config, progress=False)
    version = synth_settings.GENERATOR_VERSION
    assert folder.name == f"bu3dfe-1s-32px-seed0-v{version}"
    assert json.loads((folder / "synth.json").read_text())["version"] == version
    assert len(faces.samples) == 225 and all((folder / s.path).is_file() for s in faces.samples)
    # a later generator renders into its own folder instead of reusing the earlier version's images
    monkeypatch.setattr(synth_settings, "GENERATOR_VERSION", version + 1)
    again, newer = demo_faces(config, progress=False)
    assert newer == folder.with_name(f"bu3dfe-1s-32px-seed0-v{version + 1}")
    assert json.loads((newer / "synth.json").read_text())["version"] == version + 1
    assert len(again.samples) == 225 and all((newer / s.path).is_file() for s in again.samples)
    assert json.loads((folder / "synth.json").read_text())["version"] == version


@pytest.mark.slow
def test_mini_demo_writes_the_report_tables_and_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PHANET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "3", "--no-progress", *MINI]) == 0
    report = (out / "report.md").read_text()
    assert "Seed**: 3" in report and "preset `bu3dfe`" in report and "6 subjects" in report
    assert "exponential moving average of the weights (decay 0.5 per step)" in report
    assert "> **Warning: time limit.**" not in report  # the cap did not bind
    # Each network over every core of this machine, as two data-parallel processes with a fixed share
    # of them and half the batch each, one network after the other.
    from phanet.runtime import usable_cpus
    from phanet.training.run import training_precision
    from phanet.training.run_folder import RunFolder

    parallel = usable_cpus() >= 2
    printed = capsys.readouterr().out
    for name, folder in (("PhaNet", "phanet"), ("DenseNet-40", "densenet")):
        stored = RunFolder(out / folder).stored_config().train
        if parallel:
            assert f"training {name} on every core: 2 processes of {plural(usable_cpus() // 2, 'thread')}, 16 faces" in printed
            expected = (usable_cpus() // 2, "2", "ddp_spawn", 16)
            assert (stored.threads, stored.devices, stored.strategy, stored.batch_size) == expected
        else:
            assert f"training {name} up to 2 epochs" in printed and stored.strategy == "auto"
    # Per network: its epochs, their wall time from metrics.csv, what ended it, its precision and processes.
    for name, folder in (("PhaNet", "phanet"), ("DenseNet-40", "densenet")):
        precision = training_precision(RunFolder(out / folder).stored_config())
        assert precision in ("bf16-backbones", "32-true") if folder == "phanet" else precision in ("bf16-mixed", "32-true")
        metrics = pd.read_csv(out / folder / "metrics.csv")
        said = f"{name} 2 epochs in {metrics['seconds'].sum() / 60:.1f} min, ended by epoch limit (2), precision {precision}"
        assert len(metrics) == 2 and said in report, said
        processes = f", 2 processes of {plural(usable_cpus() // 2, 'thread')} with 16 faces each per step"
        assert (processes in report) == parallel
    # The codes spelled out; each method's accuracy per expression, and why one is below chance, from the data.
    assert "Expression codes: AN anger, DI disgust, FE fear, HA happiness, NE neutral, SA sadness, SU surprise." in report
    per_expression = pd.read_csv(out / "tables" / "fer_per_expression.csv").set_index("Method")
    for method, column in (("phanet", "PhaNet"), ("densenet", "DenseNet-40")):
        predictions = pd.read_csv(out / method / "evaluation" / "predictions.csv")
        for expression, part in predictions.groupby("true_expression"):
            accuracy = (part["expression"] == expression).mean()
            assert per_expression.loc[column, expression] == pytest.approx(100 * accuracy)
            said = f"- {column} recognises {expression} ({expression_word(expression)}) in {accuracy:.0%} of its {len(part)} test"
            assert (said in report) == (accuracy < 1 / 7), said
    # SAL's weights on the test faces, as the predictions give them; what the figures' bands and titles mean.
    tested = pd.read_csv(out / "phanet" / "evaluation" / "predictions.csv")
    for column in ("c1", "c2", "c3"):
        assert f"{column} = {tested[column].mean():.3f} ± {tested[column].std(ddof=0):.3f}" in report
    assert "the shaded band around it is ± one standard deviation over those faces" in report
    assert "`AN −45° → SA` is an angry face at −45° read as sad" in report
    table1 = pd.read_csv(out / "tables" / "table1_methods.csv")
    assert table1["Methods"].tolist() == ["PhaNet", "DenseNet-40"]
    assert table1["Yaw"].tolist() == ["(-90°, 90°)"] * 2
    for method, column in (("phanet", "PhaNet"), ("densenet", "DenseNet-40")):
        predictions = pd.read_csv(out / method / "evaluation" / "predictions.csv")
        accuracy = 100 * (predictions["expression"] == predictions["true_expression"]).mean()
        assert abs(table1.set_index("Methods").loc[column, "Acc. of FER"] - accuracy) < 1e-6
        assert set(predictions["subject"]) == set(pd.read_json(out / method / "split.json", typ="series")["test"])
    table2 = pd.read_csv(out / "tables" / "table2_per_pose.csv")
    assert table2.columns.tolist() == ["Methods", "-90°", "-60°", "-45°", "-30°", "0°", "30°", "45°", "60°", "90°", "Average"]
    coverage = pd.read_csv(out / "tables" / "attention_coverage.csv").set_index("Region")
    assert coverage.columns.tolist() == table2.columns.tolist()[1:-1] + ["all"]
    # S3's share on the mouth, recomputed from the predictions and the manifest's landmarks
    cache = next((tmp_path / "cache" / "synth").iterdir())
    marks = pd.read_csv(cache / "manifest.csv").set_index("path")
    predictions = pd.read_csv(out / "phanet" / "evaluation" / "predictions.csv")
    inside = pd.Series(False, index=predictions.index)
    for point in ("mouth", "mouth_left", "mouth_right"):
        lm = marks.loc[predictions["path"], [f"lm_{point}_x", f"lm_{point}_y", f"lm_{point}_vis"]].to_numpy()
        inside |= (
            (abs(lm[:, 0] - predictions["s3_x"]) <= predictions["s3_l"])
            & (abs(lm[:, 1] - predictions["s3_y"]) <= predictions["s3_l"])
            & (lm[:, 2] == 1)
        )
    assert coverage.loc["S3 square on mouth", "all"] == pytest.approx(100 * inside.mean(), abs=0.01)
    # the training targets read the same run: the report's accuracies and coverage, the scale weights
    # of the predictions, S1's last loss against the training labels' prior
    from phanet.analysis import targets

    assert targets.experiment_folds(out) == [("demo", out / "phanet", out / "densenet")]
    assert targets.experiment_folds(out / "phanet") == [("demo/phanet", out / "phanet", None)]
    folds = targets.fold_table(targets.experiment_folds(out))
    row = folds.loc["demo"]
    assert targets.fold_summary(folds).columns.tolist() == ["demo"]  # one run: no mean and std
    assert targets.fold_summary(folds).index.tolist() == list(targets.SHOWN)
    squares = Image.open(targets.squares_figure(targets.experiment_folds(out), tmp_path / "squares.png"))
    assert squares.size[0] > 100 and squares.size[1] > 100
    alone = targets.fold_row("alone", out / "phanet", None)  # a single run: no DenseNet-40 columns
    assert "FER gain" not in alone and alone["c2 std"] == pytest.approx(predictions["c2"].std())
    table1 = table1.set_index("Methods")
    assert row["PhaNet FER"] == pytest.approx(table1.loc["PhaNet", "Acc. of FER"], abs=1e-6)
    assert row["FER gain"] == pytest.approx(
        table1.loc["PhaNet", "Acc. of FER"] - table1.loc["DenseNet-40", "Acc. of FER"], abs=1e-6
    )
    assert row["S3 on region %"] == pytest.approx(coverage.loc["S3 square on mouth, eye or brow", "all"], abs=0.01)
    assert row["S3 worst yaw %"] == pytest.approx(coverage.loc["S3 square on mouth, eye or brow"].drop("all").min(), abs=0.01)
    assert row["c2 std"] == pytest.approx(predictions["c2"].std())
    # 6 subjects x (6 expressions x 4 intensities + 1 neutral) x 9 yaws: neutral is 1 in 25 of the labels
    prior = -(24 / 25 * math.log(4 / 25) + 1 / 25 * math.log(1 / 25))
    assert row["prior entropy"] == pytest.approx(prior)
    metrics = pd.read_csv(out / "phanet" / "metrics.csv")
    assert row["S1 below prior %"] == pytest.approx(100 * (1 - metrics["train/scale1"].iloc[-1] / prior))
    assert "How often each square holds" in report
    # The published summary: written by the run, every number given back by its per-image table,
    # rendered into the tables of the results page; `phanet docs --add` publishes it.
    from phanet.reports import published, results_pages

    summary = published.read(out / "summary.json")
    table = published.read_predictions(out / "summary.json")
    assert summary["kind"] == "demo" and summary["command"].startswith("phanet demo")
    threads = usable_cpus() // 2 if usable_cpus() >= 2 else "adaptive"  # side by side: a fixed share each
    assert summary["threads"] == threads and summary["minutes"] > 0
    assert summary["generator_version"] == synth_settings.GENERATOR_VERSION
    assert [run["name"] for run in summary["runs"]] == ["PhaNet", "DenseNet-40"]
    assert len(table) == 2 * len(predictions) and published.check_predictions(summary, table) == []
    phanet_run = summary["runs"][0]
    assert phanet_run["evaluation"]["expression_accuracy"] == pytest.approx(table1.loc["PhaNet", "Acc. of FER"] / 100)
    assert phanet_run["scale_weights"]["std"][1] == pytest.approx(predictions["c2"].std(), abs=1e-5)
    assert phanet_run["coverage"]["S3 square on mouth"]["all"] == pytest.approx(
        coverage.loc["S3 square on mouth", "all"] / 100, abs=1e-4
    )
    page = results_pages.render(summary)
    assert "**Table I — methods" in page and f"{table1.loc['PhaNet', 'Acc. of FER']:.2f}" in page
    docs = tmp_path / "docs"
    assert main(["docs", "--docs", str(docs), "--add", str(out), "--as", "mini"]) == 0
    assert (docs / "results" / "mini.md").read_text() == page.replace("summary_predictions", "mini_predictions")
    assert (docs / "results" / "mini_predictions.csv.gz").stat().st_size < 200_000
    # A number edited in the summary is no longer what its table gives.
    edited = {
        **summary,
        "runs": [{**phanet_run, "evaluation": {**phanet_run["evaluation"], "expression_accuracy": 0.5}}, *summary["runs"][1:]],
    }
    assert any("expression_accuracy" in problem for problem in published.check_predictions(edited, table))
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(linked) >= 10
    for path in linked:
        image = Image.open(out / path)
        assert image.size[0] > 100 and image.size[1] > 100
    # a second run reuses the finished runs and the cached data
    assert main(["demo", "--out", str(out), "--seed", "3", "--no-progress", *MINI]) == 0
    assert len(list((tmp_path / "cache" / "synth").iterdir())) == 1
    capsys.readouterr()


@pytest.mark.slow
def test_a_demo_whose_time_limit_binds_says_so_at_the_end_and_atop_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PHANET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    capped = [*MINI, "train.epochs=200", "train.max_minutes=0.05", "train.batch_size=8"]
    assert main(["demo", "--out", str(out), "--no-progress", *capped]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    report = (out / "report.md").read_text().splitlines()
    for name, folder in (("PhaNet", "phanet"), ("DenseNet-40", "densenet")):
        metrics = pd.read_csv(out / folder / "metrics.csv")
        assert len(metrics) < 200
        warning = next(line for line in report if line.startswith(f"> **Warning: time limit.** {name} stopped at its time limit"))
        assert "train.max_minutes 0.05" in warning and "of 200" in warning
        assert report.index(warning) < 5
        trained = f"{name} {len(metrics)} epoch{'s' if len(metrics) > 1 else ''} in "
        assert trained in "".join(report) and "ended by time cap (0.05 min)" in "".join(report)
    # the warnings come last, after everything else the demo printed (a note on a busy machine may follow them)
    last = list(itertools.takewhile(lambda line: line.startswith("phanet: warning: "), reversed(err)))
    for name in ("PhaNet", "DenseNet-40"):
        cap = f"phanet: warning: {name} stopped at its time limit, train.max_minutes 0.05, "
        assert any(line.startswith(cap) for line in last)


def test_training_targets_are_checked_over_every_fold():
    """A target is met only when every fold meets it (the FER gain's average only on average); the summary
    shows each fold's measurements with their mean and std."""
    from phanet.analysis.targets import check, fold_summary

    folds = pd.DataFrame(
        {
            "PhaNet pose": [97.5, 98.0],
            "pose gap": [0.5, 1.6],
            "FER gain": [12.0, -1.0],
            "S1 below prior %": [30.0, 25.0],
            "S3 worst yaw %": [90.0, 95.0],
            "c1 std": [0.03, 0.03],
            "c2 std": [0.03, 0.021],
            "c3 std": [0.05, 0.04],
            "c1 pinned": [False, False],
            "c2 pinned": [False, True],
            "c3 pinned": [False, False],
        }
    )
    met = {target: ok for target, ok, _ in check(folds)}
    assert met == {
        "every c: test std > 0.02, pinned at neither 0.5 nor 1": False,  # c2 pinned in the second fold
        "S1's expression loss >= 25 % below the prior entropy": True,
        "PhaNet pose >= 97 %": True,
        "S3 on mouth, eye or brow >= 90 % at every yaw": True,
        "PhaNet pose within 1.5 points of DenseNet-40": False,
        "PhaNet FER above DenseNet-40 in every fold": False,
        "... by >= 5 points on average": True,  # (12 - 1) / 2 = 5.5
    }
    folds["c2 pinned"] = False
    assert check(folds)[0][1] and check(folds)[0][2] == "smallest std 0.021"
    summary = fold_summary(folds)
    assert summary.index.tolist() == [
        "FER gain",
        "PhaNet pose",
        "pose gap",
        "c1 std",
        "c2 std",
        "c3 std",
        "S1 below prior %",
        "S3 worst yaw %",
    ]
    assert summary.columns.tolist() == [0, 1, "mean", "std"]
    assert summary.loc["FER gain", "mean"] == pytest.approx(5.5)
    assert summary.loc["pose gap", "std"] == pytest.approx(math.sqrt(2 * 0.55**2))
    # a loss without L_att (Table VIII's L(e), L(p) + L(e)) logs no S1 loss: a run without it cannot
    # meet the target, and runs that all lack it leave the target out
    s1 = "S1's expression loss >= 25 % below the prior entropy"
    folds["S1 below prior %"] = [30.0, math.nan]
    verdict = {target: (ok, said) for target, ok, said in check(folds)}
    assert verdict[s1] == (False, "30.0 % at worst (1 run(s) without L_att)")
    folds["S1 below prior %"] = math.nan
    assert s1 not in {target for target, _, _ in check(folds)}


def test_validation_curves_read_best_epoch_and_swing_from_hand_made_runs(tmp_path):
    """``phanet.analysis.curves``: best epoch, last values and the pose swing per fold and method, their
    mean per experiment and method, the curves drawn."""
    from phanet.analysis import curves

    def write(folder: Path, fer: list[float], pose: list[float]) -> None:
        folder.mkdir(parents=True)
        pd.DataFrame({"epoch": range(len(fer)), "val/expression_acc": fer, "val/pose_acc": pose}).to_csv(
            folder / "metrics.csv", index=False
        )

    write(tmp_path / "a" / "fold1" / "phanet", [0.2, 0.5, 0.4, 0.45], [0.5, 0.9, 0.7, 0.8])
    write(tmp_path / "a" / "fold1" / "densenet", [0.1, 0.3], [0.6, 0.6])
    write(tmp_path / "a" / "fold2" / "phanet", [0.3, 0.6], [0.8, 0.85])
    write(tmp_path / "b" / "phanet", [0.25], [0.5])
    runs = curves.method_runs([tmp_path / "a", tmp_path / "b"], ["A", "B"])
    table = curves.curve_rows(runs, last=3)
    assert table[["experiment", "fold", "method"]].values.tolist() == [
        ["A", 1, "phanet"],
        ["A", 1, "densenet"],
        ["A", 2, "phanet"],
        ["B", 1, "phanet"],
    ]
    first = table.iloc[0]
    assert (first["best epoch"], first["epochs"]) == (2, 4)
    assert first["best val FER"] == pytest.approx(50.0) and first["val pose at best"] == pytest.approx(90.0)
    assert first["last val pose"] == pytest.approx(80.0)
    assert first["pose swing"] == pytest.approx((20 + 10) / 2)  # 90 -> 70 -> 80
    assert first["FER swing"] == pytest.approx((10 + 5) / 2)
    assert table.iloc[1]["pose swing"] == 0 and np.isnan(table.iloc[3]["pose swing"])
    means = curves.experiment_means(table)
    assert means.index.tolist() == [("A", "phanet"), ("A", "densenet"), ("B", "phanet")]
    assert means.loc[("A", "phanet"), "best val FER"] == pytest.approx((50.0 + 60.0) / 2)
    assert curves.curves_figure(runs, ["A", "B"], tmp_path / "curves.png").stat().st_size > 10_000


def test_the_demo_trains_each_network_over_every_core_of_a_cpu_with_a_thread_count_left_to_adapt(monkeypatch):
    import phanet.experiments
    from phanet.config import load_config

    monkeypatch.setattr(phanet.experiments, "usable_cpus", lambda: 2)
    config = load_config("demo", [])
    assert config.train.threads is None and config.train.max_minutes is None  # no cap that binds only under load
    assert phanet.experiments.data_parallel_threads(config, "cpu") == 1
    parallel = phanet.experiments.data_parallel(config, 1).train
    assert (parallel.accelerator, parallel.devices, parallel.strategy, parallel.threads) == ("cpu", "2", "ddp_spawn", 1)
    assert parallel.batch_size == 16  # two halves of the demo's 32: a step still sees 32 faces
    monkeypatch.setattr(phanet.experiments, "usable_cpus", lambda: 16)
    assert phanet.experiments.data_parallel_threads(config, "cpu") == 8
    assert phanet.experiments.data_parallel_threads(config, "cuda") is None
    for given in ("train.threads=2", "train.devices=1", "train.devices=3", "train.strategy=ddp"):
        expected = 8 if given == "train.devices=1" else None
        assert phanet.experiments.data_parallel_threads(load_config("demo", [given]), "cpu") == expected, given
    monkeypatch.setattr(phanet.experiments, "usable_cpus", lambda: 1)
    assert phanet.experiments.data_parallel_threads(config, "cpu") is None


def test_the_demo_says_when_other_processes_kept_the_cores_busy(monkeypatch):
    import phanet.runtime
    from phanet.runtime import LoadWatch

    loads = iter([3.0, 4.0, 5.0])
    monkeypatch.setattr(phanet.runtime.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    monkeypatch.setattr(phanet.runtime, "usable_cpus", lambda: 2)
    with LoadWatch(every=3600) as watch:  # sampled once, at the end
        pass
    assert watch.samples == [3.0] and watch.others(2) == 1.0 and watch.others(4) == 0.0
    assert watch.busy(2) == "other processes kept about 1.0 of the 2 cores busy (load 3.0, 2 of it this run's)"
    watch.samples = [2.3, 2.4]  # less than half a core besides the demo's own two threads
    assert watch.busy(2) is None
