"""Adapters for the paper's datasets; importing this package registers them with the registry."""

from phanet.data.adapters import affectnet, bu3dfe, generic, kdef, multipie, sfew  # noqa: F401
