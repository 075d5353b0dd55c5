"""Expression class names across datasets, and the cross-dataset class mapping (Table IX).

Every dataset names its classes its own way (BU-3DFE ``AN``, KDEF ``AF`` for afraid, AffectNet
``Anger``, SFEW ``Angry``, Multi-PIE ``smile``). :func:`canonical` reduces a name to one of the
basic emotions; :func:`cross_mapping` maps one dataset's classes onto another's by that key.

Documented cross-dataset choices (not synonyms, but the closest counterpart):

- Multi-PIE ``smile`` → happiness (HA); ``scream`` and ``squint`` have no counterpart among the
  basic emotions and are reported as unmatched, never dropped silently.
- AffectNet ``Contempt`` has no counterpart in BU-3DFE, KDEF or SFEW.
"""

from __future__ import annotations

SYNONYMS: dict[str, tuple[str, ...]] = {
    "anger": ("an", "ang", "anger", "angry"),
    "disgust": ("di", "dis", "disgust", "disgusted"),
    "fear": ("fe", "af", "fear", "afraid", "fearful", "scared"),
    "happiness": ("ha", "hap", "happy", "happiness", "joy", "smile", "sm"),
    "neutral": ("ne", "neu", "neutral"),
    "sadness": ("sa", "sad", "sadness"),
    "surprise": ("su", "sur", "surprise", "surprised"),
    "contempt": ("co", "con", "contempt"),
}

_LOOKUP = {alias: key for key, aliases in SYNONYMS.items() for alias in aliases}

#: What the expression codes of the datasets stand for, as the reports, the figures and the prediction
#: drawings spell them out (BU-3DFE's and KDEF's codes, Multi-PIE's and AffectNet's extra classes).
EXPRESSION_WORDS = {
    "AN": "anger",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happiness",
    "NE": "neutral",
    "SA": "sadness",
    "SU": "surprise",
    "CO": "contempt",
    "SC": "scream",
    "SM": "smile",
    "SQ": "squint",
}


def expression_word(name: str) -> str:
    """The word an expression class stands for (``AN`` → ``anger``); a name that is a word already, or
    unknown, as it is."""
    return EXPRESSION_WORDS.get(name.strip().upper(), name)


def expression_legend(names: list[str]) -> str:
    """``AN anger, DI disgust, ...`` for the codes among ``names`` (empty when none is a code)."""
    return ", ".join(f"{name} {EXPRESSION_WORDS[name.upper()]}" for name in names if name.upper() in EXPRESSION_WORDS)


def canonical(name: str) -> str | None:
    """The basic emotion a class name stands for, or None (e.g. Multi-PIE ``scream``, ``squint``)."""
    return _LOOKUP.get(name.strip().lower())


def cross_mapping(source: list[str], target: list[str], overrides: dict[str, str | None] | None = None) -> dict[str, str]:
    """Map each ``source`` class onto the ``target`` class with the same basic emotion.

    ``overrides`` sets or removes (None) entries by source name. Classes without a counterpart are
    absent from the result; the caller reports them.
    """
    by_key = {}
    for name in target:
        key = canonical(name)
        if key is not None:
            by_key.setdefault(key, name)
    mapping = {}
    for name in source:
        if name in target:
            mapping[name] = name
            continue
        key = canonical(name)
        if key in by_key:
            mapping[name] = by_key[key]
    for name, value in (overrides or {}).items():
        if value is None:
            mapping.pop(name, None)
        else:
            mapping[name] = value
    return mapping
