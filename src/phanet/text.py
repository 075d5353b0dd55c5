"""Small wording helpers for messages and reports, the text of an angle as a pose class name, and file
names as text that can be written anywhere."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 image``, ``2 images``, ``0 images`` (``nouns`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def format_angle(angle: float) -> str:
    """Canonical text of a yaw angle used as a pose class name: ``-45``, ``0``, ``22.5``."""
    value = float(angle)
    if value == 0:
        return "0"
    return str(int(value)) if value.is_integer() else f"{value:g}"


def printable(text: str) -> str:
    """``text`` that encodes as UTF-8: the bytes of a file name that are not UTF-8 (which Python keeps
    as lone surrogates) written as ``\\xNN``, so that ``caf\\xe9.jpg`` names the file ``café.jpg``
    saved in Latin-1. Valid text is returned as it is."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name decoding made
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
