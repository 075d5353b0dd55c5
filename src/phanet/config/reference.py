"""The configuration reference, generated from the schema: every key with its type, its allowed values,
its default, its value in the packaged presets, and what it means.

The meaning of each key is the ``#:`` comment above its field in :mod:`phanet.config.schema` (a field
without one is an error here, so a new key cannot go undocumented); the allowed values are the
field's interval or choices, the defaults and preset values come from the dataclasses and the
preset files. ``phanet docs`` writes the result to ``docs/reference/config.md``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import typing
from typing import Any

from phanet.config import schema
from phanet.config.loading import load_config, preset_names
from phanet.config.schema import Config

#: The presets shown beside the defaults (the others hold a dataset's data section only).
SHOWN_PRESETS = ("paper", "demo")


def field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comment lines above each field of dataclass ``cls``, joined into one text per field."""
    lines, _ = inspect.getsourcelines(cls)
    body = next(node for node in ast.parse("".join(lines)).body if isinstance(node, ast.ClassDef)).body
    comments = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above: list[str] = []
            row = node.lineno - 2
            while row >= 0 and lines[row].strip().startswith("#:"):
                above.insert(0, lines[row].strip()[2:].strip())
                row -= 1
            comments[node.target.id] = " ".join(above)
    return comments


def as_markdown(text: str) -> str:
    """A docstring's reStructuredText markup as Markdown: ``code`` and :role:`target` become `code`."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text).replace("|", "&#124;")


def _type_name(tp: Any) -> str:
    names = {int: "integer", float: "number", str: "text", bool: "true or false"}
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}s"
    if origin is dict:
        return "mapping"
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args and len(args) < len(typing.get_args(tp)):
        return f"{_type_name(args[0])} or null"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _values(field: dataclasses.Field, tp: Any) -> str:
    if "choices" in field.metadata:
        return ", ".join(f"`{c}`" for c in field.metadata["choices"])
    interval = field.metadata.get("range")
    if interval is not None:
        integer = int in (tp, *typing.get_args(tp)) or typing.get_args(tp) == (int,)
        return interval.describe(integer)
    return ""


def _shown(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, (list, dict)):
        return f"`{value}`" if value else ("`[]`" if isinstance(value, list) else "`{}`")
    return f"`{value}`"


def _get(config: Config, key: str) -> Any:
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _rows(cls: Any, prefix: str, presets: dict[str, Config]) -> list[str]:
    """Table rows of the fields of ``cls`` (a section's dataclass) that are not sections themselves."""
    hints = typing.get_type_hints(cls, vars(schema))
    comments = field_comments(cls)
    rows = []
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp):
            continue
        key = prefix + field.name
        meaning = comments.get(field.name, "")
        if not meaning:
            raise ValueError(f"config key {key} has no #: comment in phanet/config/schema.py")
        default = _get(Config(), key)
        shown = [_shown(_get(config, key)) for config in presets.values()]
        rows.append(
            f"| `{key}` | {_type_name(tp)} | {_values(field, tp)} | {_shown(default)} | {' | '.join(shown)} | "
            f"{as_markdown(meaning)} |"
        )
    return rows


def _table(cls: Any, prefix: str, presets: dict[str, Config]) -> list[str]:
    head = f"| key | type | values | default | {' | '.join(f'`{name}`' for name in presets)} | meaning |"
    rule = "|---|---|---|---|" + "---|" * len(presets) + "---|"
    return [head, rule, *_rows(cls, prefix, presets)]


def _sections(cls: Any, prefix: str, level: int, presets: dict[str, Config]) -> list[str]:
    """The subsections of ``cls``: one heading and table each, recursively."""
    hints = typing.get_type_hints(cls, vars(schema))
    comments = field_comments(cls)
    lines = []
    for field in dataclasses.fields(cls):
        tp = hints[field.name]
        if not dataclasses.is_dataclass(tp):
            continue
        key = prefix + field.name
        text = as_markdown(comments.get(field.name) or inspect.getdoc(tp) or "")
        lines += [
            "",
            f"{'#' * level} {key}",
            "",
            text,
            "",
            *_table(tp, key + ".", presets),
            *_sections(tp, key + ".", level + 1, presets),
        ]
    return lines


def reference_markdown() -> str:
    """The page ``docs/reference/config.md``."""
    presets = {name: load_config(name) for name in SHOWN_PRESETS}
    return "\n".join(
        [
            "# Configuration",
            "",
            "<!-- Generated by `phanet docs` from phanet/config/schema.py; edit the schema's #: comments, not this page. -->",
            "",
            "A run is described by one config: the sections below, read from a preset or YAML file "
            f"(`--config`; presets: {', '.join(f'`{name}`' for name in preset_names())}) and `KEY=VALUE` "
            'overrides with dotted keys, values read as YAML (`train.epochs=30`, `"model.scales=[N_S1,H_S2]"`). '
            "Every key is checked once, when the config is loaded: an unknown key, a wrong type or a number "
            "outside its values is one line naming the key. The columns `paper` and `demo` give each key's value "
            "in those presets.",
            "",
            "## Top level",
            "",
            inspect.getdoc(Config) or "",
            "",
            *_table(Config, "", presets),
            *_sections(Config, "", 2, presets),
            "",
        ]
    )
