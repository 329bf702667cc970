"""What every data source offers training and analysis: the splits, a process's shard,
the `DataSource` protocol, and the cut of the training split to a KD transfer set.

Sharding for data-parallel training: rank r of w gets every w-th sample of the epoch's
permutation (evaluation: of the split), so the ranks together see each sample once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from lskd.data.transfer import TransferSet
from lskd.errors import ConfigError

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


WHOLE = Shard()  # the default: one process gets everything


class DataSource(Protocol):
    class_names: tuple[str, ...]
    in_channels: int
    image_size: int
    transfer: dict[str, Any] | None

    def labels(self, split: str) -> np.ndarray:
        """Labels of a whole split, in its fixed order."""

    def train_batches(
        self, batch_size: int, generator: torch.Generator, shard: Shard = WHOLE
    ) -> Iterable[tuple[Tensor, Tensor]]:
        """Augmented training batches, a new permutation from `generator` per pass;
        `len()` is the number of steps per epoch, the same on every rank."""

    def eval_batches(
        self,
        split: str,
        batch_size: int,
        indices: np.ndarray | None = None,
        shard: Shard = WHOLE,
    ) -> Iterable[tuple[Tensor, Tensor]]:
        """Un-augmented batches of `split` (or of its samples `indices`) in order."""


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
