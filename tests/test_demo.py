"""A miniature `phanet demo` end to end: rendered data, both methods, the report and its figures."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from PIL import Image

from phanet.cli import main

MINI = [
    "data.options={preset: bu3dfe, subjects: 6, size: 32}",
    "data.split.val=1", "data.split.test=2",
    "model.image_size=32", "model.input_size=32", "model.backbone.depth=10", "model.backbone.growth_rate=6",
    "model.backbone.stem_pool=false", "model.attention.grid=2", "model.attention.hidden=16",
    "model.sal_hidden=8", "model.head_hidden=32", "train.epochs=2", "train.batch_size=32",
    "train.pan_init.warmup_epochs=1", "train.pan_init.steps=2",
]


@pytest.mark.slow
def test_mini_demo_writes_the_report_tables_and_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PHANET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "3", "--no-progress", *MINI]) == 0
    report = (out / "report.md").read_text()
    assert "Seed**: 3" in report and "preset `bu3dfe`" in report and "6 subjects" in report
    table1 = pd.read_csv(out / "tables" / "table1_methods.csv")
    assert table1["Methods"].tolist() == ["PhaNet", "DenseNet-40"]
    assert table1["Pan"].tolist() == ["(-90°, 90°)"] * 2
    for method, column in (("phanet", "PhaNet"), ("densenet", "DenseNet-40")):
        predictions = pd.read_csv(out / method / "evaluation" / "predictions.csv")
        accuracy = 100 * (predictions["expression"] == predictions["true_expression"]).mean()
        assert abs(table1.set_index("Methods").loc[column, "Acc. of FER"] - accuracy) < 1e-6
        assert set(predictions["subject"]) == set(pd.read_json(out / method / "split.json", typ="series")["test"])
    table2 = pd.read_csv(out / "tables" / "table2_per_pose.csv")
    assert table2.columns.tolist() == ["Methods", "-90°", "-60°", "-45°", "-30°", "0°", "30°", "45°", "60°", "90°",
                                       "Average"]
    coverage = pd.read_csv(out / "tables" / "attention_coverage.csv").set_index("Region")
    assert coverage.columns.tolist() == table2.columns.tolist()[1:-1] + ["all"]
    # S3's share on the mouth, recomputed from the predictions and the manifest's landmarks
    cache = next((tmp_path / "cache" / "synth").iterdir())
    marks = pd.read_csv(cache / "manifest.csv").set_index("path")
    predictions = pd.read_csv(out / "phanet" / "evaluation" / "predictions.csv")
    inside = pd.Series(False, index=predictions.index)
    for point in ("mouth", "mouth_left", "mouth_right"):
        lm = marks.loc[predictions["path"], [f"lm_{point}_x", f"lm_{point}_y", f"lm_{point}_vis"]].to_numpy()
        inside |= ((abs(lm[:, 0] - predictions["s3_x"]) <= predictions["s3_l"])
                   & (abs(lm[:, 1] - predictions["s3_y"]) <= predictions["s3_l"]) & (lm[:, 2] == 1))
    assert coverage.loc["S3 square on mouth", "all"] == pytest.approx(100 * inside.mean(), abs=0.01)
    assert "How often each square holds" in report
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(linked) >= 10
    for path in linked:
        image = Image.open(out / path)
        assert image.size[0] > 100 and image.size[1] > 100
    # a second run reuses the finished runs and the cached data
    assert main(["demo", "--out", str(out), "--seed", "3", "--no-progress", *MINI]) == 0
    assert len(list((tmp_path / "cache" / "synth").iterdir())) == 1
    capsys.readouterr()
