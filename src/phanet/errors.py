"""User-facing errors.

Anything a user can cause (a bad config key, a missing file, a label outside the class list) raises
:class:`PhanetError` with one line that names the field, file or step and what was expected. The
command-line entry point prints that line and exits with status 2 instead of a traceback.

A value outside what a function parameter accepts raises :class:`ArgumentError`, which names the
parameter as the Python caller knows it (``batch_size: expected 1 or more, got 0``); a command
reports it under its own flag (:func:`phanet.checks.as_flags`).
"""


class PhanetError(Exception):
    """A user mistake or an unusable input, reported as one line."""


class UnreadableImage(PhanetError):
    """An image file that exists but cannot be decoded."""


class ArgumentError(PhanetError):
    """A value that parameter ``name`` does not accept; ``problem`` says what was expected and what came."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem
