"""Reading a checkpoint of ``phanet train``: its contents checked, and the network it holds.

A checkpoint is Lightning's dictionary, read with ``torch.load(weights_only=True)`` (nothing is
unpickled) from a regular file whose archive was checked first (:func:`check_archive`):
``hyper_parameters`` hold the resolved config and the class lists, ``state_dict`` the weights of the
training module, whose network is its ``model``. Rebuilding the network needs neither Lightning nor
the training code: the config names the network and its arguments
(:meth:`~phanet.config.ModelConfig.arguments`), and :func:`~phanet.models.create_model` builds it,
once :func:`check_memory` has found that it fits the machine.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from phanet.checks import class_names, shorten
from phanet.config import Config, config_from_dict
from phanet.errors import PhanetError
from phanet.files import open_regular, size_text
from phanet.models import create_model
from phanet.models.base import Network
from phanet.models.memory import MemoryEstimate, estimate_memory
from phanet.runtime import available_memory

#: The prefix of the network's weights in the training module's state dict.
NETWORK_PREFIX = "model."


#: Largest ratio of an archive entry's size to its compressed size: floating-point weights compress
#: hardly at all (``torch.save`` stores them uncompressed), while a tensor of zeros compressed a
#: thousand times is a "zip bomb".
MAX_INFLATION = 10


def check_archive(path: str | Path, parameter: str) -> None:
    """Refuse, from the archive's directory and before anything is inflated, a checkpoint that is not a
    regular file, holds an entry that inflates more than :data:`MAX_INFLATION` times (beyond 1 MB), or
    inflates to more memory than this machine has free. A file that is not a zip archive is left to
    ``torch.load`` to refuse."""
    try:
        with open_regular(path) as handle:
            try:
                entries = zipfile.ZipFile(handle).infolist()
            except (zipfile.BadZipFile, ValueError, EOFError):
                return
    except PhanetError as exc:
        raise PhanetError.about(parameter, "{reason}", reason=exc) from None
    except OSError as exc:
        raise PhanetError.about(parameter, "{path}: {reason}", path=path, reason=exc.strerror or type(exc).__name__) from None
    for entry in entries:
        if entry.file_size > max(MAX_INFLATION * entry.compress_size, 1_000_000):
            raise PhanetError.about(
                parameter,
                "{path} holds {name}, {compressed} that would inflate to {size}; a checkpoint's weights do not "
                "compress like that (refused before inflating it)",
                path=path,
                name=shorten(repr(entry.filename)),
                compressed=size_text(entry.compress_size),
                size=size_text(entry.file_size),
            )
    total, available = sum(entry.file_size for entry in entries), available_memory()
    if total > available:
        raise PhanetError.about(
            parameter,
            "{path} holds {size}, more than the {available} this machine has free",
            path=path,
            size=size_text(total),
            available=size_text(available),
        )


def read_checkpoint(path: str | Path, parameter: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A phanet checkpoint's contents, refused with one line naming ``parameter`` and the file when it is
    not a regular file, unreadable, foreign, too large (:func:`check_archive`), or holds a NaN or
    infinite weight."""
    check_archive(path, parameter)
    try:
        with warnings.catch_warnings():
            # What the unpickler says of a foreign pickle (its protocol) on the way to the refusal below.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\._weights_only_unpickler")
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a phanet checkpoint"
        raise PhanetError.about(
            parameter, "{path} is not a readable checkpoint ({kind})", path=path, kind=type(exc).__name__
        ) from None
    params = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    if (
        not isinstance(params, dict)
        or not {"config", "expressions", "poses"} <= set(params)
        or not isinstance(params["config"], dict)
        or not isinstance(payload.get("state_dict"), dict)
    ):
        raise PhanetError.about(parameter, "{path} is not a phanet checkpoint (no config and class lists inside)", path=path)
    for key in ("expressions", "poses"):
        try:
            class_names(params[key], key, allow_empty=key == "poses")
        except PhanetError as exc:
            raise PhanetError.about(parameter, "{path}: {reason}", path=path, reason=exc) from None
    for name, value in payload["state_dict"].items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise PhanetError.about(
                parameter, "{path} holds non-finite weights (NaN or infinity), first in {name}", path=path, name=repr(name)
            )
    return payload


def trained_on(config: Config) -> str:
    """The data a config trains on, in words: the dataset, its preset or root, and its options."""
    data = config.data
    options = ", ".join(f"{key} {value}" for key, value in data.options.items())
    where = f" at {data.root}" if data.root else ""
    return shorten(f"{data.dataset}{where}" + (f" ({options})" if options else ""), 200)


_BACKBONE = ("model.backbone.depth", "model.backbone.growth_rate", "model.backbone.init_channels")
#: The settings that make each architecture's network large, as a refusal names them.
SIZE_KEYS = {
    "phanet": (*_BACKBONE, "model.image_size", "model.input_size"),
    "densenet": (*_BACKBONE, "model.image_size", "model.input_size"),
    "vgg19": ("model.width", "model.head_hidden", "model.image_size", "model.input_size"),
    "hog_fc": ("model.head_hidden", "model.image_size", "model.input_size"),
}


def _value(config: Config, key: str) -> object:
    value: object = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def check_memory(
    config: Config,
    expressions: list[str],
    poses: list[str],
    batch: int,
    training: bool,
    parameter: str | None = None,
    available: int | None = None,
) -> MemoryEstimate:
    """The memory estimate of ``config``'s network (:func:`~phanet.models.memory.estimate_memory`),
    refused with one line naming the size settings (and ``parameter``) when running batches of
    ``batch`` (training them with ``training``) needs more than this machine's ``available`` memory
    (default :func:`~phanet.runtime.available_memory`), before anything is allocated."""
    estimate = estimate_memory(
        lambda: create_model(config.model.arch, expressions=list(expressions), poses=list(poses), **config.model.arguments()),
        config.model.image_size,
        config.input_size,
    )
    needed = estimate.bytes(batch, training)
    available = available_memory() if available is None else available
    if needed > available:
        keys = SIZE_KEYS.get(config.model.arch, ("model.image_size", "model.input_size"))
        settings = ", ".join(f"{key} {_value(config, key)}" for key in keys if _value(config, key) is not None)
        task = f"to train on batches of {batch}" if training else "to run"
        raise PhanetError.about(
            parameter,
            "the network needs about {needed} {task} ({parameters:,} parameters, {features} of feature maps per "
            "image), more than the {available} this machine has free; lower the sizes ({settings})"
            + (" or {train.batch_size} ({batch})" if training else ""),
            needed=size_text(needed),
            task=task,
            parameters=estimate.parameters,
            features=size_text(4 * estimate.feature_values),
            available=size_text(available),
            settings=settings,
            batch=batch,
        )
    return estimate


def build_network(config: Config, expressions: list[str], poses: list[str]) -> Network:
    """The (untrained) network of ``config`` for these class lists; refused with one line when it cannot
    run one image in this machine's memory (:func:`check_memory`)."""
    check_memory(config, expressions, poses, batch=1, training=False, parameter="model")
    network = create_model(config.model.arch, expressions=list(expressions), poses=list(poses), **config.model.arguments())
    network.info.trained_on = trained_on(config)
    return network


def load_network(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Network, Config]:
    """The trained network of a checkpoint, in evaluation mode, and the config it was trained with.

    Refused with one line naming ``checkpoint`` and the file: a missing, unreadable or foreign file,
    non-finite weights, or weights that do not fit the network its config describes."""
    path = Path(path)
    if not path.exists():
        raise PhanetError.about("checkpoint", "{path} not found", path=path)
    payload = read_checkpoint(path, "checkpoint", map_location)  # a pipe or a device is refused unread
    params = payload["hyper_parameters"]
    config = config_from_dict(params["config"])
    try:
        network = build_network(config, params["expressions"], params["poses"])
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise PhanetError.about(
            "checkpoint",
            "{path} does not match its config ({reason})",
            path=path,
            reason=shorten(str(exc).splitlines()[0] if str(exc) else type(exc).__name__),
        ) from None
    weights = {
        key[len(NETWORK_PREFIX) :]: value for key, value in payload["state_dict"].items() if key.startswith(NETWORK_PREFIX)
    }
    foreign = [key for key in payload["state_dict"] if not key.startswith(NETWORK_PREFIX)]
    try:
        missing, unexpected = network.load_state_dict(weights, strict=False)
    except RuntimeError as exc:
        raise PhanetError.about(
            "checkpoint", "{path} does not match its config ({reason})", path=path, reason=str(exc).splitlines()[0][:200]
        ) from None
    unexpected = [NETWORK_PREFIX + key for key in unexpected] + foreign
    if missing or unexpected:
        key = NETWORK_PREFIX + missing[0] if missing else unexpected[0]
        raise PhanetError.about(
            "checkpoint",
            "{path} does not match its config (parameter {key} {how})",
            path=path,
            key=repr(key),
            how="missing" if missing else "unexpected",
        )
    return network.to(map_location).eval(), config
