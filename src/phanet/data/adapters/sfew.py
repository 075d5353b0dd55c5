"""SFEW 2.0: in-the-wild movie frames in one folder per emotion, for cross-dataset testing only.

Layout: ``Train/<Emotion>/<image>`` and ``Val/<Emotion>/<image>`` (``Test/`` when it is labelled the
same way), emotions Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise. Folder names are matched
without regard to case and map onto the BU-3DFE codes (:data:`SFEW_EMOTIONS`), so that a model
trained on BU-3DFE or KDEF is scored class by class. SFEW has no pose labels and no subject ids:
every image is its own subject and the pose list is empty.
"""

from __future__ import annotations

from phanet.data.adapters.common import BASIC_EXPRESSIONS, build_faces, dataset_root, excluded, is_image, walk_files
from phanet.data.records import LabeledFaces
from phanet.data.registry import register_dataset
from phanet.errors import PhanetError

#: SFEW folder names (lower case) -> class codes.
SFEW_EMOTIONS = {
    "angry": "AN",
    "anger": "AN",
    "disgust": "DI",
    "fear": "FE",
    "happy": "HA",
    "happiness": "HA",
    "neutral": "NE",
    "sad": "SA",
    "sadness": "SA",
    "surprise": "SU",
}
SFEW_PARTITIONS = ("train", "val", "test")


@register_dataset("sfew", "SFEW 2.0: Train/ Val/ with one folder per emotion; no pose, images as subjects")
def load_sfew(root: str | None, partitions: list[str] | None = None) -> LabeledFaces:
    """Load SFEW 2.0 from ``root``.

    Args:
        partitions: which of Train, Val, Test to read (case-insensitive); all that exist by default.
    """
    base = dataset_root(root, "sfew", "Train/<Emotion>/<image> and Val/<Emotion>/<image>")
    wanted = None if partitions is None else {str(p).lower() for p in partitions}
    if wanted is not None and not wanted <= set(SFEW_PARTITIONS):
        raise PhanetError(f"data.options.partitions: expected a list of Train, Val, Test, got {partitions!r}")
    rows, skipped = [], []
    for rel in walk_files(base, skipped):
        parts = rel.parts
        partition = parts[0].lower()
        if partition not in SFEW_PARTITIONS:
            skipped.append((str(rel), "not under Train/, Val/ or Test/"))
        elif wanted is not None and partition not in wanted:
            skipped.append((str(rel), excluded(f"partition {parts[0]} not selected")))
        elif len(parts) != 3 or not is_image(rel):
            skipped.append((str(rel), "not an image at <partition>/<Emotion>/<image>"))
        elif parts[1].lower() not in SFEW_EMOTIONS:
            skipped.append((str(rel), f"unknown emotion folder {parts[1]!r}"))
        else:
            rows.append(
                {"path": str(rel), "subject": rel.with_suffix("").as_posix(), "expression": SFEW_EMOTIONS[parts[1].lower()]}
            )
    return build_faces("sfew", base, rows, skipped, BASIC_EXPRESSIONS, [], where=str(base))
