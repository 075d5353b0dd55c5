"""Config files made to take the machine: pipes and devices, huge files, alias bombs, deep nesting,
numbers of thousands of digits. Each is one line at once, in bounded memory, run in a process whose
address space is limited so that a failure cannot take the machine down."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from phanet.cli import main
from phanet.config import load_config, parse_overrides, show

#: Address space of the process a hostile config is given to: far below what an unbounded read takes.
LIMIT_BYTES = 2 * 1024**3


def _billion_laughs(levels: int = 9, under: str = "data: {options: {x: *%s}}") -> str:
    text = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    previous = "a"
    for name in "bcdefghijklmnop"[:levels]:
        text += f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
        previous = name
    return "anchors:\n" + "".join("  " + line + "\n" for line in text.splitlines()) + under % previous + "\n"


def _bounded(argv: list[str], timeout: float = 60) -> tuple[int, str, float]:
    """``phanet ARGV`` in a process of at most LIMIT_BYTES of address space: exit status, stderr, seconds."""
    limit = (
        f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({LIMIT_BYTES}, {LIMIT_BYTES})); "
        "from phanet.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    started = time.monotonic()
    ended = subprocess.run([sys.executable, "-c", limit, *argv], capture_output=True, text=True, timeout=timeout)
    return ended.returncode, ended.stderr, time.monotonic() - started


@pytest.mark.parametrize(
    "content, expected",
    [
        (_billion_laughs(), "holds more than 100,000 values once its aliases (*name) are expanded"),
        ("train: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 64 levels deep"),
        ("train: {epochs: " + "9" * 5000 + "}\n", "holds an integer of more than 4,300 digits"),
        ("a" * 3_000_000, "3 MB, more than a config may hold (1 MB)"),
        ("seed: 1\n\x00\x01", "not valid YAML"),
    ],
    ids=["alias-bomb", "deep-nesting", "5000-digits", "3-MB", "binary"],
)
def test_hostile_config_files_are_one_line_at_once(content, expected, tmp_path):
    path = tmp_path / "hostile.yaml"
    path.write_text(content)
    code, err, seconds = _bounded(["train", "--config", str(path), "--out", str(tmp_path / "run")])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err[-2000:]
    assert expected in err
    assert seconds < 30
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "/dev/urandom"])
def test_configs_that_are_pipes_or_devices_are_refused_without_reading(special, tmp_path, capsys):
    path = tmp_path / "config.yaml"
    if special == "fifo":
        os.mkfifo(path)  # opening it to read would wait for a writer forever
    else:
        path.symlink_to(special)  # reading it would never end
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    kind = "a named pipe (FIFO)" if special == "fifo" else "a character device"
    assert err == f"phanet train: error: --config: {path}: {kind}, not a regular file"


def test_overrides_and_options_are_read_within_the_same_bounds(capsys):
    huge = "9" * 5000
    assert parse_overrides([f"train.epochs={huge}"]) == {"train": {"epochs": huge}}  # not YAML: kept as text
    assert main(["train", "--config", "demo", f"train.epochs={huge}"]) == 2
    assert capsys.readouterr().err.strip() == f"phanet train: error: config: train.epochs: expected an integer, got '{'9' * 59}…"
    nested = "[" * 1000 + "]" * 1000
    assert parse_overrides([f"data.options.x={nested}"]) == {"data": {"options": {"x": nested}}}


def test_values_in_messages_are_shown_by_their_first_items():
    laughs = ["lol"] * 9
    for _ in range(8):
        laughs = [laughs] * 9  # 9**9 strings if written out
    assert show(laughs) == "[[[[…], […], […], […], […], […], […], […], …], [[…], […], [……"
    assert show(10**5000) == "an integer of about 5000 digits"
    assert show(("x",)) == "('x',)"
    assert show({"a": 1}) == "{'a': 1}"


def test_an_alias_bomb_inside_data_options_is_refused_before_it_is_expanded(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_billion_laughs(levels=5))  # 9**6 = 531,441 strings when expanded
    with pytest.raises(Exception, match="holds more than 100,000 values"):
        load_config(["demo", str(path)])
    path.write_text(_billion_laughs(levels=2).replace("anchors", "other"))
    with pytest.raises(Exception, match="unknown key other"):  # small aliases are fine: the schema speaks
        load_config(["demo", str(path)])


@pytest.mark.parametrize(
    "content, expected",
    [
        (
            "train:\n  epochs: 3\ntrain:\n  batch_size: 4\n",
            "the key 'train' is given twice in one mapping (lines 1 and 3); give it once",
        ),
        ("train: {epochs: 3, epochs: 4}\n", "the key 'epochs' is given twice in one mapping (lines 1 and 1); give it once"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
        ("- train\n- data\n", "expected a mapping of config sections at the top level"),
    ],
    ids=["section-twice", "key-twice", "python-tag", "a-list"],
)
def test_configs_that_would_be_read_wrongly_are_refused(content, expected, tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(content)
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run").exists()


def test_a_config_that_is_a_folder_is_one_line(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"phanet train: error: --config: {tmp_path}: a folder, not a regular file"


def test_shared_yaml_anchors_within_the_bounds_still_work(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("train: &t {epochs: 3}\nmodel: {image_size: 32, input_size: null}\n")
    with pytest.raises(Exception, match="unknown key"):  # anchors are fine; the schema still speaks
        load_config(["demo", str(path)], ["extra.key=1"])
    assert load_config(["demo", str(path)]).train.epochs == 3
