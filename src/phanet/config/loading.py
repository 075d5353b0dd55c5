"""Loading a configuration: presets and YAML files merged, dotted overrides, old names, validation.

``load_config("demo", ["train.epochs=3", "model.image_size=64"])`` reads a packaged preset (or a YAML
file), applies dotted overrides (values parsed as YAML), and validates every key, type and number
(each numeric field carries the :class:`~phanet.config.schema.Interval` of its allowed values; NaN and
infinities are in none). Messages quote a user's value shortened (:func:`phanet.checks.shorten`).
Presets live in ``phanet/config/presets/*.yaml``: ``paper`` (the paper's hyper-parameters) and ``demo``
(CPU-sized).

A config is read within bounds (:func:`parse_yaml`), so that no file can take the machine: only a
regular file of at most :data:`MAX_CONFIG_BYTES` is read (never a pipe or a device such as
``/dev/zero``), nested at most :data:`MAX_DEPTH` deep, holding at most :data:`MAX_VALUES` values once
its aliases are expanded (a few lines of "billion laughs" expand to billions), and no number too long
to convert. A key given twice in one mapping, which YAML would resolve by dropping the first without a
word, is refused too. Each refusal is one line.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import sys
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from phanet.checks import shorten
from phanet.compat import CONFIG_KEYS, DATASET_OPTIONS, deprecated
from phanet.config.schema import SCALE_NAMES, Config, DataConfig, show
from phanet.errors import PhanetError
from phanet.files import atomic_write_text, read_limited

#: Largest config file read (a config of every key with comments is a few kilobytes).
MAX_CONFIG_BYTES = 1_000_000
#: Deepest nesting of lists and mappings in a config (the schema's deepest key is three levels).
MAX_DEPTH = 64
#: Most values (scalars, lists, mappings) a config may hold once its YAML aliases are expanded.
MAX_VALUES = 100_000


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _wrong(where: str, expected: str, value: Any) -> PhanetError:
    return PhanetError(f"config: {where}: expected {expected}, got {show(value)}")


def _boolean(value: Any, where: str, meta: dict[str, Any]) -> bool:
    if not isinstance(value, bool):
        raise _wrong(where, "true or false", value)
    return value


def _integer(value: Any, where: str, meta: dict[str, Any]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(where, "an integer", value)
    return value


def _number(value: Any, where: str, meta: dict[str, Any]) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # YAML 1.1 reads "1e-4" (no dot) as text
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong(where, "a number", value)
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        raise _wrong(where, "a number", value) from None


def _text(value: Any, where: str, meta: dict[str, Any]) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _wrong(where, "text", value)
    choices = meta.get("choices")
    if choices and value not in choices:
        raise _wrong(where, f"one of {', '.join(choices)}", value)
    return value


#: How a value of each plain field type is checked and converted.
_SCALARS = {bool: _boolean, int: _integer, float: _number, str: _text}


def _coerce(value: Any, tp: Any, where: str, meta: dict[str, Any]) -> Any:
    """``value`` as the field type ``tp`` (``where`` names the field in messages)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _coerce(value, next(a for a in typing.get_args(tp) if a is not type(None)), where, meta)
    if dataclasses.is_dataclass(tp) or origin is dict:
        if not isinstance(value, dict):
            raise _wrong(where, "a mapping", value)
        return dict(value) if origin is dict else _build(tp, value, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise _wrong(where, f"a list of {_type_name(item)}", value)
        return [_coerce(v, item, f"{where}[{i}]", {}) for i, v in enumerate(value)]
    scalar = _SCALARS.get(tp)
    return scalar(value, where, meta) if scalar is not None else value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise PhanetError(f"config: unknown key {shorten(where)} (known here: {', '.join(fields)})")
    kwargs = {}
    for name, value in values.items():
        where = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], where, dict(fields[name].metadata))
    return cls(**kwargs)


#: Settings whose value is a whole mapping: a later source replaces it (``optim.part_lr={}`` clears the
#: preset's multipliers) instead of merging into it like a config section; a dotted key into one
#: (``optim.part_lr.SAL=1``, ``data.options.subjects=10``) changes that entry and keeps the others.
MAPPING_SETTINGS = ("options", "part_lr")


class _Entries(dict):
    """Entries of a mapping setting given one by one with dotted keys (``optim.part_lr.SAL=1``): they
    change those entries of the mapping instead of replacing it."""


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        whole = key in MAPPING_SETTINGS and not isinstance(value, _Entries)
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not whole:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_PRESETS = resources.files("phanet.config").joinpath("presets")


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in _PRESETS.iterdir() if p.name.endswith(".yaml"))


def _depth(text: str, where: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` from the parser's events, before any node is built
    (building them recurses once per level)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise PhanetError(f"{where}: nested more than {MAX_DEPTH} levels deep; a config is a few levels of mappings")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _expanded(node: yaml.Node, where: str) -> None:
    """Refuse a document that holds more than :data:`MAX_VALUES` values with its aliases expanded; an
    alias is the node it names, so each node's count is computed once."""
    counts: dict[int, int] = {}

    def count(item: yaml.Node) -> int:
        if id(item) not in counts:
            children: list[yaml.Node] = []
            if isinstance(item, yaml.SequenceNode):
                children = item.value
            elif isinstance(item, yaml.MappingNode):
                children = [part for pair in item.value for part in pair]
                _unique_keys(item, where)
            counts[id(item)] = 1 + sum(count(child) for child in children)
            if counts[id(item)] > MAX_VALUES:
                raise PhanetError(
                    f"{where}: holds more than {MAX_VALUES:,} values once its aliases (*name) are expanded; "
                    "a config holds a few hundred"
                )
        return counts[id(item)]

    count(node)


def _unique_keys(node: yaml.MappingNode, where: str) -> None:
    """Refuse a key given twice in one mapping: YAML keeps the last one without a word, so a setting
    written twice (two ``train:`` sections) would lose the first one's keys."""
    seen: dict[str, int] = {}
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            if key.value in seen:
                raise PhanetError(
                    f"{where}: the key {shorten(key.value)!r} is given twice in one mapping (lines {seen[key.value]} and "
                    f"{key.start_mark.line + 1}); give it once"
                )
            seen[key.value] = key.start_mark.line + 1


def parse_yaml(text: str, where: str) -> Any:
    """``text`` read as YAML (safe types only) within the bounds of a config; one line naming ``where``
    for text that is not YAML or exceeds them."""
    try:
        _depth(text, where)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _expanded(node, where)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise PhanetError(f"{where}: not valid YAML ({shorten(str(exc).splitlines()[0])})") from None
    except ValueError:  # the one value YAML builds and Python refuses: an integer of thousands of digits
        raise PhanetError(f"{where}: holds an integer of more than {sys.get_int_max_str_digits():,} digits") from None


def read_yaml(source: str | Path) -> dict[str, Any]:
    """A preset name (``paper``, ``demo``) or a YAML file path, as a mapping."""
    text: str
    if isinstance(source, str) and source in preset_names():
        text = _PRESETS.joinpath(f"{source}.yaml").read_text()
        where = f"preset {source!r}"
    else:
        path, where = Path(source), shorten(source, 300)
        try:
            text = read_limited(path, MAX_CONFIG_BYTES, "config").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PhanetError.about(
                "config",
                "{where} is not UTF-8 text (byte {byte:#04x} at position {at}); save the YAML file as UTF-8",
                where=where,
                byte=exc.object[exc.start],
                at=exc.start,
            ) from None
        except PhanetError as exc:  # not a regular file, or larger than any config
            raise PhanetError.about("config", "{reason}", reason=shorten(exc, 400)) from None
        except (OSError, ValueError):
            raise PhanetError.about(
                "config",
                "{where} is neither a preset ({presets}) nor a readable YAML file",
                where=where,
                presets=", ".join(preset_names()),
            ) from None
    values = parse_yaml(text, where) or {}
    if not isinstance(values, dict):
        raise PhanetError(f"{where}: expected a mapping of config sections at the top level")
    return values


def _value(raw: str) -> Any:
    """An override's or option's value read as YAML; the text itself when it is not YAML."""
    try:
        return parse_yaml(raw, "value") if raw.strip() else None
    except PhanetError:
        return raw


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "data.options.preset=kdef"]`` as a nested mapping (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise PhanetError(f"override {show(item)}: expected KEY=VALUE, e.g. train.epochs=10")
        key, raw = item.split("=", 1)
        value = _value(raw)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, _Entries() if part in MAPPING_SETTINGS else {})
            if not isinstance(node, dict):
                raise PhanetError(f"override {show(item)}: {shorten(part)} is set twice")
        node[parts[-1]] = value
    return nested


def parse_options(items: list[str], flag: str = "--option") -> dict[str, Any]:
    """``["classes=7", "poses=[-45, 0, 45]"]`` as ``{"classes": 7, "poses": [-45, 0, 45]}`` (values read as YAML)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise PhanetError(f"{flag} {show(item)}: expected KEY=VALUE, e.g. {flag} classes=7")
        options[key.strip()] = _value(raw)
    return options


def _renamed(section: dict[str, Any], old: str, new: str, where: str) -> None:
    if old not in section:
        return
    if new in section:
        raise PhanetError(f"config: {where}.{old}: an old name of {where}.{new}; give only {where}.{new}")
    section[deprecated(where, old, new)] = section.pop(old)


def _migrate(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with renamed keys under their current names (the options of the data's adapter too;
    the renames are :mod:`phanet.compat`'s)."""
    values = copy.deepcopy(values)
    for (section, old), new in CONFIG_KEYS.items():
        if isinstance(values.get(section), dict):
            _renamed(values[section], old, new, section)
    data = values.get("data")
    if isinstance(data, dict) and isinstance(data.get("options"), dict):
        for old, new in DATASET_OPTIONS.get(data.get("dataset", DataConfig.dataset), {}).items():
            _renamed(data["options"], old, new, "data.options")
    return values


def config_from_dict(values: dict[str, Any]) -> Config:
    if not isinstance(values, dict):
        raise PhanetError(f"config: expected a mapping of config sections, got {show(values)}")
    config = _build(Config, _migrate(values))
    validate(config)
    return config


def _items(value: Any, kinds: tuple[type, ...], name: str, expected: str) -> list[Any]:
    """``value`` (None, or a list of ``kinds``) as a list; an error about parameter ``name`` otherwise."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        wrong = value
    else:
        value = list(value)
        wrong = next((item for item in value if not isinstance(item, kinds)), value)
        if wrong is value:
            return value
    kind = "None" if wrong is None else f"{type(wrong).__name__} {show(wrong)}"
    raise PhanetError.about(name, "expected {expected}, got {kind}", expected=expected, kind=kind)


def load_config(source: str | Path | list[str | Path] | None = None, overrides: list[str] | None = None) -> Config:
    """Presets and/or YAML files merged left to right (e.g. ``["paper", "kdef"]``: the paper's
    hyper-parameters with KDEF's data section), plus dotted overrides, validated."""
    expected = "a preset name, a YAML file or a list of these"
    sources = _items([source] if isinstance(source, (str, Path)) else source, (str, Path), "source", expected)
    overrides = _items(overrides, (str,), "overrides", "a list of KEY=VALUE strings")
    values: dict[str, Any] = {}
    # each source under the current names before merging: an old name in a user's file overrides the preset
    for item in sources:
        values = _merge(values, _migrate(read_yaml(item)))
    values = _merge(values, _migrate(parse_overrides(overrides)))
    return config_from_dict(values)


def _check_ranges(node: Any, prefix: str = "") -> None:
    """Every number of the config (and every item of a list of numbers) inside its field's interval;
    NaN and infinities are inside none."""
    for f in dataclasses.fields(node):
        value, where = getattr(node, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _check_ranges(value, f"{where}.")
            continue
        interval = f.metadata.get("range")
        if interval is None or value is None:
            continue
        for i, item in enumerate(value) if isinstance(value, list) else [(None, value)]:
            if item not in interval:
                integer = isinstance(item, int)
                name = where if i is None else f"{where}[{i}]"
                raise PhanetError(f"config: {name}: expected {interval.describe(integer)}, got {show(item)}")


def _validate_model(config: Config) -> None:
    m, a = config.model, config.model.attention
    if m.input_size is not None and (m.input_size < m.image_size or m.input_size % m.image_size):
        raise PhanetError(
            f"config: model.input_size: expected a multiple of model.image_size ({m.image_size}), got {m.input_size}"
        )
    if not m.scales:
        raise PhanetError("config: model.scales: expected at least one of N_S1, H_S2, H_S3")
    for scale in m.scales:
        if scale not in SCALE_NAMES:
            raise PhanetError(f"config: model.scales: unknown scale {show(scale)} (expected N_S1, H_S2, H_S3)")
    if len(set(m.scales)) != len(m.scales):
        raise PhanetError(f"config: model.scales: a scale is listed twice in {m.scales}")
    if a.side_min > a.side_max:
        raise PhanetError(f"config: model.attention: expected side_min <= side_max, got {a.side_min}, {a.side_max}")
    if (m.backbone.depth - 4) % 3:
        raise PhanetError(f"config: model.backbone.depth: expected 3n+4 (e.g. 40), got {m.backbone.depth}")
    if m.arch != "phanet" and config.loss.setting not in ("e", "p_e"):
        raise PhanetError(
            f"config: loss.setting: the {m.arch} baseline has no attention or task weights; use p_e or e, "
            f"not {config.loss.setting!r}"
        )


def _validate_training(config: Config) -> None:
    if not config.out.strip():
        raise PhanetError(f"config: out: expected the name of a run folder, got {show(config.out)}")
    if config.optim.scheduler == "plateau" and config.optim.lr_decay == 1:
        raise PhanetError("config: optim.lr_decay: the plateau schedule needs a factor below 1, got 1.0")
    for part, factor in config.optim.part_lr.items():
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < math.inf:
            raise PhanetError(f"config: optim.part_lr.{shorten(str(part))}: expected a positive multiplier, got {show(factor)}")
    for key in ("val", "test"):
        count = getattr(config.data.split, key)
        if count >= 1 and not count.is_integer():
            raise PhanetError(
                f"config: data.split.{key}: expected a fraction in [0, 1) or a whole number of subjects, got {count}"
            )


def validate(config: Config) -> None:
    """Every number in its interval, then the checks across fields that a type alone cannot express."""
    _check_ranges(config)
    _validate_model(config)
    _validate_training(config)


def dump_yaml(config: Config, path: str | Path) -> None:
    """Write the resolved ``config`` to ``path`` (atomically)."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
