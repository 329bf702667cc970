"""Mini-batches from in-memory uint8 arrays, with augmentation done on whole batches.

Shuffling and augmentation draw from one `torch.Generator`, so saving its state at an
epoch boundary is enough to replay the exact data order and augmentations after a
resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Augment:
    """Random translation by up to `pad` pixels (zero padding) and horizontal flips."""

    pad: int
    hflip: bool


def draw_augment(n: int, aug: Augment, gen: torch.Generator) -> dict[str, Tensor]:
    """The random numbers of one batch's augmentation (shifts, flips), in draw order."""
    drawn = {}
    if aug.pad:
        drawn["dy"] = torch.randint(0, 2 * aug.pad + 1, (n,), generator=gen)
        drawn["dx"] = torch.randint(0, 2 * aug.pad + 1, (n,), generator=gen)
    if aug.hflip:
        drawn["flip"] = torch.rand(n, generator=gen) < 0.5
    return drawn


def augment_batch(x: Tensor, aug: Augment, gen: torch.Generator) -> Tensor:
    """Randomly crop each (C, H, W) image of `x` from its zero-padded copy; maybe flip
    it.
    """
    n, _, h, w = x.shape
    drawn = draw_augment(n, aug, gen)
    if aug.pad:
        padded = torch.nn.functional.pad(x, (aug.pad,) * 4)
        rows = (drawn["dy"][:, None] + torch.arange(h))[:, None, :, None]
        cols = (drawn["dx"][:, None] + torch.arange(w))[:, None, None, :]
        x = padded[
            torch.arange(n)[:, None, None, None],
            torch.arange(x.shape[1])[None, :, None, None],
            rows,
            cols,
        ]
    if aug.hflip:
        x = torch.where(drawn["flip"][:, None, None, None], x.flip(-1), x)
    return x


class Batches:
    """Iterate over (images, labels) batches of float32 normalised images.

    With `generator` set the order is shuffled each epoch; with `augment` set every
    batch is augmented. Without a generator the order is fixed (evaluation). Rank `rank`
    of `world` data-parallel processes takes every world-th sample of that order.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        generator: torch.Generator | None = None,
        augment: Augment | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world: int = 1,
    ):
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(np.ascontiguousarray(labels))
        self.batch_size, self.generator, self.augment = batch_size, generator, augment
        self.drop_last, self.rank, self.world = drop_last, rank, world
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def _per_rank(self) -> int:
        """Samples of this rank: every world-th of the epoch's order, equal per rank."""
        n = len(self.labels)
        return n // self.world if self.world > 1 else n

    def __len__(self) -> int:
        n = self._per_rank()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The pass from batch `start` on; the skipped batches' order and augmentation
        draws are still taken from the generator (cheaply), so it ends in the same
        state as a full pass."""
        n = len(self.labels)
        order = (
            torch.randperm(n, generator=self.generator)
            if self.generator is not None
            else torch.arange(n)
        )
        order = order[self.rank :: self.world][: self._per_rank()]
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if b < start:
                if self.augment is not None:
                    draw_augment(len(idx), self.augment, self.generator)
                continue
            x = self.images[idx].float().div_(255.0)
            if self.augment is not None:
                x = augment_batch(x, self.augment, self.generator)
            yield (x - self.mean) / self.std, self.labels[idx]
