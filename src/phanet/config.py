"""Configuration as data: dataclasses loaded from YAML, validated once, with messages naming the field.

``load_config("demo", ["train.epochs=3", "model.image_size=64"])`` reads a packaged preset (or a YAML
file), applies dotted overrides (values parsed as YAML), and validates every key and type. Presets
live in ``phanet/configs/*.yaml``: ``paper`` (the paper's hyper-parameters) and ``demo`` (CPU-sized).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from phanet.errors import PhanetError

#: Scales of Table VI: no attention on the whole image (N_S1) and hierarchical attention at S2, S3.
SCALE_NAMES = ("N_S1", "H_S2", "H_S3")
#: Loss settings of Table VIII.
LOSS_SETTINGS = ("e", "att_e", "p_e", "att_e_p", "multi")


def _choices(*values: str, default: str) -> Any:
    return field(default=default, metadata={"choices": values})


@dataclass
class BackboneConfig:
    """DenseNet backbone (Eq. 1), one per scale."""

    depth: int = 40
    growth_rate: int = 12
    init_channels: int = 16
    stem: str = _choices("imagenet", "cifar", default="imagenet")
    stem_pool: bool = True
    dropout: float = 0.0
    memory_efficient: bool = False


@dataclass
class AttentionConfig:
    """Pixel attention network Υ (Eq. 2) and crop-and-zoom (Eq. 5)."""

    hidden: int = 128
    grid: int = 7
    side_min: float = 0.3
    side_max: float = 0.6
    crop: str = _choices("affine", "boxcar", default="affine")
    mask_steepness: float = 50.0
    #: The PAN reads the coarser scale's map without passing gradient back into that scale's backbone
    #: (the finer scales' losses train the PAN, not the coarser network; see README, Training dynamics).
    detach_input: bool = True


@dataclass
class ModelConfig:
    arch: str = _choices("phanet", "densenet", "vgg19", "hog_fc", default="phanet")
    image_size: int = 224
    source_size: int | None = None
    scales: list[str] = field(default_factory=lambda: list(SCALE_NAMES))
    joint_sa: bool = True
    sal_hidden: int = 64
    sal_form: str = _choices("literal", "sigmoid", default="literal")
    head_hidden: int = 512
    lambda_form: str = _choices("bounded", "free", default="bounded")
    width: float = 1.0
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)


@dataclass
class LossConfig:
    """Which terms of Eq. 9 are used (Table VIII rows) and their constants."""

    setting: str = _choices(*LOSS_SETTINGS, default="multi")
    constraint_factor: bool = True
    factor_scale: float = 12.0
    margin: float = 0.05
    s1_loss: bool = True


@dataclass
class OptimConfig:
    name: str = _choices("sgd", "adam", "adamw", default="sgd")
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    lr_decay: float = 0.1
    #: ``multistep``: ×lr_decay at ``milestones``; ``plateau``: ×lr_decay after ``plateau_patience``
    #: epochs without a better validation FER accuracy.
    scheduler: str = _choices("multistep", "plateau", default="multistep")
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    plateau_patience: int = 2
    #: Learning-rate multipliers per part of the network, e.g. ``{SAL: 0.1}``; the parts are those of
    #: :func:`phanet.training.dynamics.parameter_groups` (S1_backbone, PAN_S2, SAL, head_lambda, ...).
    part_lr: dict[str, float] = field(default_factory=dict)


@dataclass
class PanInitConfig:
    """The paper's PAN initialisation: regress each square onto the highest response of the coarser map."""

    enabled: bool = True
    warmup_epochs: int = 1
    steps: int = 50
    lr: float = 0.01
    hold_sal: bool = False


@dataclass
class TrainConfig:
    epochs: int = 150
    batch_size: int = 32
    schedule: str = _choices("joint", "alternating", default="joint")
    pan_init: PanInitConfig = field(default_factory=PanInitConfig)
    gradient_clip: float = 5.0
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "auto"
    deterministic: bool = False
    compile: str = _choices("off", "default", "reduce-overhead", "max-autotune", default="off")
    channels_last: bool | None = None
    threads: int | None = None
    log_every_n_steps: int = 10
    dynamics: int = 0
    #: Stop after this many epochs without a better validation FER accuracy (0: run every epoch);
    #: the best checkpoint is the one evaluated.
    early_stop: int = 0
    #: Stop after this many minutes of training (null: no limit); the best checkpoint so far counts.
    max_minutes: float | None = None


@dataclass
class SplitConfig:
    """Subject-independent split: fractions of subjects (< 1) or subject counts (>= 1)."""

    val: float = 0.15
    test: float = 0.15
    seed: int = 0
    test_subjects: list[str] | None = None


@dataclass
class DataConfig:
    dataset: str = "synth"
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    flip: bool = True
    jitter: float = 0.05
    num_workers: int = 0
    cache: bool = True
    cache_dir: str | None = None


@dataclass
class Config:
    seed: int = 0
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
        """Side of the images fed to the model (``model.source_size``, or ``model.image_size``)."""
        return self.model.source_size or self.model.image_size


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
            raise PhanetError(f"config: {where}: expected a mapping, got {value!r}")
        return _build(tp, value, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise PhanetError(f"config: {where}: expected a list of {_type_name(item)}, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]", {}) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise PhanetError(f"config: {where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise PhanetError(f"config: {where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PhanetError(f"config: {where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-4" (no dot) as text
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PhanetError(f"config: {where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise PhanetError(f"config: {where}: expected text, got {value!r}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise PhanetError(f"config: {where}: expected one of {', '.join(choices)}, got {value!r}")
        return value
    return value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else str(unknown[0])
        raise PhanetError(f"config: unknown key {where} (known here: {', '.join(fields)})")
    kwargs = {}
    for name, value in values.items():
        where = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], where, dict(fields[name].metadata))
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "options":
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
        path = Path(source)
        if not path.is_file():
            raise PhanetError(f"--config: {source} is neither a preset ({', '.join(preset_names())}) nor a YAML file")
        text, where = path.read_text(), str(path)
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PhanetError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise PhanetError(f"{where}: expected a mapping of config sections at the top level")
    return values


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["train.epochs=3", "data.options.preset=kdef"]`` as a nested mapping (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise PhanetError(f"override {item!r}: expected KEY=VALUE, e.g. train.epochs=10")
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
                raise PhanetError(f"override {item!r}: {part} is set twice")
        node[parts[-1]] = value
    return nested


def parse_options(items: list[str], flag: str = "--option") -> dict[str, Any]:
    """``["classes=7", "pans=[-45, 0, 45]"]`` as ``{"classes": 7, "pans": [-45, 0, 45]}`` (values read as YAML)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise PhanetError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} classes=7")
        try:
            options[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            options[key.strip()] = raw
    return options


def config_from_dict(values: dict[str, Any]) -> Config:
    config = _build(Config, values)
    validate(config)
    return config


def load_config(source: str | Path | list[str | Path] | None = None, overrides: list[str] | None = None) -> Config:
    """Presets and/or YAML files merged left to right (e.g. ``["paper", "kdef"]``: the paper's
    hyper-parameters with KDEF's data section), plus dotted overrides, validated."""
    sources = [] if source is None else [source] if isinstance(source, (str, Path)) else list(source)
    values: dict[str, Any] = {}
    for item in sources:
        values = _merge(values, read_yaml(item))
    values = _merge(values, parse_overrides(overrides or []))
    return config_from_dict(values)


def validate(config: Config) -> None:
    """Checks across fields that a type alone cannot express."""
    m, a = config.model, config.model.attention
    if m.image_size < 32:
        raise PhanetError(f"config: model.image_size: expected at least 32 pixels, got {m.image_size}")
    if m.source_size is not None and (m.source_size < m.image_size or m.source_size % m.image_size):
        raise PhanetError(f"config: model.source_size: expected a multiple of model.image_size ({m.image_size}), "
                          f"got {m.source_size}")
    if not m.scales:
        raise PhanetError("config: model.scales: expected at least one of N_S1, H_S2, H_S3")
    for scale in m.scales:
        if scale not in SCALE_NAMES:
            raise PhanetError(f"config: model.scales: unknown scale {scale!r} (expected N_S1, H_S2, H_S3)")
    if len(set(m.scales)) != len(m.scales):
        raise PhanetError(f"config: model.scales: a scale is listed twice in {m.scales}")
    if not 0 < a.side_min <= a.side_max <= 1:
        raise PhanetError(f"config: model.attention: expected 0 < side_min <= side_max <= 1, got {a.side_min}, {a.side_max}")
    if (m.backbone.depth - 4) % 3:
        raise PhanetError(f"config: model.backbone.depth: expected 3n+4 (e.g. 40), got {m.backbone.depth}")
    for name in ("epochs", "batch_size"):
        if getattr(config.train, name) < 1:
            raise PhanetError(f"config: train.{name}: expected at least 1, got {getattr(config.train, name)}")
    if m.arch != "phanet" and config.loss.setting not in ("e", "p_e"):
        raise PhanetError(
            f"config: loss.setting: the {m.arch} baseline has no attention or task weights; use p_e or e, "
            f"not {config.loss.setting!r}"
        )
    if config.optim.lr <= 0:
        raise PhanetError(f"config: optim.lr: expected a positive learning rate, got {config.optim.lr}")
    if config.train.threads is not None and config.train.threads < 1:
        raise PhanetError(f"config: train.threads: expected at least 1 (or null: every usable core), "
                          f"got {config.train.threads}")
    for key, epochs in (("train.early_stop", config.train.early_stop),
                        ("optim.plateau_patience", config.optim.plateau_patience)):
        if epochs < 0:
            raise PhanetError(f"config: {key}: expected epochs (0 or more), got {epochs}")
    if config.train.max_minutes is not None and not config.train.max_minutes > 0:
        raise PhanetError(f"config: train.max_minutes: expected a positive number of minutes (or null), "
                          f"got {config.train.max_minutes}")
    for part, factor in config.optim.part_lr.items():
        if not isinstance(factor, (int, float)) or not factor > 0 or factor != factor:
            raise PhanetError(f"config: optim.part_lr.{part}: expected a positive multiplier, got {factor!r}")
    if config.train.dynamics < 0:
        raise PhanetError(f"config: train.dynamics: expected steps between records (0 = off), got {config.train.dynamics}")
    if config.data.num_workers < 0:
        raise PhanetError(f"config: data.num_workers: expected 0 or more, got {config.data.num_workers}")
    if not 0 <= config.data.jitter < 0.5:
        raise PhanetError(f"config: data.jitter: expected a fraction in [0, 0.5), got {config.data.jitter}")


def dump_yaml(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
