"""Every command line of the getting-started page runs, in order, as the page gives it: on a tiny KDEF
tree in place of the user's copy, three rendered subjects in place of 40, tiny networks and
one epoch in place of the real budgets (the changes are :data:`TINY_VERSIONS`'s, nothing else)."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest

from conftest import REPO, TINY
from dataset_trees import make_kdef_tree
from phanet.cli import main
from predict_helpers import astronaut_path, isolated_threads  # noqa: F401

PAGE = REPO / "docs" / "getting-started.md"
#: Small settings for a training: tiny networks, one epoch, one validation and test subject.
SMALL = [*TINY, "data.split.val=1", "data.split.test=1", "train.epochs=1"]
#: The demo's small settings (its own data options: 3 subjects of 32 px).
DEMO = ["data.options={preset: bu3dfe, subjects: 3, size: 32}", *SMALL, "model.input_size=null"]
#: What each command of the page gets added or replaced to run here in seconds: (pattern of the
#: command, replacements in its text, words added at its end). A command of the page that no
#: pattern matches fails the test: give it a tiny version here.
TINY_VERSIONS = (
    (r"^phanet data inspect ", {}, []),
    (r"^phanet train --config paper --config kdef ", {}, SMALL),
    (r"^phanet train --config demo --config kdef ", {}, SMALL),
    (r"^phanet evaluate ", {}, []),
    (r"^phanet train --out runs/kdef --resume$", {}, ["train.epochs=2"]),
    (r"^phanet predict photos/ ", {}, []),
    (r"^phanet synth --preset bu3dfe ", {"--subjects 40": "--subjects 3", "--size 128": "--size 32"}, []),
    (r"^phanet synth --preset kdef --preview ", {}, ["--size", "32"]),
    (
        r"^phanet train --config demo data.root=data/synth ",
        {},
        [*SMALL, "data.options={preset: bu3dfe, subjects: 3, size: 32}", "model.input_size=null"],
    ),
    (r"^phanet predict data/synth ", {}, []),
)


def _page_commands() -> list[str]:
    """The command lines of the page's ``bash`` blocks, in order."""
    commands, block = [], False
    for line in PAGE.read_text().splitlines():
        if line.startswith("```"):
            block = line.strip() == "```bash"
            continue
        if block and line.strip():
            commands.append(line.strip())
    return commands


def _tiny(command: str, kdef: str) -> list[str]:
    for pattern, replaced, added in TINY_VERSIONS:
        if re.search(pattern, command):
            for old, new in replaced.items():
                assert old in command, f"{old!r} no longer in {command!r}: update TINY_VERSIONS"
                command = command.replace(old, new)
            return [*shlex.split(command.replace("/data/KDEF", kdef))[1:], *added]
    raise AssertionError(f"getting-started.md: {command!r} has no tiny version in tests/test_getting_started.py")


def test_the_install_lines_are_the_readmes_quick_start():
    commands = [c for c in _page_commands() if c.startswith("python3 -m venv")]
    readme = (REPO / "README.md").read_text()
    assert len(commands) == 2 and all(command in readme for command in commands)
    assert ".venv/bin/phanet demo --out runs/demo" in commands[0] and "pytest" in commands[1]


@pytest.mark.slow
@pytest.mark.usefixtures("isolated_threads")
def test_every_command_of_the_page_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PHANET_CACHE", str(tmp_path / "cache"))
    make_kdef_tree(tmp_path / "KDEF", subjects=("F01", "F02", "M01", "M02"), expressions=("AN", "HA", "SU"))
    (tmp_path / "photos").mkdir()
    shutil.copy(astronaut_path(), tmp_path / "photos" / "astronaut.png")
    # The first quick-start command's demo, which the page's predictions read the checkpoint of.
    assert main(["demo", "--out", "runs/demo", "--no-progress", *DEMO]) == 0
    commands = [c for c in _page_commands() if not c.startswith("python3 -m venv")]
    assert len(commands) >= 10
    for command in commands:
        argv = _tiny(command, str(tmp_path / "KDEF"))
        if argv[0] in ("train", "predict"):
            argv.insert(1, "--no-progress")
        assert main(argv) == 0, f"{command}\n{capsys.readouterr().err}"
    assert (tmp_path / "results.csv").is_file() and any((tmp_path / "drawn").iterdir())
    assert (tmp_path / "runs" / "kdef" / "evaluation" / "evaluation.json").is_file()
    assert (tmp_path / "synth-predictions.csv").is_file() and (tmp_path / "sheets" / "kdef.png").is_file()
