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
    "model.image_size=32", "model.source_size=32", "model.backbone.depth=10", "model.backbone.growth_rate=6",
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
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(linked) >= 10
    for path in linked:
        image = Image.open(out / path)
        assert image.size[0] > 100 and image.size[1] > 100
    # a second run reuses the finished runs and the cached data
    assert main(["demo", "--out", str(out), "--seed", "3", "--no-progress", *MINI]) == 0
    assert len(list((tmp_path / "cache" / "synth").iterdir())) == 1
    capsys.readouterr()
