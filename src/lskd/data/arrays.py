"""Prepared in-memory datasets: train/val/test uint8 arrays in one `.npz` file.

`prepare_arrays` holds out a validation split from the training set (so model selection
never looks at the reported test split, docs/official-code.md#model-selection),
optionally subsamples for tiny configs, computes the normalisation statistics on the
training split (or takes a reader's published `MEAN` / `STD`: CIFAR), and writes
everything atomically, with the indices of the held-out images in the raw training
split and the seed that drew them (`held_out`, `split_seed` in the file).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lskd.atomic import atomic_path
from lskd.data import cifar, fashion_mnist
from lskd.errors import DataError

READERS = {"fashion_mnist": fashion_mnist, **cifar.READERS}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Arrays:
    """Images are (N, C, H, W) uint8, labels (N,) int64."""

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # the validation images' indices in the raw training split, and their seed
    held_out: np.ndarray | None = None
    split_seed: int | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.images["train"].shape[1])

    def with_train(self, indices: np.ndarray) -> Arrays:
        """The same data with the training split cut to `indices` (normalisation
        statistics unchanged: they belong to the prepared dataset)."""
        return replace(
            self,
            images={**self.images, "train": self.images["train"][indices]},
            labels={**self.labels, "train": self.labels["train"][indices]},
        )


def _take(rng: np.random.Generator, n: int, size: int | None) -> np.ndarray:
    idx = rng.permutation(n)
    return np.sort(idx[:size]) if size is not None else np.arange(n)


def prepare_arrays(
    dataset: str,
    root: str | Path,
    val_size: int,
    split_seed: int,
    train_size: int | None = None,
    test_size: int | None = None,
    expect_train: int | None = None,
    expect_test: int | None = None,
) -> Arrays:
    """Read `dataset` from `root` and split it into train / held-out val / test;
    `expect_train` / `expect_test` are the raw splits' image counts to insist on."""
    reader = READERS[dataset]
    x, y = reader.load_split(root, "train")
    x_test, y_test = reader.load_split(root, "test")
    for split, n, want in (
        ("train", len(x), expect_train),
        ("test", len(x_test), expect_test),
    ):
        if want is not None and n != want:
            raise DataError(
                f"{root}: {dataset} {split} split has {n} images, expected {want} "
                "(data.expect_train / expect_test)"
            )
    rng = np.random.default_rng(split_seed)
    perm = rng.permutation(len(x))
    if val_size >= len(x):
        raise DataError(
            f"val_size {val_size} leaves no training images (train has {len(x)})"
        )
    val_idx, train_idx = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    if train_size is not None:
        train_idx = train_idx[_take(rng, len(train_idx), train_size)]
    test_idx = _take(rng, len(x_test), test_size)
    images = {"train": x[train_idx], "val": x[val_idx], "test": x_test[test_idx]}
    labels = {"train": y[train_idx], "val": y[val_idx], "test": y_test[test_idx]}
    images = {k: v[:, None] if v.ndim == 3 else v for k, v in images.items()}
    if hasattr(reader, "MEAN"):  # published statistics (CIFAR)
        mean, std = tuple(reader.MEAN), tuple(reader.STD)
    else:
        scaled = images["train"].astype(np.float64) / 255.0
        mean = tuple(float(m) for m in scaled.mean(axis=(0, 2, 3)))
        std = tuple(float(s) for s in scaled.std(axis=(0, 2, 3)))
    names = (
        reader.class_names(root)
        if hasattr(reader, "class_names")
        else reader.CLASS_NAMES
    )
    return Arrays(images, labels, tuple(names), mean, std, val_idx, split_seed)


def save_arrays(arrays: Arrays, path: str | Path) -> None:
    """Write `arrays` to one `.npz` (no pickled objects), atomically."""
    fields = {
        f"{kind}_{split}": getattr(arrays, kind)[split]
        for kind in ("images", "labels")
        for split in SPLITS
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            **fields,
            class_names=np.array(arrays.class_names),
            mean=np.array(arrays.mean),
            std=np.array(arrays.std),
            **(
                {}
                if arrays.held_out is None
                else {"held_out": arrays.held_out, "split_seed": arrays.split_seed}
            ),
        )


def load_arrays(path: str | Path) -> Arrays:
    """Read a file written by `save_arrays`; a missing or damaged file names itself."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            images = {s: npz[f"images_{s}"] for s in SPLITS}
            labels = {s: npz[f"labels_{s}"] for s in SPLITS}
            names = tuple(str(n) for n in npz["class_names"])
            mean, std = tuple(npz["mean"].tolist()), tuple(npz["std"].tolist())
    except FileNotFoundError:
        raise DataError(
            f"{path}: prepared dataset not found (run the prepare_data rule)"
        ) from None
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a prepared lskd dataset ({err})") from None
    return Arrays(images, labels, names, mean, std)
