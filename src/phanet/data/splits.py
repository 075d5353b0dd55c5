"""Subject-independent splits: no subject ever appears in two parts of a split or in two test folds."""

from __future__ import annotations

import random
from dataclasses import dataclass

from phanet.data.records import LabeledFaces
from phanet.errors import PhanetError


@dataclass(frozen=True)
class Split:
    """Sample indices of each part, and the subjects behind them."""

    train: list[int]
    val: list[int]
    test: list[int]
    subjects: dict[str, list[str]]


def _count(value: float, total: int, field: str) -> int:
    if value < 0:
        raise PhanetError(f"{field}: expected a fraction in [0, 1) or a subject count >= 0, got {value}")
    if value < 1:
        return int(round(value * total))
    if float(value).is_integer():
        return int(value)
    raise PhanetError(f"{field}: expected a fraction in [0, 1) or a whole number of subjects, got {value}")


def _shuffled_subjects(faces: LabeledFaces, seed: int) -> list[str]:
    subjects = faces.subjects()
    random.Random(seed).shuffle(subjects)
    return subjects


def _indices_by_subject(faces: LabeledFaces, subjects: list[str]) -> list[int]:
    wanted = set(subjects)
    return [i for i, s in enumerate(faces.samples) if s.subject in wanted]


def subject_split(
    faces: LabeledFaces,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    test_subjects: list[str] | None = None,
    require_val: bool = True,
) -> Split:
    """Split ``faces`` by subject into train/val/test.

    ``val`` and ``test`` are fractions of the subjects (< 1) or subject counts (>= 1). With
    ``test_subjects`` the test part is exactly those subjects (e.g. a protocol's list) and ``test``
    is ignored. The shuffle is seeded, so the same seed always gives the same split.
    """
    subjects = _shuffled_subjects(faces, seed)
    total = len(subjects)
    if test_subjects is not None:
        unknown = sorted(set(test_subjects) - set(subjects))
        if unknown:
            raise PhanetError(f"data.split.test_subjects: subject {unknown[0]!r} is not in the dataset")
        test_part = [s for s in subjects if s in set(test_subjects)]
        rest = [s for s in subjects if s not in set(test_subjects)]
    else:
        n_test = _count(test, total, "data.split.test")
        test_part, rest = subjects[:n_test], subjects[n_test:]
    n_val = _count(val, total, "data.split.val")
    val_part, train_part = rest[:n_val], rest[n_val:]
    parts = {"train": train_part, "val": val_part, "test": test_part}
    for name, part in parts.items():
        if not part and (name == "train" or (name == "val" and require_val)):
            raise PhanetError(
                f"data.split: the {name} split is empty ({total} subjects in {faces.name!r}; "
                f"val={val}, test={test}); use fewer held-out subjects or more data"
            )
    return Split(
        train=_indices_by_subject(faces, train_part),
        val=_indices_by_subject(faces, val_part),
        test=_indices_by_subject(faces, test_part),
        subjects={name: sorted(part) for name, part in parts.items()},
    )


def subject_folds(faces: LabeledFaces, k: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """K subject-independent folds as (train indices, test indices); every subject is tested exactly once."""
    subjects = _shuffled_subjects(faces, seed)
    if k < 2:
        raise PhanetError.about("folds", "expected at least 2 folds, got {k}", k=k)
    if k > len(subjects):
        raise PhanetError.about(
            "folds", "{k} folds need at least {k} subjects, {name!r} has {count}", k=k, name=faces.name, count=len(subjects)
        )
    groups = [subjects[i::k] for i in range(k)]
    folds = []
    for i, held_out in enumerate(groups):
        train_subjects = [s for j, g in enumerate(groups) if j != i for s in g]
        folds.append((_indices_by_subject(faces, train_subjects), _indices_by_subject(faces, held_out)))
    return folds
