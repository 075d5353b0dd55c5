"""Decode every image of a dataset once, to find the files that are missing or corrupt."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from phanet.data.io import read_image
from phanet.data.records import LabeledFaces
from phanet.errors import UnreadableImage


def _problem(path: str) -> str | None:
    try:
        read_image(path)
    except UnreadableImage as exc:
        return str(exc).rsplit(": ", 1)[-1]
    except FileNotFoundError:
        return "file not found"
    return None


def without_unreadable(faces: LabeledFaces, workers: int = 4, progress: bool = True) -> LabeledFaces:
    """``faces`` without the samples whose image cannot be read; those go to ``skipped`` with the reason."""
    paths = [str(faces.image_path(s)) for s in faces.samples]
    # Decoding releases the GIL, so threads overlap the reads without copying images between processes.
    with ThreadPoolExecutor(max(1, workers)) as pool:
        problems = list(
            tqdm(
                pool.map(_problem, paths), total=len(paths), desc="reading images", unit="img", disable=not progress, leave=False
            )
        )
    checked = faces.subset([i for i, problem in enumerate(problems) if problem is None])
    checked.skipped.extend((faces.samples[i].path, p) for i, p in enumerate(problems) if p is not None)
    return checked
