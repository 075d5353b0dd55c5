"""The experiment commands' plumbing: ablate, crossval, crossdata.

Training is replaced by a stub that writes a run folder as a training would (config, split, classes,
metrics, an untrained network's checkpoints), so these tests check in seconds which runs are made,
with which settings, on which subjects, what is reused, and the tables and figures written from them.
Evaluation, run-folder handling and the reports are the real ones; a real training end to end is
the demo test's (tests/test_demo.py).
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from conftest import TINY
from phanet import experiments
from phanet.cli import main
from phanet.config import Config
from phanet.data.records import LabeledFaces
from phanet.data.splits import Split
from phanet.reports import summaries
from phanet.training.module import PhaNetModule
from phanet.training.run import TrainResult
from phanet.training.run_folder import RunFolder

TABLE6_RUNS = [
    "table6_n_s1",
    "table6_h_s2",
    "table6_h_s3",
    "table6_n_s1_h_s2",
    "table6_n_s1_h_s3",
    "table6_h_s2_h_s3",
    "table6_n_s1_h_s2_h_s3",
    "table6_n_s1_h_s2_h_s3_jsa",
]
TABLE8_RUNS = ["table8_e", "table8_att_e", "table8_p_e", "table8_att_e_p"]


def _tiny(manifest, *extra):
    return ["data.dataset=manifest", f"data.root={manifest}", "data.options={}", *TINY, "train.epochs=1", *extra]


def _save_untrained(config: Config, faces: LabeledFaces, path, epoch: int) -> None:
    torch.manual_seed(config.seed)
    module = PhaNetModule(config.to_dict(), faces.expressions, faces.poses)
    payload = {
        "epoch": epoch,
        "state_dict": module.state_dict(),
        "hyper_parameters": {"config": config.to_dict(), "expressions": faces.expressions, "poses": faces.poses},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


@pytest.fixture
def trainings(monkeypatch) -> list[tuple[str, Config, bool, Split]]:
    """Replaces :func:`phanet.training.run.train` by a stub, and Fig. 14's t-SNE by the first two
    feature dimensions (the demo test runs both); lists (run folder as ``parent/name``, config,
    resume, split) of every training."""
    calls: list[tuple[str, Config, bool, Split]] = []

    def train(
        config: Config, resume: bool = False, faces: LabeledFaces | None = None, split: Split | None = None, progress: bool = True
    ) -> TrainResult:
        folder = RunFolder(config.out)
        calls.append((f"{folder.path.parent.name}/{folder.path.name}", config, resume, split))
        folder.write_start(config, split.subjects, faces.name, faces.expressions, faces.poses)
        epochs = config.train.epochs
        pd.DataFrame(
            {
                "epoch": range(epochs),
                "step": range(1, epochs + 1),
                "train/loss": 1.0,
                "train/lambda_e": 0.6,
                "train/lambda_p": 0.4,
                "train/c1": 0.5,
                "train/c2": 0.5,
                "train/c3": 0.5,
                "train/expression_acc": 0.3,
                "val/expression_acc": 0.25,
                "val/pose_acc": 0.5,
                "lr": 0.001,
            }
        ).to_csv(folder.metrics_file, index=False)
        _save_untrained(config, faces, folder.best, epochs - 1)
        _save_untrained(config, faces, folder.last, epochs - 1)
        return TrainResult(folder.path, folder.best, folder.last, folder.metrics_file, 0.25)

    monkeypatch.setattr(experiments, "train", train)
    monkeypatch.setattr(summaries, "tsne", lambda features: features[:, :2])
    return calls


@pytest.mark.slow
def test_ablate_trains_each_row_with_its_settings_and_reuses_finished_rows(trainings, tiny_manifest, tmp_path, capsys):
    out = tmp_path / "ablate"
    args = ["ablate", "--config", "demo", *_tiny(tiny_manifest), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    # One run per row; Table VIII's L_Multi row is Table VI's full row, trained once.
    assert [name.split("/")[-1] for name, *_ in trainings] == TABLE6_RUNS + TABLE8_RUNS + ["fig15_no_factor"]
    settings = {
        name.split("/")[-1]: (c.model.scales, c.model.joint_sa, c.loss.setting, c.loss.constraint_factor, c.model.lambda_form)
        for name, c, *_ in trainings
    }
    assert settings["table6_h_s2_h_s3"] == (["H_S2", "H_S3"], False, "multi", True, "bounded")
    assert settings["table6_n_s1_h_s2_h_s3_jsa"] == (["N_S1", "H_S2", "H_S3"], True, "multi", True, "bounded")
    assert settings["table8_att_e"] == (["N_S1", "H_S2", "H_S3"], True, "att_e", True, "bounded")
    assert settings["fig15_no_factor"] == (["N_S1", "H_S2", "H_S3"], True, "multi", False, "free")
    assert not any(resume for _, _, resume, _ in trainings)
    free = json.loads((out / "fig15_no_factor" / "evaluation" / "evaluation.json").read_text())
    assert free["loss_setting"] == "multi" and "lambda_form: free" in (out / "fig15_no_factor" / "config.yaml").read_text()
    row = json.loads((out / "table6_h_s2_h_s3" / "evaluation" / "evaluation.json").read_text())
    assert row["scales"] == ["H_S2", "H_S3"] and row["joint_sa"] is False

    table6 = pd.read_csv(out / "table6.csv")
    assert table6["Different attention"].tolist() == [
        "N_S1 (No attention)",
        "H_S2",
        "H_S3",
        "N_S1 + H_S2",
        "N_S1 + H_S3",
        "H_S2 + H_S3",
        "N_S1 + H_S2 + H_S3",
        "N_S1 + H_S2 + H_S3 + J_SA",
    ]
    for name, measured in zip(TABLE6_RUNS, table6.iloc[:, 1]):
        summary = json.loads((out / name / "evaluation" / "evaluation.json").read_text())
        predictions = pd.read_csv(out / name / "evaluation" / "predictions.csv", dtype=str)
        assert summary["expression_accuracy"] == pytest.approx(
            (predictions["expression"] == predictions["true_expression"]).mean()
        )
        assert measured == pytest.approx(100 * summary["expression_accuracy"], abs=0.005)
    table8 = pd.read_csv(out / "table8.csv")
    assert table8["Different loss"].tolist()[:4] == ["L(e)", "L_att + L(e)", "L(p) + L(e)", "L_att + L(e) + L(p)"]
    assert table8["Acc. on Pose"].isna().tolist() == [True, True, False, False, False]
    full = json.loads((out / "table6_n_s1_h_s2_h_s3_jsa" / "evaluation" / "evaluation.json").read_text())
    assert table8["Acc. on Exp."].iloc[-1] == pytest.approx(100 * full["expression_accuracy"], abs=0.005)
    report = (out / "report.md").read_text()
    assert "Table VI" in report and "Table VIII" in report and "Fig. 15" in report and "Fig. 14" in report
    for figure in ("fig15_task_weights.png", "fig14_tsne.png"):
        assert (out / figure).stat().st_size > 10_000
    # The published summary of the rows, its numbers given back by its per-image table.
    from phanet.reports import published, results_pages

    ablation = published.read(out / "summary.json")
    assert ablation["kind"] == "ablation" and ablation["command"].startswith("phanet ablate")
    assert sorted({run["table"] for run in ablation["runs"]}) == ["6", "8", "fig15"] and len(ablation["runs"]) == 14
    assert published.check_predictions(ablation, published.read_predictions(out / "summary.json")) == []
    page = results_pages.render(ablation)
    assert "**Table VI — attention configurations" in page and "**Table VIII — loss settings" in page

    # Run again: every row is reused, nothing is trained or evaluated again.
    stamp = (out / "table8_e" / "evaluation" / "evaluation.json").stat().st_mtime_ns
    trainings.clear()
    assert main([*args, "--table", "8"]) == 0
    assert trainings == []
    assert (out / "table8_e" / "evaluation" / "evaluation.json").stat().st_mtime_ns == stamp
    # A row interrupted after its first epoch resumes; the others stay reused.
    (out / "table8_e" / "evaluation" / "evaluation.json").unlink()
    assert main([*args, "--table", "8"]) == 0
    assert [(name.split("/")[-1], resume) for name, _, resume, _ in trainings] == [("table8_e", True)]
    capsys.readouterr()


@pytest.mark.slow
def test_ablate_refuses_a_folder_holding_other_runs(trainings, tiny_manifest, tmp_path, capsys):
    out = tmp_path / "ablate"
    args = ["ablate", "--config", "demo", *_tiny(tiny_manifest), "--out", str(out), "--table", "6", "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    trainings.clear()
    # Another network: not this experiment's runs.
    assert main([*args, "model.sal_hidden=4"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"phanet ablate: error: --out: {out / 'table6_n_s1'} holds a run with other settings (model.sal_hidden "
        "(8 in the run, 4 now)); choose another --out or remove it"
    )
    # The same runs with another budget: a finished row is not reported under a budget it did not have.
    assert main([*args, "train.epochs=2"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"phanet ablate: error: --out: {out / 'table6_n_s1'} holds a run with other settings (train.epochs "
        "(1 in the run, 2 now)); choose another --out or remove its evaluation folder to train it on with these "
        "settings"
    )
    assert trainings == []
    # A row that early stopping ended (plateau schedule) is the same finished run under the raised limit.
    last = out / "table6_n_s1" / "checkpoints" / "last.ckpt"
    payload = torch.load(last, weights_only=True)
    payload["callbacks"] = {"EarlyStopping{'monitor': 'val/expression_acc'}": {"wait_count": 4}}
    torch.save(payload, last)
    assert main([*args, "--rows", "table6_n_s1", "train.epochs=2"]) == 0 and trainings == []
    capsys.readouterr()
    payload["callbacks"] = {}
    torch.save(payload, last)
    # Without its evaluation the row is continued with the new budget (train() resumes it).
    (out / "table6_n_s1" / "evaluation" / "evaluation.json").unlink()
    assert main([*args, "train.epochs=2"]) == 2  # the next row is still finished with the old budget
    assert [(name.split("/")[-1], c.train.epochs, resume) for name, c, resume, _ in trainings] == [("table6_n_s1", 2, True)]
    capsys.readouterr()


@pytest.mark.slow
def test_ablate_rows_trains_only_the_rows_named_and_the_tables_come_from_a_run_without(
    trainings, tiny_manifest, tmp_path, capsys
):
    out = tmp_path / "ablate"
    args = ["ablate", "--config", "demo", *_tiny(tiny_manifest), "--out", str(out), "--table", "6", "--no-progress"]
    # Named in any order, trained in the table's order; nothing else is trained and no table is written.
    assert main([*args, "--rows", "table6_h_s2_h_s3, table6_n_s1"]) == 0
    assert [name.split("/")[-1] for name, *_ in trainings] == ["table6_n_s1", "table6_h_s2_h_s3"]
    printed = capsys.readouterr().out.splitlines()
    fer = {
        name: 100 * json.loads((out / name / "evaluation" / "evaluation.json").read_text())["expression_accuracy"]
        for name in ("table6_n_s1", "table6_h_s2_h_s3")
    }
    assert printed[0].startswith(f"table6_n_s1 (N_S1 (No attention)): FER {fer['table6_n_s1']:.2f} %, pose ")
    assert printed[1].startswith(f"table6_h_s2_h_s3 (H_S2 + H_S3): FER {fer['table6_h_s2_h_s3']:.2f} %, pose ")
    assert printed[0].endswith("; tested epoch 1 of 1, training FER then 30.0 %; ended by epoch limit (1)")
    assert len(printed) == 3 and not (out / "table6.csv").exists() and not (out / "report.md").exists()
    # Without --rows: the two finished rows are reused, the six others trained, the table written.
    trainings.clear()
    assert main(args) == 0
    assert [name.split("/")[-1] for name, *_ in trainings] == [
        n for n in TABLE6_RUNS if n not in ("table6_n_s1", "table6_h_s2_h_s3")
    ]
    assert pd.read_csv(out / "table6.csv").iloc[0, 1] == pytest.approx(fer["table6_n_s1"], abs=0.005)
    assert set(pd.read_csv(out / "table6.csv")["Ended by"]) == {"epoch limit (1)"}
    # Table VIII's rows, and a name that is no row of the table chosen, are refused before any training.
    trainings.clear()
    capsys.readouterr()
    assert main([*args, "--rows", "table8_e"]) == 2
    assert capsys.readouterr().err.strip() == (
        "phanet ablate: error: --rows: unknown row 'table8_e' (expected names of Table VI rows: " + ", ".join(TABLE6_RUNS) + ")"
    )
    assert trainings == []
    # Both tables: the full row, shared by them, is listed once; L(e) has no pose accuracy.
    both = [a if a != "6" else "all" for a in args]
    assert main([*both, "--rows", "table8_e,table6_n_s1_h_s2_h_s3_jsa"]) == 0
    assert [name.split("/")[-1] for name, *_ in trainings] == ["table8_e"]
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in printed[:2]] == ["table6_n_s1_h_s2_h_s3_jsa", "table8_e"]
    assert ", pose " in printed[0] and ", pose " not in printed[1] and len(printed) == 3


@pytest.mark.slow
def test_crossval_tests_every_subject_exactly_once(trainings, tiny_manifest, tmp_path, capsys):
    out = tmp_path / "cv"
    args = [
        "crossval",
        "--config",
        "demo",
        *_tiny(tiny_manifest, "data.split.val=1"),
        "--folds",
        "4",
        "--methods",
        "phanet,densenet",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    assert [name for name, *_ in trainings] == [f"fold{k}/{method}" for k in range(1, 5) for method in ("phanet", "densenet")]
    assert [(c.model.arch, c.loss.setting) for _, c, *_ in trainings[:2]] == [("phanet", "multi"), ("densenet", "p_e")]
    tested = []
    for k in range(1, 5):
        splits = [split for name, _, _, split in trainings if name.startswith(f"fold{k}/")]
        assert splits[0] == splits[1]  # both methods of a fold see the same subjects
        summary = json.loads((out / f"fold{k}" / "phanet" / "evaluation" / "evaluation.json").read_text())
        split = json.loads((out / f"fold{k}" / "phanet" / "split.json").read_text())
        assert len(summary["test_subjects"]) == 2 and len(split["val"]) == 1 and len(split["train"]) == 5
        assert not set(split["train"]) & set(summary["test_subjects"])
        assert not set(split["val"]) & set(summary["test_subjects"]) and not set(split["train"]) & set(split["val"])
        predictions = pd.read_csv(out / f"fold{k}" / "phanet" / "evaluation" / "predictions.csv", dtype=str)
        assert sorted(set(predictions["subject"])) == sorted(summary["test_subjects"]) and len(predictions) == 48
        tested += summary["test_subjects"]
    assert sorted(tested) == [f"s{i:02d}" for i in range(8)]
    summary = pd.read_csv(out / "summary.csv")
    assert summary["Method"].tolist() == ["phanet", "densenet"] and (summary["Folds"] == 4).all()
    folds = pd.read_csv(out / "folds.csv")
    accuracies = [
        100 * json.loads((out / f"fold{k}" / "phanet" / "evaluation" / "evaluation.json").read_text())["expression_accuracy"]
        for k in range(1, 5)
    ]
    assert folds[folds["Method"] == "phanet"]["Acc. of FER"].tolist() == pytest.approx(accuracies, abs=0.005)
    mean, std = (float(v) for v in summary["Acc. of FER (mean ± std)"].iloc[0].split(" ± "))
    assert mean == pytest.approx(sum(accuracies) / 4, abs=0.01)
    assert std == pytest.approx(pd.Series(accuracies).std(ddof=1), abs=0.01)  # the sample standard deviation
    table5 = pd.read_csv(out / "table5.csv")
    assert table5["Method"].tolist() == ["phanet", "densenet"] and table5["Average"].iloc[0] == pytest.approx(mean, abs=0.01)
    trainings.clear()
    assert main(args) == 0 and trainings == []  # every fold reused
    capsys.readouterr()


@pytest.mark.slow
def test_crossval_folds_train_apart_and_a_run_without_fold_writes_the_tables(trainings, tiny_manifest, tmp_path, capsys):
    out = tmp_path / "cv"
    args = [
        "crossval",
        "--config",
        "demo",
        *_tiny(tiny_manifest, "data.split.val=1"),
        "--folds",
        "4",
        "--methods",
        "phanet,densenet",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main([*args, "--fold", "3"]) == 0
    assert [name for name, *_ in trainings] == ["fold3/phanet", "fold3/densenet"]
    assert "fold 3 of 4 done" in capsys.readouterr().out and not (out / "summary.csv").exists()
    assert main([*args, "--fold", "4,1,2"]) == 0
    assert [name for name, *_ in trainings[2:]] == [f"fold{k}/{m}" for k in (1, 2, 4) for m in ("phanet", "densenet")]
    # Folds trained by separate runs still test every subject exactly once.
    tested = [s for _, _, _, split in trainings[::2] for s in split.subjects["test"]]
    assert sorted(tested) == [f"s{i:02d}" for i in range(8)]
    trainings.clear()
    assert main(args) == 0 and trainings == []  # every fold reused, the tables written
    assert pd.read_csv(out / "summary.csv")["Folds"].tolist() == [4, 4]
    from phanet.reports import published, results_pages

    folds = published.read(out / "summary.json")
    assert [(run["name"], run["fold"]) for run in folds["runs"]] == [
        (name, k) for name in ("PhaNet", "DenseNet-40") for k in (1, 2, 3, 4)
    ]
    assert published.check_predictions(folds, published.read_predictions(out / "summary.json")) == []
    assert "**Mean ± standard deviation over the folds**" in results_pages.render(folds)
    capsys.readouterr()
    assert main([*args, "--fold", "5"]) == 2
    assert capsys.readouterr().err.strip() == (
        "phanet crossval: error: --fold: no fold 5 among the 4 folds (expected numbers 1 to 4)"
    )


def test_crossdata_maps_classes_and_reports_the_unmatched(tiny_manifest, tmp_path, capsys):
    from phanet.config import load_config
    from phanet.data.registry import load_dataset

    run = RunFolder(tmp_path / "run")
    config = load_config("demo", _tiny(tiny_manifest, f"out={run.path}"))
    _save_untrained(config, load_dataset("manifest", str(tiny_manifest)), run.best, 0)
    table = pd.read_csv(tiny_manifest)
    renamed = {"AN": "Angry", "HA": "Happy", "NE": "Neutral", "SU": "Scream"}
    table["expression"] = table["expression"].map(renamed)
    table["path"] = [str(tiny_manifest.parent / p) for p in table["path"]]
    other = tmp_path / "other.csv"
    table.to_csv(other, index=False)
    out = tmp_path / "cross"
    assert main(["crossdata", "--checkpoint", str(run.best), "--data", str(other), "--out", str(out)]) == 0
    # Without --name, the method is named after its run folder.
    result = json.loads((out / "run" / "evaluation.json").read_text())
    assert result["mapping"] == {"Angry": "AN", "Happy": "HA", "Neutral": "NE"}
    assert result["unmatched_expressions"] == {"Scream": 48}
    predictions = pd.read_csv(out / "run" / "predictions.csv")
    scored = predictions[predictions["true_expression"] != "Scream"]
    expected = (scored["expression"] == scored["true_expression"].map({v: k for k, v in renamed.items()})).mean()
    assert abs(result["expression_accuracy"] - expected) < 1e-9 and not math.isnan(expected)
    table9 = pd.read_csv(out / "table9.csv")
    assert table9.iloc[0]["Methods"] == "run" and table9.iloc[0]["Images scored"] == 144
    assert "Scream (48)" in table9.iloc[0]["Left out (no counterpart)"]
    capsys.readouterr()


def test_a_run_written_before_chance_margin_counted_patience_from_the_first_epoch(tmp_path):
    import yaml

    from phanet.config import Config, read_yaml

    folder = RunFolder(tmp_path / "old")
    folder.write_start(Config(), {"train": [], "val": [], "test": []}, "synth", ["HA"], [])
    values = read_yaml(folder.config_file)
    assert values["train"].pop("chance_margin") == 0.05
    folder.config_file.write_text(yaml.safe_dump(values))
    assert folder.stored_config().train.chance_margin is None
    assert folder.difference(Config()) is None  # the same run, which may be resumed, but not reused as finished
    assert folder.difference(Config(), budget=True) == "train.chance_margin (None in the run, 0.05 now)"


@pytest.mark.slow
def test_a_data_parallel_training_gives_the_same_numbers_alone_and_beside_a_busy_process(tiny_manifest, tmp_path):
    """Two processes of one thread each, as the demo trains on a CPU, end where they end with another
    process spinning beside them: the same test rows to the last digit."""
    import multiprocessing

    from phanet.config import load_config
    from phanet.data.datasets import load_faces, make_split
    from phanet.experiments import baseline_config, data_parallel, run_method

    config = load_config(
        "demo", [f"data.root={tiny_manifest}", "data.dataset=manifest", "data.options={}", *TINY, "train.epochs=2"]
    )
    faces = load_faces(config)
    split = make_split(faces, config)
    method_config = data_parallel(baseline_config(config, "phanet"), 1)
    alone = run_method("phanet", method_config, faces, split, tmp_path / "alone", progress=False)
    spinner = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    spinner.start()
    try:
        busy = run_method("phanet", method_config, faces, split, tmp_path / "busy", progress=False)
    finally:
        spinner.terminate()
    assert len(alone.metrics) == 2 and alone.summary["expression_accuracy"] > 0
    pd.testing.assert_frame_equal(busy.predictions.drop(columns="path"), alone.predictions.drop(columns="path"))


def _spin() -> None:
    while True:
        pass
