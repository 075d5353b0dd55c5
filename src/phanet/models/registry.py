"""Networks by name: ``create_model("phanet", image_size=64)``, ``create_model("densenet40")``.

Every network of the package is registered by a small builder function decorated with
:func:`register_model`, whose name is the network's name. Builders take plain keyword arguments (the
class lists ``expressions`` and ``poses``, sizes, nested settings as mappings) and return an
``nn.Module`` whose ``forward`` gives a :class:`~phanet.models.output.PhaNetOutput` and which carries
its :class:`~phanet.models.info.ModelInfo` (``model.info``) and names its parameter groups
(``model.parameter_groups()``). The built-in networks register themselves when their modules are
imported, which :func:`create_model` and :func:`list_models` do on first use, so that importing this
module stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phanet.models.base import Network

Builder = Callable[..., "Network"]

_BUILDERS: dict[str, Builder] = {}
_BUILTIN_MODULES = ("phanet.models.phanet", "phanet.models.baselines")


def register_model(builder: Builder) -> Builder:
    """Decorator: register ``builder`` under its function name (an existing name is an error)."""
    name = builder.__name__
    if name in _BUILDERS and _BUILDERS[name] is not builder:
        raise ValueError(f"a model named {name!r} is already registered")
    _BUILDERS[name] = builder
    return builder


def _import_builtin() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def list_models() -> list[str]:
    """The registered network names, sorted."""
    _import_builtin()
    return sorted(_BUILDERS)


def model_builder(name: str) -> Builder:
    """The builder registered as ``name``; ``ValueError`` naming the known ones otherwise."""
    _import_builtin()
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r} (registered: {', '.join(sorted(_BUILDERS))})")
    return _BUILDERS[name]


def create_model(name: str, **kwargs: Any) -> Network:
    """The network registered as ``name``, built with ``kwargs`` (see each builder's docstring).

    A ``ValueError`` naming the network says when its weights would not fit in the memory this process
    may still take (counted on PyTorch's ``meta`` device first, where nothing is allocated), instead of
    an allocator's error or the system ending the process."""
    import torch

    builder = model_builder(name)
    if torch.get_default_device().type != "meta":
        from phanet.files import size_text
        from phanet.models.memory import FLOAT, on_meta
        from phanet.runtime import available_memory

        needed, free = FLOAT * on_meta(lambda: builder(**kwargs))[1], available_memory()
        if needed > free:
            raise ValueError(
                f"model {name!r} with these arguments holds {size_text(needed)} of weights, more than the "
                f"{size_text(free)} this machine has free"
            )
    return builder(**kwargs)
