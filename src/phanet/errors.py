"""User-facing errors.

Anything a user can cause (a bad config key, a missing file, a label outside the class list) raises
:class:`PhanetError` with one line that names the field, file or step and what was expected. The
command-line entry point prints that line and exits with status 2 instead of a traceback.

Library functions name their own parameters, not command-line flags: ``train(config, resume=True)``
on a folder without a run raises ``resume: runs/x holds no run to resume``. Such an error is made
with :meth:`PhanetError.about`, which keeps the parameter names apart from the text, and each command
renders it with the flags it offers for them (:meth:`PhanetError.render`), so ``phanet train`` says
``--resume: runs/x holds no run to resume``.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any


class _Fields(string.Formatter):
    """Fills ``{name}`` from the error's values; any other field is a parameter, written as ``flag``
    names it. Whole field names are looked up, so dotted config keys (``{train.epochs}``) work."""

    def __init__(self, values: dict[str, Any], flag: Callable[[str], str]) -> None:
        self.values = values
        self.flag = flag

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        if field_name in self.values:
            return self.values[field_name], field_name
        return self.flag(field_name), field_name


def _as_is(name: str) -> str:
    return name


class PhanetError(Exception):
    """A user mistake or an unusable input, reported as one line.

    ``PhanetError(line)`` is a finished line. :meth:`about` makes one about a parameter.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.parameter: str | None = None
        self.template: str | None = None
        self.values: dict[str, Any] = {}

    @classmethod
    def about(cls, parameter: str | None, template: str, **values: Any) -> PhanetError:
        """An error about ``parameter`` (a library function's argument or a dotted config key), which
        starts the line. ``template`` is formatted with ``values`` (user text such as paths goes
        there, never into the template itself); its other ``{name}`` fields name further parameters,
        e.g. the advice ``use {resume} to continue``."""
        error = cls.__new__(cls)
        error.parameter, error.template, error.values = parameter, template, values
        Exception.__init__(error, error.render())
        return error

    def render(self, flag: Callable[[str], str] = _as_is) -> str:
        """The line with each parameter written as ``flag(name)`` (as the library names it by default)."""
        if self.template is None:
            return str(self.args[0]) if self.args else ""
        text = _Fields(self.values, flag).format(self.template)
        return f"{flag(self.parameter)}: {text}" if self.parameter else text


class UnreadableImage(PhanetError):
    """An image file that exists but cannot be decoded."""


class PhanetWarning(UserWarning):
    """Something a user should know that does not stop the work (a setting bounded by what the machine
    has, a time limit that ended training early); the command line prints it as one line."""
