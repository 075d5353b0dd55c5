"""Torch datasets and the Lightning DataModule on top of :class:`LabeledFaces`: :class:`FaceDataset` for
any dataset, :class:`SynthDataset` for the built-in one rendered on the fly, :class:`FaceDataModule`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from phanet.config import Config
from phanet.data.adapters.synth import streaming_faces
from phanet.data.cache import EMPTY, STORED, ImageCache, open_cache
from phanet.data.records import LabeledFaces
from phanet.data.registry import load_dataset
from phanet.data.splits import Split, subject_split
from phanet.data.transforms import resize_square
from phanet.errors import PhanetError, UnreadableImage
from phanet.runtime import bounded_by_cpus, uses_cuda
from phanet.synth.settings import resolve_settings

log = logging.getLogger(__name__)


class FaceDataset(Dataset):
    """Samples of a :class:`LabeledFaces` as uint8 face crops of ``size`` pixels with their labels.

    ``rows`` picks the samples (default: all); ``cache`` (:func:`~phanet.data.cache.open_cache` of the
    same ``faces`` and ``size``) keeps decoded images on disk for every later read. The network's
    normalisation and the training augmentation are not done here but per batch on the device
    (:func:`~phanet.data.transforms.to_network_input`, :func:`~phanet.data.transforms.augment`), so
    what travels to the device is uint8.

    Batches are fetched whole (``__getitems__``) as a dict: ``pixels`` uint8 (B, S, S, 3) RGB,
    ``expression``, ``pose`` (``MISSING`` when unknown), ``index`` (position in this dataset) and
    ``skipped``, the number of unreadable images left out; a single item (``dataset[i]``) is the
    same without the batch dimension, or None when unreadable. One corrupt file never stops training.
    """

    def __init__(
        self, faces: LabeledFaces, size: int, rows: Sequence[int] | np.ndarray | None = None, cache: ImageCache | None = None
    ) -> None:
        self.faces = faces
        self.size = size
        self.rows = np.arange(len(faces)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.cache = cache
        self.expression = np.array([faces.samples[r].expression for r in self.rows], dtype=np.int64)
        self.pose = np.array([faces.samples[r].pose for r in self.rows], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def _decode(self, row: int) -> np.ndarray | None:
        try:
            return resize_square(self.faces.load_image(row), self.size)
        except UnreadableImage as exc:
            log.warning("skipping %s", exc)
            return None
        except FileNotFoundError:
            raise PhanetError(f"{self.faces.image_path(self.faces.samples[row])}: image file not found") from None

    def _pixels(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The images of ``rows`` that could be read, and which rows those are (bool mask)."""
        if self.cache is None:
            slots, state = rows, np.full(len(rows), EMPTY, dtype=np.uint8)
        else:
            slots = self.cache.slots[rows]
            state = self.cache.state(slots)
        ok = state == STORED
        if len(rows) and ok.all():  # the usual case after the first epoch: one gather out of the page cache
            return self.cache.read(slots), ok
        images = np.empty((len(rows), self.size, self.size, 3), dtype=np.uint8)
        if ok.any():
            images[ok] = self.cache.read(slots[ok])
        for i in np.flatnonzero(state == EMPTY):
            image = self._decode(int(rows[i]))
            if self.cache is not None:
                self.cache.store(int(slots[i]), image)
            if image is not None:
                images[i] = image
                ok[i] = True
        return (images if ok.all() else images[ok]), ok

    def __getitems__(self, positions: Sequence[int]) -> dict[str, torch.Tensor]:
        positions = np.asarray(positions, dtype=np.int64)
        pixels, ok = self._pixels(self.rows[positions])
        batch = {"skipped": torch.tensor(int((~ok).sum()))}
        if ok.any():
            kept = positions[ok]
            batch["pixels"] = torch.from_numpy(pixels)
            batch["expression"] = torch.from_numpy(self.expression[kept])
            batch["pose"] = torch.from_numpy(self.pose[kept])
            batch["index"] = torch.from_numpy(kept)
        return batch

    def __getitem__(self, position: int) -> dict[str, torch.Tensor] | None:
        batch = self.__getitems__([position])
        if "pixels" not in batch:
            return None
        return {key: value[0] for key, value in batch.items() if key != "skipped"}


class SynthDataset(FaceDataset):
    """Rendered faces, as every dataset serves them: a :class:`FaceDataset`.

    An item is a dict: ``pixels`` uint8 (size, size, 3) RGB, ``expression`` and ``pose`` (class indices
    into ``faces.expressions`` and ``faces.poses``) and ``index``; batches (``__getitems__``, what a
    ``DataLoader`` with :func:`collate` fetches) add the batch dimension.
    :func:`~phanet.data.transforms.to_network_input` turns ``pixels`` into what the networks take.
    ``faces`` is the underlying :class:`~phanet.data.adapters.synth.SynthFaces` (class lists, subjects,
    exact yaw and pitch); pass your own (e.g. a subset) to wrap it instead. Items are the same pixels
    ``phanet synth`` writes for the same preset, seed and size::

        data = SynthDataset(preset="bu3dfe", subjects=20, size=64)
        item = data[0]            # item["pixels"], item["expression"], item["pose"]
    """

    def __init__(
        self,
        preset: str = "bu3dfe",
        subjects: int | None = None,
        size: int = 112,
        seed: int = 0,
        poses: Sequence[float] | None = None,
        yaw_range: Sequence[float] | None = None,
        pitch_range: Sequence[float] | None = None,
        faces: LabeledFaces | None = None,
    ):
        if faces is None:
            faces = streaming_faces(resolve_settings(preset, subjects, size, seed, poses, yaw_range, pitch_range))
        super().__init__(faces, getattr(faces, "size", size))


def collate(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The DataLoader's ``collate_fn``: :meth:`FaceDataset.__getitems__` already returns whole batches."""
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
        self.cache: ImageCache | None = None
        self.datasets: dict[str, FaceDataset] = {}

    def prepare(self) -> None:
        """Load and split the data (idempotent); called before the model is built to learn class lists."""
        if self.faces is None:
            self.faces = load_faces(self.config)
        if self.split is None:
            self.split = make_split(self.faces, self.config)
        data, size = self.config.data, self.config.input_size
        if data.cache and self.cache is None:
            self.cache = open_cache(self.faces, size, data.cache_dir)
        for part in ("train", "val", "test"):
            indices = getattr(self.split, part)
            if part in self.datasets or not indices:
                continue
            self.datasets[part] = FaceDataset(self.faces, size, rows=indices, cache=self.cache)

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        if part not in self.datasets:
            raise PhanetError(f"data.split: the {part} split is empty")
        workers = bounded_by_cpus(self.config.data.num_workers, "data.num_workers")
        # Static shapes for compiled steps (CUDA graphs): the last, smaller training batch is left out.
        drop_last = (
            part == "train" and self.config.train.compile != "off" and len(self.datasets[part]) > self.config.train.batch_size
        )
        return DataLoader(
            self.datasets[part],
            batch_size=self.config.train.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            collate_fn=collate,
            persistent_workers=workers > 0,
            pin_memory=uses_cuda(self.config.train.accelerator),
            drop_last=drop_last,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
