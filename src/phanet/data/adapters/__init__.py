"""Adapters for the paper's datasets, the generic format and the built-in synth data; importing this
package registers them with the registry."""

from phanet.data.adapters import affectnet, bu3dfe, generic, kdef, multipie, sfew, synth  # noqa: F401
