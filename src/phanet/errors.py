"""User-facing errors.

Anything a user can cause (a bad config key, a missing file, a label outside the class list) raises
:class:`PhanetError` with one line that names the field, file or step and what was expected. The
command-line entry point prints that line and exits with status 2 instead of a traceback.
"""


class PhanetError(Exception):
    """A user mistake or an unusable input, reported as one line."""


class UnreadableImage(PhanetError):
    """An image file that exists but cannot be decoded."""
