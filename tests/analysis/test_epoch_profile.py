"""``phanet.analysis.epoch_profile``: a training step taken apart, its parts adding up to the step."""

from __future__ import annotations

import pytest

from phanet.analysis import epoch_profile
from phanet.analysis.training_throughput import SMALL


@pytest.mark.slow
def test_the_parts_of_each_step_add_up_to_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PHANET_CACHE", str(tmp_path))
    table = epoch_profile.profile(SMALL, threads=1, steps=3, warmup=1)
    for network, parts in (
        ("PhaNet", ("S1 backbone forward", "S3 backbone backward", "S2 PAN forward", "SAL forward")),
        ("PhaNet in 32 bits", ("S1 backbone forward", "S3 backbone backward", "S2 PAN forward", "SAL forward")),
        ("DenseNet-40", ("backbone forward", "backbone backward", "heads forward")),
    ):
        rows = table[table["network"] == network].set_index("part")
        assert set(parts) <= set(rows.index)
        parts_only = rows.drop(["the step (sum)", "the step inside Trainer.fit"])
        assert parts_only["share %"].sum() == pytest.approx(100, abs=5)  # the parts are the step, up to the loop
        assert (parts_only["ms per step"] >= 0).all() and rows.loc["the step (sum)", "ms per step"] > 0
    for name in ("PhaNet", "PhaNet in 32 bits"):
        ratios = table[table["network"] == f"{name} / DenseNet-40"].set_index("part")["ms per step"]
        assert list(ratios.index) == ["bare step", "step inside Trainer.fit"]
        assert (ratios > 1).all()  # three backbones against one
