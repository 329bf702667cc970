"""The data interface training and analysis use, whatever the storage.

A `DataSource` serves shuffled, augmented training batches and fixed-order evaluation
batches of the splits `train`, `val` (held out from the training set) and `test` (the
reported split). `open_source` picks the implementation from the prepared file: `.npz`
arrays (the embedded Fashion-MNIST demo) or a `.json` manifest of image files (ImageNet-
and CUB-style folders, loaded by torchvision/PIL workers or by NVIDIA DALI).

A student's KD transfer set (`lskd.data.transfer`) cuts the training split before the
source is built, so every loader, shard and resume sees the same images;
`source.transfer` records it (None when no transfer set was asked for).

Sharding for data-parallel training: rank r of w gets every w-th sample of the epoch's
permutation (evaluation: of the split), so the ranks together see each sample once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from lskd.data.arrays import Arrays, load_arrays
from lskd.data.batches import Augment, Batches
from lskd.data.transfer import TransferSet
from lskd.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Shard:
    """This process's share of the data: rank `rank` of `world` processes."""

    rank: int = 0
    world: int = 1


def check_batch(per_rank: int, batch_size: int, where: str) -> None:
    """Training needs at least one full batch per rank and epoch."""
    if per_rank < batch_size:
        raise ConfigError(
            f"batch_size: {batch_size} is more than the {per_rank} training images "
            f"per rank of {where}"
        )


class DataSource(Protocol):
    class_names: tuple[str, ...]
    in_channels: int
    image_size: int
    transfer: dict[str, Any] | None

    def labels(self, split: str) -> np.ndarray:
        """Labels of a whole split, in its fixed order."""

    def train_batches(
        self, batch_size: int, generator: torch.Generator, shard: Shard = Shard()
    ) -> Iterable[tuple[Tensor, Tensor]]:
        """Augmented training batches, a new permutation from `generator` per pass;
        `len()` is the number of steps per epoch, the same on every rank."""

    def eval_batches(
        self,
        split: str,
        batch_size: int,
        indices: np.ndarray | None = None,
        shard: Shard = Shard(),
    ) -> Iterable[tuple[Tensor, Tensor]]:
        """Un-augmented batches of `split` (or of its samples `indices`) in order."""


class ArraySource:
    """In-memory uint8 arrays (`lskd.data.arrays`) with batch-level augmentation."""

    transfer = None

    def __init__(self, arrays: Arrays, augment: Augment):
        self.arrays, self.augment = arrays, augment
        self.class_names = arrays.class_names
        self.in_channels = arrays.in_channels
        self.image_size = int(arrays.images["train"].shape[-1])

    def labels(self, split: str) -> np.ndarray:
        return self.arrays.labels[split]

    def _batches(self, split, idx, batch_size, **kw) -> Batches:
        a = self.arrays
        return Batches(
            a.images[split][idx], a.labels[split][idx], batch_size, a.mean, a.std, **kw
        )

    def train_batches(self, batch_size, generator, shard=Shard()):
        n = len(self.labels("train"))
        check_batch(n // shard.world, batch_size, "the (transfer) training split")
        return self._batches(
            "train",
            slice(None),
            batch_size,
            generator=generator,
            augment=self.augment,
            drop_last=True,
            rank=shard.rank,
            world=shard.world,
        )

    def eval_batches(self, split, batch_size, indices=None, shard=Shard()):
        idx = np.arange(len(self.labels(split))) if indices is None else indices
        return self._batches(split, idx[shard.rank :: shard.world], batch_size)


def cut_train(
    storage: Any, labels: np.ndarray, transfer: TransferSet | None
) -> tuple[Any, dict | None]:
    """`storage` (`Arrays` or `Manifest`, training labels `labels`) with its training
    split cut to `transfer`'s images, and the record of them (unchanged and None
    without a transfer set)."""
    if transfer is None:
        return storage, None
    indices = transfer.indices(labels)
    return storage.with_train(indices), transfer.record(indices, labels)


def open_source(
    path: str | Path,
    augment: dict[str, Any],
    loader: str = "torchvision",
    workers: int = 0,
    transfer: TransferSet | None = None,
) -> DataSource:
    """Open a prepared dataset: `.npz` arrays or a `.json` image-file manifest; with
    `transfer`, train on that KD transfer set only."""
    path = Path(path)
    if path.suffix == ".npz":
        image_keys = {k: v for k, v in augment.items() if k not in ("pad", "hflip")}
        if image_keys:  # image-file settings do not apply, but must still be known
            from lskd.data.transforms import ImageAugment

            ImageAugment.from_dict(image_keys)
        try:
            aug = Augment(**{k: v for k, v in augment.items() if k in ("pad", "hflip")})
        except TypeError as err:
            raise ConfigError(f"augment: {err}") from None
        arrays = load_arrays(path)
        arrays, record = cut_train(arrays, arrays.labels["train"], transfer)
        source = ArraySource(arrays, aug)
        source.transfer = record
        return source
    if path.suffix == ".json":
        from lskd.data.folders import open_folder_source

        return open_folder_source(path, augment, loader, workers, transfer)
    raise DataError(f"{path}: unknown prepared-dataset format (expected .npz or .json)")
