"""Torch datasets and the Lightning DataModule on top of :class:`LabeledFaces`."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from phanet.config import Config
from phanet.data.records import MISSING, LabeledFaces
from phanet.data.registry import load_dataset
from phanet.data.splits import Split, subject_split
from phanet.data.transforms import check_flip, jitter, preprocess, resize_square
from phanet.errors import PhanetError, UnreadableImage

log = logging.getLogger(__name__)


class FaceDataset(Dataset):
    """Samples of a :class:`LabeledFaces` as network inputs with labels.

    Items are dicts with ``image`` (3, S, S), ``expression``, ``pose`` (``MISSING`` when unknown) and
    ``index`` (position in ``faces``). An unreadable image yields None; :func:`collate` drops it and
    counts it, so one corrupt file never stops training.
    """

    def __init__(self, faces: LabeledFaces, size: int, train: bool = False, flip: bool = False,
                 jitter_amount: float = 0.0, cache: bool = False) -> None:
        self.faces = faces
        self.size = size
        self.train = train
        self.flip = flip and train
        self.mirror = check_flip(faces.poses) if self.flip else []
        self.jitter = jitter_amount if train else 0.0
        self.cache: dict[int, np.ndarray | None] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.faces)

    def _image(self, index: int) -> np.ndarray | None:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        try:
            image = resize_square(self.faces.load_image(index), self.size)
        except UnreadableImage as exc:
            log.warning("skipping %s", exc)
            image = None
        except FileNotFoundError:
            raise PhanetError(f"{self.faces.image_path(self.faces.samples[index])}: image file not found") from None
        if self.cache is not None:
            self.cache[index] = image
        return image

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        image = self._image(index)
        if image is None:
            return None
        sample = self.faces.samples[index]
        pose = sample.pose
        if self.train:
            # torch's generator: seeded by seed_everything and re-seeded per worker and epoch.
            draws = torch.rand(4).tolist()
            image = jitter(image, self.jitter, draws[:3])
            if self.flip and draws[3] < 0.5:
                image = image[:, ::-1]
                pose = self.mirror[pose] if pose != MISSING else MISSING
        return {
            "image": preprocess(image, self.size),
            "expression": torch.tensor(sample.expression, dtype=torch.long),
            "pose": torch.tensor(pose, dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
        }


def collate(items: list[dict[str, Any] | None]) -> dict[str, torch.Tensor]:
    """Stack items, dropping unreadable ones; ``skipped`` counts them."""
    kept = [item for item in items if item is not None]
    if not kept:
        return {"skipped": torch.tensor(len(items))}
    batch = {key: torch.stack([item[key] for item in kept]) for key in kept[0]}
    batch["skipped"] = torch.tensor(len(items) - len(kept))
    return batch


def load_faces(config: Config) -> LabeledFaces:
    """The dataset named by ``config.data``."""
    data = config.data
    return load_dataset(data.dataset, data.root, **data.options)


def make_split(faces: LabeledFaces, config: Config, require_val: bool = True) -> Split:
    s = config.data.split
    return subject_split(faces, s.val, s.test, s.seed, s.test_subjects, require_val=require_val)


class FaceDataModule(L.LightningDataModule):
    """Loads the configured dataset once, splits it by subject, and serves train/val/test loaders."""

    def __init__(self, config: Config, faces: LabeledFaces | None = None, split: Split | None = None) -> None:
        super().__init__()
        self.config = config
        self.faces = faces
        self.split = split
        self.datasets: dict[str, FaceDataset] = {}

    def prepare(self) -> None:
        """Load and split the data (idempotent); called before the model is built to learn class lists."""
        if self.faces is None:
            self.faces = load_faces(self.config)
        if self.split is None:
            self.split = make_split(self.faces, self.config)
        data, size = self.config.data, self.config.input_size
        for part in ("train", "val", "test"):
            indices = getattr(self.split, part)
            if part in self.datasets or not indices:
                continue
            self.datasets[part] = FaceDataset(
                self.faces.subset(indices), size, train=part == "train", flip=data.flip,
                jitter_amount=data.jitter, cache=data.cache,
            )

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        if part not in self.datasets:
            raise PhanetError(f"data.split: the {part} split is empty")
        workers = self.config.data.num_workers
        return DataLoader(self.datasets[part], batch_size=self.config.train.batch_size, shuffle=shuffle,
                          num_workers=workers, collate_fn=collate, persistent_workers=workers > 0,
                          drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
