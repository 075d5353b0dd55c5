"""``phanet.analysis.time_to_accuracy`` on hand-made epochs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from phanet.analysis.time_to_accuracy import time_to_levels


def test_the_first_epoch_at_each_level_and_the_minutes_up_to_it():
    metrics = pd.DataFrame(
        {"epoch": [0, 1, 2, 3, 3], "val/expression_acc": [0.5, 0.62, 0.58, 0.71, 0.72], "seconds": [60, 120, 60, 30, 30]}
    )  # a resumed run logs epoch 3 twice: the last counts
    row = time_to_levels(metrics, (0.6, 0.7, 0.75))
    assert row["epoch to 60 %"] == 2 and row["minutes to 60 %"] == pytest.approx(3.0)
    assert row["epoch to 70 %"] == 4 and row["minutes to 70 %"] == pytest.approx(4.5)
    assert math.isnan(row["epoch to 75 %"]) and math.isnan(row["minutes to 75 %"])
    assert row["epochs"] == 4 and row["best val FER %"] == pytest.approx(72)
    assert row["minutes"] == pytest.approx(4.5)  # 60 + 120 + 60 + 30 s: the last row of epoch 3
    with pytest.raises(ValueError, match="no epoch times"):
        time_to_levels(metrics.drop(columns="seconds"))


def test_the_table_gives_the_test_accuracies_of_an_evaluated_run_and_nan_otherwise(tmp_path):
    from phanet.analysis.time_to_accuracy import table
    from phanet.training.run_folder import RunFolder

    metrics = pd.DataFrame({"epoch": [0, 1], "val/expression_acc": [0.65, 0.8], "seconds": [30, 30]})
    for name in ("tested", "untested"):
        (tmp_path / name).mkdir()
        metrics.to_csv(RunFolder(tmp_path / name).metrics_file, index=False)
    RunFolder(tmp_path / "tested").write_evaluation(
        {"expression_accuracy": 0.5, "pose_accuracy": 0.96}, pd.DataFrame({"path": ["a.png"]})
    )
    rows = table([tmp_path / "tested", tmp_path / "untested"]).set_index("run")
    tested, untested = rows.loc[str(tmp_path / "tested")], rows.loc[str(tmp_path / "untested")]
    assert tested["test FER %"] == pytest.approx(50) and tested["test pose %"] == pytest.approx(96)
    assert math.isnan(untested["test FER %"]) and untested["minutes"] == pytest.approx(1.0)
    assert tested["epoch to 60 %"] == 1 and tested["epoch to 75 %"] == 2
