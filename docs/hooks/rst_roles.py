"""A griffe extension for the API reference: the package's docstrings mark code the reStructuredText
way (``code``, :class:`~phanet.x.Y`); the reference shows both as Markdown code (`code`, `Y`)."""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":\w+:`(~?)([^`]+)`")


def _as_code(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


class MarkdownRoles(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _ROLE.sub(_as_code, obj.docstring.value)
            obj.docstring.value = re.sub(r"``([^`]+)``", r"`\1`", text)
