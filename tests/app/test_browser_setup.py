"""The browser tests' own setup: where Chromium cannot start, they fail with the install command, never skip."""

from __future__ import annotations

import pytest

from app_helpers import INSTALL, chromium


def test_a_chromium_that_cannot_start_fails_the_test_with_the_install_command(monkeypatch, tmp_path):
    missing = tmp_path / "no-chromium"
    monkeypatch.setenv("PHANET_CHROMIUM", str(missing))
    with pytest.raises(pytest.fail.Exception) as failed, chromium():
        raise AssertionError("Chromium started")
    assert str(missing) in str(failed.value) and INSTALL in str(failed.value)
    assert "apt-get install -y chromium" in INSTALL
