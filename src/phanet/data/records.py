"""The common sample record every dataset adapter produces.

An adapter parses a dataset's own conventions into a :class:`LabeledFaces`: the dataset's class lists
plus one :class:`Sample` per image. Everything after that (splits, transforms, training, evaluation,
reports) is shared and never looks at the dataset's file names again.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from phanet.data.io import crop_box, read_image
from phanet.files import write_csv

#: Label value of a missing pose (AffectNet without OpenFace, SFEW). Masked out of the pose loss.
MISSING = -1

#: Columns of the common manifest CSV, in order. Only ``path``, ``subject`` and ``expression`` are required.
MANIFEST_COLUMNS = ("path", "subject", "expression", "pose", "intensity", "yaw", "pitch", "face_x", "face_y", "face_w", "face_h")


@dataclass(frozen=True)
class Sample:
    """One labelled face image.

    ``expression`` and ``pose`` are indices into the owning :class:`LabeledFaces` class lists;
    ``pose`` is :data:`MISSING` when the dataset has no pose label for the image. ``box`` is an
    optional face box (x, y, w, h) in pixels of the stored image (AffectNet ships one).
    """

    path: str
    subject: str
    expression: int
    pose: int = MISSING
    intensity: int = MISSING
    yaw: float = math.nan
    pitch: float = math.nan
    box: tuple[float, float, float, float] | None = None


@dataclass
class LabeledFaces:
    """A dataset as class lists plus samples; ``load_image`` returns RGB uint8 (H, W, 3).

    Pose class names are yaw angles in degrees written as text (``"-45"``, ``"0"``, ``"30"``) whenever
    the dataset's poses are angles; :meth:`pose_angles` parses them.
    """

    name: str
    expressions: list[str]
    poses: list[str]
    samples: list[Sample]
    root: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    box_margin: float = 0.0

    def __len__(self) -> int:
        return len(self.samples)

    def expression_counts(self, rows: Sequence[int]) -> list[int]:
        """How many of the samples ``rows`` show each expression, in the order of :attr:`expressions`."""
        counts = [0] * len(self.expressions)
        for row in rows:
            counts[self.samples[row].expression] += 1
        return counts

    def image_path(self, sample: Sample) -> Path:
        path = Path(sample.path)
        if self.root is not None and not path.is_absolute():
            return Path(self.root) / path
        return path

    def load_image(self, index: int) -> np.ndarray:
        """Image of sample ``index``, cropped to its face box when it has one."""
        sample = self.samples[index]
        return crop_box(read_image(self.image_path(sample)), sample.box, self.box_margin)

    def source(self, index: int) -> tuple[str, str | None]:
        """Where the pixels of sample ``index`` come from: a key naming them (file, face box and margin)
        and the file whose changes invalidate them (see :mod:`phanet.data.cache`)."""
        sample = self.samples[index]
        path = os.path.abspath(self.image_path(sample))
        return f"{path}|{sample.box}|{self.box_margin if sample.box else 0}", path

    def subset(self, indices: Sequence[int]) -> LabeledFaces:
        """Same class lists and image source, only the samples at ``indices``."""
        clone = dataclasses.replace(self, samples=[self.samples[i] for i in indices], skipped=list(self.skipped))
        return clone

    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.samples})

    def pose_angles(self) -> list[float] | None:
        """Yaw angle of every pose class, or None when the pose names are not angles."""
        try:
            return [float(p) for p in self.poses]
        except ValueError:
            return None

    def has_pose(self) -> bool:
        return bool(self.poses) and any(s.pose != MISSING for s in self.samples)

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of samples per expression, pose and subject (class names as keys)."""
        expr = Counter(self.expressions[s.expression] for s in self.samples)
        pose = Counter(self.poses[s.pose] if s.pose != MISSING else "(none)" for s in self.samples)
        subj = Counter(s.subject for s in self.samples)
        return {
            "expression": {name: expr.get(name, 0) for name in self.expressions},
            "pose": {name: pose[name] for name in [*self.poses, "(none)"] if pose.get(name, 0) or name in self.poses},
            "subject": dict(sorted(subj.items())),
        }

    def to_frame(self) -> pd.DataFrame:
        """The samples as a manifest table (class names, not indices)."""
        rows = []
        for s in self.samples:
            box = s.box or (math.nan,) * 4
            rows.append(
                {
                    "path": s.path,
                    "subject": s.subject,
                    "expression": self.expressions[s.expression],
                    "pose": self.poses[s.pose] if s.pose != MISSING else "",
                    "intensity": s.intensity if s.intensity != MISSING else "",
                    "yaw": "" if math.isnan(s.yaw) else s.yaw,
                    "pitch": "" if math.isnan(s.pitch) else s.pitch,
                    "face_x": "" if s.box is None else box[0],
                    "face_y": "" if s.box is None else box[1],
                    "face_w": "" if s.box is None else box[2],
                    "face_h": "" if s.box is None else box[3],
                }
            )
        return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))

    def write_manifest(self, path: str | Path) -> Path:
        """Write the common manifest CSV (paths as stored, relative to the dataset root when relative),
        atomically (:mod:`phanet.files`): a full disk leaves the old file or none."""
        write_csv(path, self.to_frame())
        return Path(path)


def sort_pose_names(names: set[str] | Sequence[str]) -> list[str]:
    """Pose class names in angle order when they are numeric, else alphabetical."""
    names = list(dict.fromkeys(names))
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)
