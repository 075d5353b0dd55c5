"""``generic``: a manifest or an image-folder tree, whichever ``root`` is.

``root`` may be a manifest file (``.csv``/``.json``), a folder holding ``manifest.csv`` or
``manifest.json`` (a ``phanet prepare`` output, for one), or an image-folder tree
``ROOT/<expression>/[<pose>/]<image>``. A ``classes.json`` next to the manifest
(``{"expressions": [...], "poses": [...]}``) fixes the class lists and their order, so that classes
absent from a subset keep their place; ``phanet prepare`` writes one.
"""

from __future__ import annotations

from pathlib import Path

from phanet.checks import class_names, shorten
from phanet.data.manifest import load_folder, load_manifest
from phanet.data.records import LabeledFaces
from phanet.data.registry import register_dataset
from phanet.errors import PhanetError
from phanet.files import parse_json, read_limited

#: Largest classes.json read: a list of class names is a few kilobytes.
MAX_CLASSES_BYTES = 10_000_000

MANIFEST_NAMES = ("manifest.csv", "manifest.json")


def find_manifest(root: Path) -> Path | None:
    """The manifest that ``root`` is or holds, or None for a folder tree."""
    if root.is_file():
        return root
    return next((root / name for name in MANIFEST_NAMES if (root / name).is_file()), None)


def read_classes(folder: Path) -> dict[str, list[str]]:
    """Class lists from ``folder/classes.json``, or {} when there is none."""
    path = folder / "classes.json"
    if not path.exists():
        return {}
    try:
        payload = parse_json(read_limited(path, MAX_CLASSES_BYTES, "classes.json"))
    except (OSError, ValueError) as exc:
        raise PhanetError(f"{path}: not readable JSON ({shorten(exc)})") from None
    if not isinstance(payload, dict) or not all(isinstance(payload.get(k, []), list) for k in ("expressions", "poses")):
        raise PhanetError(f'{path}: expected {{"expressions": [...], "poses": [...]}}')
    return {
        key: class_names([str(v) for v in payload[key]], f"{path}: {key}", allow_empty=key == "poses")
        for key in ("expressions", "poses")
        if key in payload
    }


@register_dataset("generic", "a manifest (CSV/JSON, or a folder holding manifest.csv) or ROOT/<expression>/[<pose>/]<image>")
def load_generic(
    root: str | None,
    subject_pattern: str = r"^([^_]+)_",
    expressions: list[str] | None = None,
    poses: list[str] | None = None,
    missing: str = "error",
) -> LabeledFaces:
    """Load a manifest or a folder tree from ``root``.

    Args:
        subject_pattern: folder trees only: regular expression whose first group is the subject id
            in the file name.
        expressions, poses: class lists (and order); default from ``classes.json`` or the data.
        missing: manifests only: ``error`` or ``skip`` for rows whose image file is not there.
    """
    if root is None or not Path(root).exists():
        raise PhanetError(f"data.root: {root} not found (expected a manifest file or a folder)")
    manifest = find_manifest(Path(root))
    if manifest is None:
        return load_folder(str(root), subject_pattern=subject_pattern, expressions=expressions, poses=poses)
    classes = read_classes(manifest.parent)
    return load_manifest(
        None,
        manifest=str(manifest),
        missing=missing,
        expressions=expressions or classes.get("expressions"),
        poses=poses or classes.get("poses"),
    )
