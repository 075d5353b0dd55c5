"""What a training prints: one line per epoch in a log, a bar per epoch on a terminal; both with the
epoch's own results, never the previous epoch's."""

from __future__ import annotations

import contextlib
import io
import re
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import tiny_overrides
from phanet.config import load_config
from phanet.training.progress import EpochBars, EpochLines, epoch_label, epoch_summary, progress_callback
from phanet.training.run import train


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _expected(row: pd.Series) -> str:
    return (
        f"loss {row['train/loss']:.3f}, train FER {100 * row['train/expression_acc']:.1f} %, "
        f"pose {100 * row['train/pose_acc']:.1f} %; val FER {100 * row['val/expression_acc']:.1f} %, "
        f"pose {100 * row['val/pose_acc']:.1f} %"
    )


def test_summary_words_and_missing_metrics():
    assert epoch_summary({"train/loss": 2.5, "val/expression_acc": 0.125}) == "loss 2.500; val FER 12.5 %"
    assert epoch_summary({"train/expression_acc": float("nan")}) == "train FER nan"
    assert epoch_summary({}) == ""


def test_epoch_label_counts_from_one():
    assert epoch_label(SimpleNamespace(current_epoch=2, max_epochs=8)) == "3/8"
    assert epoch_label(SimpleNamespace(current_epoch=2, max_epochs=-1)) == "3"  # bounded by steps


def test_bars_only_on_a_terminal():
    assert isinstance(progress_callback(True, 10, _Terminal()), EpochBars)
    assert isinstance(progress_callback(True, 10, io.StringIO()), EpochLines)
    assert isinstance(progress_callback(False, 10, _Terminal()), EpochLines)


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [False, True], ids=["log", "terminal"])
def test_each_epoch_is_reported_once_with_its_own_results(terminal, tiny_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = tmp_path / "run"
    config = load_config("demo", tiny_overrides(tiny_manifest, out, "train.epochs=3"))
    stream = _Terminal() if terminal else io.StringIO()
    with contextlib.redirect_stdout(stream):
        train(config, progress=True)
    text = stream.getvalue()
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["train/loss"].nunique() == 3  # so a value of another epoch would not match
    if terminal:
        assert "Training" not in text and "\r" in text
        for k, row in metrics.iterrows():
            assert re.search(rf"Epoch {k + 1}/3: 100%", text)
            # The results on a line of their own, whole, however narrow the terminal.
            assert f"\n  epoch {k + 1}/3: {_expected(row)}\n" in text
    else:
        lines = text.strip().splitlines()
        assert len(lines) == 3 and "\r" not in text
        for k, (line, (_, row)) in enumerate(zip(lines, metrics.iterrows())):
            assert line.startswith(f"epoch {k + 1}/3: {_expected(row)}; ")
            assert line.endswith(" s")
