"""The data interface training and analysis use, whatever the storage.

A `DataSource` serves shuffled, augmented training batches and fixed-order evaluation
batches of the splits `train`, `val` (held out from the training set) and `test` (the
reported split). `open_source` picks the implementation from the prepared file: `.npz`
arrays (the embedded Fashion-MNIST demo) or a `.json` manifest of image files (ImageNet-
and CUB-style folders, loaded by torchvision/PIL workers or by NVIDIA DALI).

A student's KD transfer set (`lskd.data.transfer`) cuts the training split before the
source is built, so every loader, shard and resume sees the same images;
`source.transfer` records it (None when no transfer set was asked for).

The interface itself (`DataSource`, `Shard`, the splits) is `lskd.data.interface`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lskd.data.arrays import Arrays, load_arrays
from lskd.data.augment import ImageAugment
from lskd.data.batches import Augment, Batches
from lskd.data.interface import WHOLE, DataSource, check_batch, cut_train
from lskd.data.transfer import TransferSet
from lskd.errors import ConfigError, DataError
from lskd.schema import validated


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

    def train_batches(self, batch_size, generator, shard=WHOLE):
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

    def eval_batches(self, split, batch_size, indices=None, shard=WHOLE):
        idx = np.arange(len(self.labels(split))) if indices is None else indices
        return self._batches(split, idx[shard.rank :: shard.world], batch_size)


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
        values = validated("augment", augment, "augment")
        # the image-file keys do not apply to arrays, but must be valid
        ImageAugment.from_dict(values)
        aug = Augment(pad=values["pad"], hflip=values["hflip"])
        arrays = load_arrays(path)
        arrays, record = cut_train(arrays, arrays.labels["train"], transfer)
        source = ArraySource(arrays, aug)
        source.transfer = record
        return source
    if path.suffix == ".json":
        return open_folder_source(path, augment, loader, workers, transfer)
    raise DataError(f"{path}: unknown prepared-dataset format (expected .npz or .json)")


def open_folder_source(
    path: str | Path,
    augment: dict[str, Any],
    loader: str = "torchvision",
    workers: int = 0,
    transfer: TransferSet | None = None,
) -> DataSource:
    """Open a manifest with the torchvision/PIL loader or NVIDIA DALI (`loader`),
    training on `transfer`'s images only when given (`cut_train`)."""
    from lskd.data.folders import FolderSource  # torchvision and PIL: image files only
    from lskd.data.manifest import load_manifest

    if loader not in ("torchvision", "dali"):
        raise ConfigError(f"loader: unknown value {loader!r} (torchvision or dali)")
    manifest = load_manifest(path)
    manifest, record = cut_train(manifest, manifest.labels("train"), transfer)
    if loader == "torchvision":
        source = FolderSource(manifest, augment, workers)
        source.transfer = record
        return source
    try:
        from lskd.data.dali import DaliSource
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("nvidia"):
            raise
        raise ConfigError(
            "loader: dali needs the optional extra: pip install 'lskd[dali]'"
        ) from None
    source = DaliSource(manifest, augment, workers)
    source.transfer = record
    return source
