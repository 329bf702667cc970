"""The `DataSource` over an image-file manifest, decoded by torchvision/PIL workers.

`loader: dali` swaps in `lskd.data.dali.DaliSource` over the same manifest. Every
training sample of an epoch gets its own augmentation seed drawn from the sampler
`torch.Generator`, so the batches depend only on the generator state, not on the
number of workers or on which worker decoded which image.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lskd.data.interface import SPLITS, WHOLE, Shard, check_batch
from lskd.data.manifest import (
    Manifest,
    check_readable,
    load_manifest,
    save_manifest,
    scan_cub,
    scan_imagefolder,
    select_subset,
)
from lskd.data.transforms import ImageAugment, eval_transform, train_transform
from lskd.errors import DataError

__all__ = [  # the manifest functions are re-exported: callers need only this module
    "FolderSource",
    "Manifest",
    "check_readable",
    "load_manifest",
    "save_manifest",
    "scan_cub",
    "scan_imagefolder",
    "select_subset",
]


class ImageFiles(Dataset):
    """Decoded, transformed images of one split. A key is an index, or an `(index,
    seed)` pair: then the transform draws from a CPU RNG seeded with `seed`."""

    def __init__(self, root: str, items: list[list[Any]], transform: Callable):
        self.root, self.items, self.transform = root, items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        rel, label = self.items[index]
        path = os.path.join(self.root, rel)
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: unreadable image ({err})") from None
        if seed is None:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG untouched
            torch.default_generator.manual_seed(seed)
            return self.transform(image), label


class _Keys(Sampler):
    """The dataset keys of the current pass; replaced before every pass."""

    def __init__(self) -> None:
        self.keys: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)


class KeyedBatches:
    """Batches of one DataLoader whose keys `next_keys()` gives at the start of each
    pass, so persistent workers serve every epoch. `len()` = steps per pass."""

    def __init__(
        self,
        data: ImageFiles,
        batch_size: int,
        workers: int,
        next_keys: Callable[[], list[Any]],
        steps: int,
    ):
        self.next_keys, self.steps, self.sampler = next_keys, steps, _Keys()
        self.loader = DataLoader(
            data,
            batch_size,
            sampler=self.sampler,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(0),  # not the global RNG
        )

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The pass from batch `start` on (a resumed epoch): the keys of the skipped
        batches are drawn and dropped, their images are never loaded."""
        keys = self.next_keys()
        self.sampler.keys = keys[start * self.loader.batch_size :]
        return iter(self.loader)


class FolderSource:
    """The `DataSource` over a `Manifest`, decoded by torchvision/PIL workers."""

    in_channels = 3
    transfer = None

    def __init__(self, manifest: Manifest, augment: dict[str, Any], workers: int = 0):
        self.manifest, self.workers = manifest, workers
        self.augment = ImageAugment.from_dict(augment)
        self.class_names = tuple(manifest.class_names)
        self.image_size = self.augment.image_size
        self._labels = {s: manifest.labels(s) for s in SPLITS}
        self._eval: dict[tuple, KeyedBatches] = {}

    def labels(self, split: str) -> np.ndarray:
        return self._labels[split]

    def _data(self, split: str, train: bool) -> ImageFiles:
        tf = train_transform if train else eval_transform
        return ImageFiles(
            self.manifest.root, self.manifest.splits[split], tf(self.augment)
        )

    def train_batches(
        self, batch_size: int, generator: torch.Generator, shard: Shard = WHOLE
    ) -> KeyedBatches:
        n = len(self._labels["train"])
        order = train_order(n, batch_size, shard, self.manifest.root)

        def next_keys() -> list[tuple[int, int]]:
            perm, base = draw_epoch(n, generator)
            return list(zip(perm[order].tolist(), (base + order).tolist(), strict=True))

        data = self._data("train", True)
        steps = len(order) // batch_size
        return KeyedBatches(data, batch_size, self.workers, next_keys, steps)

    def eval_batches(
        self,
        split: str,
        batch_size: int,
        indices: np.ndarray | None = None,
        shard: Shard = WHOLE,
    ) -> KeyedBatches:
        # whole-split loaders are kept, so their persistent workers serve every
        # evaluation; with workers > 0 do not iterate the same one twice at once
        cache = (split, batch_size, shard) if indices is None else None
        if cache in self._eval:
            return self._eval[cache]
        keys = eval_order(len(self._labels[split]), indices, shard)
        steps = -(-len(keys) // batch_size)
        data = self._data(split, False)
        batches = KeyedBatches(data, batch_size, self.workers, lambda: keys, steps)
        if cache is not None:
            self._eval[cache] = batches
        return batches


def draw_epoch(n: int, generator: torch.Generator) -> tuple[Tensor, int]:
    """One epoch's permutation of `n` samples and base augmentation seed; the same
    draws on every rank and in both loaders."""
    perm = torch.randperm(n, generator=generator)
    return perm, int(torch.randint(2**62, (1,), generator=generator))


def train_order(n: int, batch_size: int, shard: Shard, where: str) -> torch.Tensor:
    """Positions of the epoch permutation this rank trains on: every world-th, cut so
    that every rank has the same number of full batches (as `lskd.data.batches`)."""
    per_rank = n // shard.world
    check_batch(per_rank, batch_size, where)
    steps = per_rank // batch_size
    return torch.arange(shard.rank, n, shard.world)[: steps * batch_size]


def eval_order(n: int, indices: np.ndarray | None, shard: Shard) -> list[int]:
    """Rank `shard.rank`'s every world-th of `indices` (default: the whole split)."""
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices out of range for a split of {n} samples")
    return idx[shard.rank :: shard.world].tolist()
