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
    with pytest.raises(ValueError, match="no epoch times"):
        time_to_levels(metrics.drop(columns="seconds"))
