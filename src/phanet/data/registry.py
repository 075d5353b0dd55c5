"""Named dataset loaders: ``load_dataset("kdef", root, **options)`` returns a :class:`LabeledFaces`.

Each adapter registers a loader function with :func:`register_dataset`. The loader's keyword
arguments are the dataset's options (``data.options`` in a config); unknown options are rejected
with a message that lists the known ones.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from phanet.compat import dataset_option
from phanet.data.records import LabeledFaces
from phanet.errors import PhanetError

Loader = Callable[..., LabeledFaces]

_LOADERS: dict[str, tuple[Loader, str]] = {}

# Modules that register loaders when imported; imported lazily so that `phanet --help` stays fast.
_ADAPTER_MODULES = ("phanet.data.manifest", "phanet.data.adapters")


def register_dataset(name: str, description: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(root, **options) -> LabeledFaces`` under ``name``."""

    def decorate(loader: Loader) -> Loader:
        _LOADERS[name] = (loader, description)
        return loader

    return decorate


def _import_adapters() -> None:
    for module in _ADAPTER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def available_datasets() -> dict[str, str]:
    """Registered dataset names and their one-line descriptions."""
    _import_adapters()
    return {name: desc for name, (_, desc) in sorted(_LOADERS.items())}


def dataset_options(name: str) -> dict[str, Any]:
    """Option names of dataset ``name`` with their defaults (``inspect.Parameter.empty`` when required)."""
    loader = _get(name)
    params = list(inspect.signature(loader).parameters.values())[1:]
    return {p.name: p.default for p in params if p.kind is not p.VAR_KEYWORD}


def _get(name: str) -> Loader:
    _import_adapters()
    if name not in _LOADERS:
        raise PhanetError(f"data.dataset: unknown dataset {name!r} (expected one of {', '.join(sorted(_LOADERS))})")
    return _LOADERS[name][0]


def load_dataset(name: str, root: str | None, **options: Any) -> LabeledFaces:
    """Load dataset ``name`` from ``root`` with adapter ``options``; one-line errors for bad options."""
    loader = _get(name)
    known = dataset_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        listing = ", ".join(sorted(known)) or "none"
        new = dataset_option(name, unknown[0])
        if new is not None:
            raise PhanetError(f"data.options.{unknown[0]}: now called data.options.{new} (known: {listing})")
        raise PhanetError(f"data.options.{unknown[0]}: unknown option for dataset {name!r} (known: {listing})")
    faces = loader(root, **options)
    if not faces.samples:
        where = f" under {root}" if root else ""
        raise PhanetError(f"data: dataset {name!r} has no usable samples{where}")
    return faces
