"""The documentation tells the truth about the package: its generated pages are what ``phanet docs``
writes (configuration, command line, results), every config key is there with its meaning, and
every ``phanet`` command line in the documents uses options that exist."""

from __future__ import annotations

import dataclasses
import re
import shutil

import pytest

from conftest import REPO
from phanet.cli import COMMANDS, main
from phanet.config import Config

DOCS = REPO / "docs"


def _leaves(instance: object, prefix: str = "") -> list[str]:
    names = []
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        names += _leaves(value, f"{prefix}{f.name}.") if dataclasses.is_dataclass(value) else [prefix + f.name]
    return names


def test_the_generated_pages_are_what_phanet_docs_writes(capsys):
    assert main(["docs", "--check"]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.strip().endswith("generated pages: up to date")


def test_a_page_edited_by_hand_is_found(tmp_path, capsys):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS / "results", docs / "results")
    assert main(["docs", "--docs", str(docs)]) == 0
    page = docs / "results" / "crossval.md"
    page.write_text(page.read_text().replace("91.48", "91.84"))
    capsys.readouterr()
    assert main(["docs", "--docs", str(docs), "--check"]) == 1
    assert f"{page}: differs from what phanet docs writes" in capsys.readouterr().out.splitlines()


def test_the_config_reference_gives_every_key_its_type_default_and_meaning():
    rows = {}
    for line in (DOCS / "reference" / "config.md").read_text().splitlines():
        match = re.match(r"\| `([\w.]+)` \| (.+) \|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split(" | ")]
    leaves = _leaves(Config())
    assert len(leaves) > 60 and sorted(rows) == sorted(leaves)
    assert all(len(cells) == 6 and cells[-1] and cells[2] for cells in rows.values())
    assert rows["train.epochs"][:5] == ["integer", "an integer from 1 to 1000000", "`150`", "`150`", "`12`"]


def _commands_in_documents() -> list[tuple[str, list[str]]]:
    """Every ``phanet`` command line in a code block of the README and the documentation pages."""
    found = []
    for path in [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]:
        in_code = False
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                in_code = not in_code
                continue
            words = line.split("#")[0].split()
            if in_code and len(words) > 1 and words[0] in ("phanet", ".venv/bin/phanet") and words[1] in dict(COMMANDS):
                found.append((path.relative_to(REPO).as_posix(), words[1:]))
    return found


def _options() -> dict[str, set[str]]:
    """Each command's options, read from its ``--help`` (the generated command-line reference)."""
    options: dict[str, set[str]] = {}
    for section in (DOCS / "reference" / "cli.md").read_text().split("\n## phanet ")[1:]:
        name, _, text = section.partition("\n")
        options[name.strip()] = set(re.findall(r"(--[a-z][a-z0-9-]*)", text))
    return options


def test_every_option_the_documents_use_exists():
    commands = _commands_in_documents()
    assert len(commands) > 20
    options = _options()
    assert set(options) == {name for name, _ in COMMANDS} and "--resume" in options["train"]
    unknown = [
        f"{where}: phanet {words[0]} {word}"
        for where, words in commands
        for word in words[1:]
        if word.startswith("--") and word.split("=")[0] not in options[words[0]]
    ]
    assert unknown == []


def _anchors(page: str) -> set[str]:
    """The anchors MkDocs gives the headings of a page (lower case, spaces as dashes, no punctuation)."""
    headings = re.findall(r"^#+ (.+)$", (DOCS / page).read_text(), re.MULTILINE)
    return {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading).strip().lower()) for heading in headings}


def test_every_option_of_every_command_has_help_and_predict_names_where_its_columns_are(capsys):
    import argparse

    from phanet.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    walk(subparser, f"{name} {sub}")
            elif not action.help and action.dest != "help":
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "phanet")
    assert missing == []
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    page, anchor = "guides/prediction.md", "output-columns"
    assert f"docs/{page}#{anchor}" in text and "README" not in text
    assert anchor in _anchors(page)
