"""The README's configuration table names every key the config accepts, in the right section."""

from __future__ import annotations

import dataclasses
import re

from conftest import REPO
from phanet.config import Config

README = REPO / "README.md"


def _leaves(instance: object, prefix: str = "") -> list[str]:
    names = []
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        names += _leaves(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]
    return names


def _table_rows() -> dict[str, str]:
    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"\| (`\w+`|top level) \| (.*) \|$", line)
        if match:
            rows[match.group(1).strip("`")] = match.group(2)
    return rows


def test_every_config_key_is_named_in_its_section_of_the_readme():
    rows = _table_rows()
    assert {"model", "loss", "optim", "train", "data", "top level"} <= set(rows)
    leaves = _leaves(Config())
    assert len(leaves) > 60
    missing = []
    for key in leaves:
        section, _, rest = key.partition(".")
        row = rows["top level"] if not rest else rows[section]
        name = (rest or section).split(".")[-1]
        if not re.search(rf"\b{re.escape(name)}\b", row):
            missing.append(key)
    assert missing == []
