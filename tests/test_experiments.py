"""The experiment commands end to end at a tiny size: ablate, crossval, crossdata."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import TINY
from phanet.cli import main


def _tiny(manifest, *extra):
    return ["data.dataset=manifest", f"data.root={manifest}", "data.options={}", *TINY, "train.epochs=1", *extra]


@pytest.mark.slow
def test_ablate_writes_both_tables_and_reuses_finished_rows(tiny_manifest, tmp_path, capsys):
    out = tmp_path / "ablate"
    assert main(["ablate", "--config", "demo", *_tiny(tiny_manifest), "--out", str(out), "--no-progress"]) == 0
    table6 = pd.read_csv(out / "table6.csv")
    table8 = pd.read_csv(out / "table8.csv")
    assert len(table6) == 8 and table6["Different attention"].iloc[-1] == "N_S1 + H_S2 + H_S3 + J_SA"
    assert len(table8) == 5 and table8["Acc. on Pose"].isna().tolist() == [True, True, False, False, False]
    report = (out / "report.md").read_text()
    assert "Table VI" in report and "Table VIII" in report and "Fig. 15" in report and "Fig. 14" in report
    for figure in ("fig15_task_weights.png", "fig14_tsne.png"):
        assert (out / figure).stat().st_size > 10_000
    free = json.loads((out / "fig15_no_factor" / "evaluation" / "evaluation.json").read_text())
    assert free["loss_setting"] == "multi"
    assert "lambda_form: free" in (out / "fig15_no_factor" / "config.yaml").read_text()
    row = json.loads((out / "table6_h_s2_h_s3" / "evaluation" / "evaluation.json").read_text())
    assert row["scales"] == ["H_S2", "H_S3"] and row["joint_sa"] is False
    stamp = (out / "table8_e" / "evaluation" / "evaluation.json").stat().st_mtime_ns
    assert main(["ablate", "--config", "demo", *_tiny(tiny_manifest), "--out", str(out), "--table", "8",
                 "--no-progress"]) == 0
    assert (out / "table8_e" / "evaluation" / "evaluation.json").stat().st_mtime_ns == stamp
    capsys.readouterr()


@pytest.mark.slow
def test_crossval_tests_every_subject_exactly_once(tiny_manifest, tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["crossval", "--config", "demo", *_tiny(tiny_manifest, "data.split.val=1"), "--folds", "4",
                 "--methods", "phanet,densenet", "--out", str(out), "--no-progress"]) == 0
    tested = []
    for k in range(1, 5):
        summary = json.loads((out / f"fold{k}" / "phanet" / "evaluation" / "evaluation.json").read_text())
        split = json.loads((out / f"fold{k}" / "phanet" / "split.json").read_text())
        assert not set(split["train"]) & set(summary["test_subjects"])
        assert not set(split["val"]) & set(summary["test_subjects"])
        tested += summary["test_subjects"]
    assert sorted(tested) == [f"s{i:02d}" for i in range(8)]
    summary = pd.read_csv(out / "summary.csv")
    assert summary["Method"].tolist() == ["phanet", "densenet"] and (summary["Folds"] == 4).all()
    assert all(" ± " in v for v in summary["Acc. of FER (mean ± std)"])
    table5 = pd.read_csv(out / "table5.csv")
    assert table5["Method"].tolist() == ["phanet", "densenet"] and "Average" in table5
    capsys.readouterr()


def test_crossdata_maps_classes_and_reports_the_unmatched(tiny_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "demo", *_tiny(tiny_manifest), "--out", str(run), "--no-progress"]) == 0
    table = pd.read_csv(tiny_manifest)
    renamed = {"AN": "Angry", "HA": "Happy", "NE": "Neutral", "SU": "Scream"}
    table["expression"] = table["expression"].map(renamed)
    table["path"] = [str(tiny_manifest.parent / p) for p in table["path"]]
    other = tmp_path / "other.csv"
    table.to_csv(other, index=False)
    out = tmp_path / "cross"
    assert main(["crossdata", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--name", "PhaNet",
                 "--data", str(other), "--out", str(out)]) == 0
    result = json.loads((out / "PhaNet" / "evaluation.json").read_text())
    assert result["mapping"] == {"Angry": "AN", "Happy": "HA", "Neutral": "NE"}
    assert result["unmatched_expressions"] == {"Scream": 48}
    predictions = pd.read_csv(out / "PhaNet" / "predictions.csv")
    scored = predictions[predictions["true_expression"] != "Scream"]
    expected = (scored["expression"] == scored["true_expression"].map({v: k for k, v in renamed.items()})).mean()
    assert abs(result["expression_accuracy"] - expected) < 1e-9
    table9 = pd.read_csv(out / "table9.csv")
    assert table9.iloc[0]["Images scored"] == 144 and "Scream (48)" in table9.iloc[0]["Left out (no counterpart)"]
    capsys.readouterr()
