"""Small pieces shared by the commands: devices, dataset options from the command line, evaluation data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phanet.config import Config, parse_options
from phanet.data.datasets import load_faces, make_split
from phanet.data.records import LabeledFaces
from phanet.data.registry import load_dataset
from phanet.errors import PhanetError


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def guess_dataset(path: str) -> str:
    """manifest for a .csv/.json file or a folder with manifest.csv, folder otherwise."""
    p = Path(path)
    if not p.exists():
        raise PhanetError.about("data", "{path} not found", path=path)
    if p.is_file():
        if p.suffix.lower() in (".csv", ".json"):
            return "manifest"
        raise PhanetError.about("data", "{path} is a file but not a .csv or .json manifest", path=path)
    return "manifest" if (p / "manifest.csv").exists() else "folder"


def select_part(faces: LabeledFaces, config: Config, part: str) -> LabeledFaces:
    """``train``, ``val``, ``test`` (the config's subject-independent split) or ``all``."""
    if part == "all":
        return faces
    split = make_split(faces, config, require_val=False)
    indices = getattr(split, part)
    if not indices:
        raise PhanetError.about(
            "part", "the {part} part of {name!r} is empty under data.split of the checkpoint", part=part, name=faces.name
        )
    return faces.subset(indices)


def resolve_eval_data(
    config: Config, data: str | None, dataset: str | None, options: list[str], part: str | None
) -> tuple[LabeledFaces, dict[str, Any]]:
    """The data to evaluate on and a description of it for the report."""
    if data is None:
        if dataset or options:
            raise PhanetError.about(None, "{dataset}/{options}: give the data folder or manifest with {data}")
        faces = load_faces(config)
        part = part or "test"
        description: dict[str, Any] = {"dataset": config.data.dataset, "root": config.data.root, "options": config.data.options}
    else:
        name = dataset or guess_dataset(data)
        opts = parse_options(options)
        faces = load_dataset(name, data, **opts)
        part = part or "all"
        description = {"dataset": name, "root": data, "options": opts}
    faces = select_part(faces, config, part)
    description.update(part=part, samples=len(faces), subjects=len(faces.subjects()))
    return faces, description
