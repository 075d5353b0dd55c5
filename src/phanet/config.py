"""Configuration as data: dataclasses loaded from YAML, validated once, with messages naming the field.

``load_config("demo", ["train.epochs=3", "model.image_size=64"])`` reads a packaged preset (or a YAML
file), applies dotted overrides (values parsed as YAML), and validates every key, type and number
(each numeric field carries the :class:`Interval` of its allowed values; NaN and infinities are in
none). Messages quote a user's value shortened (:func:`phanet.checks.shorten`). Presets
live in ``phanet/configs/*.yaml``: ``paper`` (the paper's hyper-parameters) and ``demo`` (CPU-sized).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from phanet.checks import shorten
from phanet.compat import CONFIG_KEYS, DATASET_OPTIONS, deprecated
from phanet.errors import PhanetError
from phanet.files import atomic_write_text

#: Scales of Table VI: no attention on the whole image (N_S1) and hierarchical attention at S2, S3.
SCALE_NAMES = ("N_S1", "H_S2", "H_S3")
#: Loss settings of Table VIII.
LOSS_SETTINGS = ("e", "att_e", "p_e", "att_e_p", "multi")
#: The settings with a pose loss L(p); the others train (and report) no pose.
POSE_LOSS_SETTINGS = ("p_e", "att_e_p", "multi")


#: Seeds go to NumPy and PyTorch, which take 0 <= seed < 2**32.
MAX_SEED = 2**32 - 1


def show(value: Any) -> str:
    """A user's value as an error message quotes it: ``repr(value)``, shortened."""
    return shorten(repr(value))


def _choices(*values: str, default: str) -> Any:
    return field(default=default, metadata={"choices": values})


@dataclass(frozen=True)
class Interval:
    """The values a number may take, written like ``[1, 4096]`` or ``(0, 1)``; every config number has one.

    An open bound at ``inf`` admits every finite number. The finite upper bounds of sizes and counts
    lie far beyond any useful value: they turn a typo (an extra few digits) into a message instead of
    a network or a run that cannot fit the machine.
    """

    low: float
    high: float
    low_closed: bool
    high_closed: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        low, high = text[1:-1].split(",")
        return cls(float(low), float(high), text[0] == "[", text[-1] == "]")

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def describe(self, integer: bool) -> str:
        def number(x: float) -> str:
            return str(int(x)) if x.is_integer() else f"{x:g}"

        kind = "an integer" if integer else "a number"
        if self.low_closed and self.high_closed:
            return f"{kind} from {number(self.low)} to {number(self.high)}"
        return (f"{kind} in {'[' if self.low_closed else '('}{number(self.low)}, "
                f"{number(self.high)}{']' if self.high_closed else ')'}")


def _range(default: Any, interval: str) -> Any:
    """A numeric field with its allowed values (a list field: of each item). ``default`` may be a factory."""
    metadata = {"range": Interval.parse(interval)}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class BackboneConfig:
    """DenseNet backbone (Eq. 1), one per scale."""

    depth: int = _range(40, "[4, 1000]")
    growth_rate: int = _range(12, "[1, 4096]")
    init_channels: int = _range(16, "[1, 4096]")
    stem: str = _choices("imagenet", "cifar", default="imagenet")
    stem_pool: bool = True
    dropout: float = _range(0.0, "[0, 1)")
    memory_efficient: bool = False


@dataclass
class AttentionConfig:
    """Pixel attention network Υ (Eq. 2) and crop-and-zoom (Eq. 5)."""

    hidden: int = _range(128, "[1, 65536]")
    grid: int = _range(7, "[1, 64]")
    side_min: float = _range(0.3, "(0, 1]")
    side_max: float = _range(0.6, "(0, 1]")
    crop: str = _choices("affine", "boxcar", default="affine")
    mask_steepness: float = _range(50.0, "(0, inf)")
    #: The PAN reads the coarser scale's map without passing gradient back into that scale's backbone
    #: (the finer scales' losses train the PAN, not the coarser network; see README, Training dynamics).
    detach_input: bool = True
    #: Fraction of the training faces whose S3 square (in S2's coordinates) is that of another face of
    #: the batch, its geometry detached: S3's classifier then cannot read the expression from where the
    #: PAN puts the square, only from what it shows (README, Training dynamics). 0: the paper's HPAL.
    swap: float = _range(0.0, "[0, 1]")


@dataclass
class ModelConfig:
    arch: str = _choices("phanet", "densenet", "vgg19", "hog_fc", default="phanet")
    image_size: int = _range(224, "[32, 4096]")
    input_size: int | None = _range(None, "[32, 8192]")
    scales: list[str] = field(default_factory=lambda: list(SCALE_NAMES))
    joint_sa: bool = True
    sal_hidden: int = _range(64, "[1, 65536]")
    sal_form: str = _choices("literal", "sigmoid", default="literal")
    head_hidden: int = _range(512, "[1, 65536]")
    lambda_form: str = _choices("bounded", "free", default="bounded")
    #: Channel multiplier of the VGG-19 baseline.
    width: float = _range(1.0, "(0, 64]")
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)


@dataclass
class LossConfig:
    """Which terms of Eq. 9 are used (Table VIII rows) and their constants."""

    setting: str = _choices(*LOSS_SETTINGS, default="multi")
    constraint_factor: bool = True
    factor_scale: float = _range(12.0, "[0, inf)")
    margin: float = _range(0.05, "[0, 1]")
    s1_loss: bool = True
    #: Keep each PAN's raw outputs (a_x, a_y, a_l) within ± this bound by a squared penalty on what
    #: exceeds it, so that the square's tanh/sigmoid stays where it has a gradient; null: no bound.
    pan_limit: float | None = _range(None, "(0, inf)")
    #: Keep the batch mean of each SAL pre-activation (z of Eq. 7) within ± this bound by a squared
    #: penalty on what exceeds it, so that the gate stays where it varies with the face instead of
    #: drifting to c = 1, where every face gets the same weight; the spread of z over the faces is not
    #: penalised. null: no bound.
    sal_limit: float | None = _range(None, "(0, inf)")
    #: ``balanced``: every expression cross-entropy weighs a sample by N / (C n_c), the inverse of its
    #: class's share of the training set (:func:`phanet.losses.balanced_class_weights`); ``none``: Eq. 10
    #: as written, every sample alike.
    class_weights: str = _choices("none", "balanced", default="none")


@dataclass
class OptimConfig:
    name: str = _choices("sgd", "adam", "adamw", default="sgd")
    lr: float = _range(0.01, "(0, inf)")
    momentum: float = _range(0.9, "[0, 1)")
    nesterov: bool = False
    weight_decay: float = _range(1e-4, "[0, inf)")
    lr_decay: float = _range(0.1, "(0, 1]")
    #: ``multistep``: ×lr_decay at ``milestones``; ``plateau``: ×lr_decay after ``plateau_patience``
    #: epochs without a better validation FER accuracy.
    scheduler: str = _choices("multistep", "plateau", default="multistep")
    milestones: list[float] = _range(lambda: [0.5, 0.75], "[0, inf)")
    plateau_patience: int = _range(2, "[0, 1e6]")
    #: Learning-rate multipliers per part of the network, e.g. ``{SAL: 0.1}``; the parts are those of
    #: :func:`phanet.training.dynamics.parameter_groups` (S1_backbone, PAN_S2, SAL, head_lambda, ...).
    part_lr: dict[str, float] = field(default_factory=dict)


@dataclass
class PanInitConfig:
    """The paper's PAN initialisation: regress each square onto the highest response of the coarser map."""

    enabled: bool = True
    warmup_epochs: int = _range(1, "[0, 1e6]")
    steps: int = _range(50, "[0, 1e9]")
    lr: float = _range(0.01, "(0, inf)")
    hold_sal: bool = False


@dataclass
class TrainConfig:
    epochs: int = _range(150, "[1, 1e6]")
    batch_size: int = _range(32, "[1, 1e6]")
    schedule: str = _choices("joint", "alternating", default="joint")
    pan_init: PanInitConfig = field(default_factory=PanInitConfig)
    #: Gradient norm clipping (0: off).
    gradient_clip: float = _range(5.0, "[0, inf)")
    #: What the clipping threshold applies to: the norm of the whole network's gradient, or each
    #: part's own (PhaNet's parts, see ``optim.part_lr``), so that one part's large gradient does not
    #: shrink every other part's step.
    gradient_clip_by: str = _choices("network", "part", default="network")
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = _range(1, "[1, 1e6]")
    precision: str = "auto"
    deterministic: bool = False
    compile: str = _choices("off", "default", "reduce-overhead", "max-autotune", default="off")
    channels_last: bool | None = None
    threads: int | None = _range(None, "[1, 4096]")
    #: Steps between progress-bar updates (and, on a GPU, between checks for a non-finite loss).
    log_every_n_steps: int = _range(10, "[1, 1e9]")
    dynamics: int = _range(0, "[0, 1e9]")
    #: Exponential moving average of the weights (decay per optimiser step; 0: off). With it, validation,
    #: the best checkpoint and evaluation use the averaged weights; training steps the raw ones
    #: (Lightning's ``EMAWeightAveraging``; README, Training dynamics).
    ema: float = _range(0.0, "[0, 1)")
    #: Stop after this many epochs without a better validation FER accuracy (0: run every epoch);
    #: the best checkpoint is the one evaluated.
    early_stop: int = _range(0, "[0, 1e6]")
    #: The plateau schedule and early stopping count epochs without a better validation FER accuracy
    #: only once it has exceeded chance (the largest expression's share of the validation set) by this
    #: much, a fraction; before that, a network still at chance keeps its learning rate and is not
    #: stopped (README, Training dynamics). null: count from the first epoch.
    chance_margin: float | None = _range(0.05, "[0, 1]")
    #: Stop after this many minutes of training (null: no limit); the best checkpoint so far counts.
    max_minutes: float | None = _range(None, "(0, 1e8]")


@dataclass
class SplitConfig:
    """Subject-independent split: fractions of subjects (< 1) or subject counts (>= 1)."""

    val: float = _range(0.15, "[0, 1e9]")
    test: float = _range(0.15, "[0, 1e9]")
    seed: int = _range(0, f"[0, {MAX_SEED}]")
    test_subjects: list[str] | None = None


@dataclass
class DataConfig:
    dataset: str = "synth"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    flip: bool = True
    jitter: float = _range(0.05, "[0, 0.5)")
    num_workers: int = _range(0, "[0, 1024]")
    cache: bool = True
    cache_dir: str | None = None


@dataclass
class Config:
    seed: int = _range(0, f"[0, {MAX_SEED}]")
    out: str = "runs/train"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def input_size(self) -> int:
        """Side of the images fed to the model (``model.input_size``, or ``model.image_size``)."""
        return self.model.input_size or self.model.image_size


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str, meta: dict[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where, meta)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise PhanetError(f"config: {where}: expected a mapping, got {show(value)}")
        return _build(tp, value, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise PhanetError(f"config: {where}: expected a list of {_type_name(item)}, got {show(value)}")
        return [_coerce(v, item, f"{where}[{i}]", {}) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise PhanetError(f"config: {where}: expected a mapping, got {show(value)}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise PhanetError(f"config: {where}: expected true or false, got {show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PhanetError(f"config: {where}: expected an integer, got {show(value)}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-4" (no dot) as text
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PhanetError(f"config: {where}: expected a number, got {show(value)}")
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float
            raise PhanetError(f"config: {where}: expected a number, got {show(value)}") from None
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise PhanetError(f"config: {where}: expected text, got {show(value)}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise PhanetError(f"config: {where}: expected one of {', '.join(choices)}, got {show(value)}")
        return value
    return value


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
#: preset's multipliers) instead of merging into it like a config section.
MAPPING_SETTINGS = ("options", "part_lr")


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in MAPPING_SETTINGS:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("phanet.configs").iterdir() if p.name.endswith(".yaml"))


def read_yaml(source: str | Path) -> dict[str, Any]:
    """A preset name (``paper``, ``demo``) or a YAML file path, as a mapping."""
    text: str
    if isinstance(source, str) and source in preset_names():
        text = resources.files("phanet.configs").joinpath(f"{source}.yaml").read_text()
        where = f"preset {source!r}"
    else:
        path, where = Path(source), shorten(source, 300)
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PhanetError.about("config", "{where} is not UTF-8 text (byte {byte:#04x} at position {at}); "
                                    "save the YAML file as UTF-8", where=where, byte=exc.object[exc.start],
                                    at=exc.start) from None
        except OSError:
            raise PhanetError.about("config", "{where} is neither a preset ({presets}) nor a readable YAML file",
                                    where=where, presets=", ".join(preset_names())) from None
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PhanetError(f"{where}: not valid YAML ({shorten(str(exc).splitlines()[0])})") from None
    if not isinstance(values, dict):
        raise PhanetError(f"{where}: expected a mapping of config sections at the top level")
    return values


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "data.options.preset=kdef"]`` as a nested mapping (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise PhanetError(f"override {show(item)}: expected KEY=VALUE, e.g. train.epochs=10")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
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
        try:
            options[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            options[key.strip()] = raw
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
    config = _build(Config, _migrate(values))
    validate(config)
    return config


def load_config(source: str | Path | list[str | Path] | None = None, overrides: list[str] | None = None) -> Config:
    """Presets and/or YAML files merged left to right (e.g. ``["paper", "kdef"]``: the paper's
    hyper-parameters with KDEF's data section), plus dotted overrides, validated."""
    sources = [] if source is None else [source] if isinstance(source, (str, Path)) else list(source)
    values: dict[str, Any] = {}
    # each source under the current names before merging: an old name in a user's file overrides the preset
    for item in sources:
        values = _merge(values, _migrate(read_yaml(item)))
    values = _merge(values, _migrate(parse_overrides(overrides or [])))
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


def validate(config: Config) -> None:
    """Every number in its interval, then the checks across fields that a type alone cannot express."""
    _check_ranges(config)
    m, a = config.model, config.model.attention
    if m.input_size is not None and (m.input_size < m.image_size or m.input_size % m.image_size):
        raise PhanetError(f"config: model.input_size: expected a multiple of model.image_size ({m.image_size}), "
                          f"got {m.input_size}")
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
    if config.optim.scheduler == "plateau" and config.optim.lr_decay == 1:
        raise PhanetError("config: optim.lr_decay: the plateau schedule needs a factor below 1, got 1.0")
    for part, factor in config.optim.part_lr.items():
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < math.inf:
            raise PhanetError(f"config: optim.part_lr.{shorten(str(part))}: expected a positive multiplier, "
                              f"got {show(factor)}")
    for key in ("val", "test"):
        count = getattr(config.data.split, key)
        if count >= 1 and not count.is_integer():
            raise PhanetError(f"config: data.split.{key}: expected a fraction in [0, 1) or a whole number of "
                              f"subjects, got {count}")


def dump_yaml(config: Config, path: str | Path) -> None:
    """Write the resolved ``config`` to ``path`` (atomically)."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
