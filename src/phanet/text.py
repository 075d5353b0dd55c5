"""Small wording helpers for messages and reports, and the text of an angle as a pose class name."""

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
