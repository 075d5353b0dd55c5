"""Configuration as data: dataclasses loaded from YAML, validated once, with messages naming the field.

The schema (:mod:`phanet.config.schema`) is one dataclass per section; :mod:`phanet.config.loading`
reads presets, YAML files and dotted overrides into it::

    config = load_config("demo", ["train.epochs=3", "model.image_size=64"])
"""

from __future__ import annotations

from phanet.config.loading import (
    config_from_dict,
    dump_yaml,
    load_config,
    parse_options,
    parse_overrides,
    preset_names,
    read_yaml,
    validate,
)
from phanet.config.schema import (
    LOSS_SETTINGS,
    MAX_SEED,
    POSE_LOSS_SETTINGS,
    SCALE_NAMES,
    AttentionConfig,
    BackboneConfig,
    Config,
    DataConfig,
    Interval,
    LossConfig,
    ModelConfig,
    OptimConfig,
    PanInitConfig,
    SplitConfig,
    TrainConfig,
    show,
)

__all__ = [
    "LOSS_SETTINGS",
    "MAX_SEED",
    "POSE_LOSS_SETTINGS",
    "SCALE_NAMES",
    "AttentionConfig",
    "BackboneConfig",
    "Config",
    "DataConfig",
    "Interval",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "PanInitConfig",
    "SplitConfig",
    "TrainConfig",
    "config_from_dict",
    "dump_yaml",
    "load_config",
    "parse_options",
    "parse_overrides",
    "preset_names",
    "read_yaml",
    "show",
    "validate",
]
