"""CIFAR-10 and CIFAR-100 read from the archives' "python version" layout, no download.

`<root>/cifar-100-python/{train,test,meta}` and `<root>/cifar-10-batches-py/
{data_batch_1..5,test_batch,batches.meta}`: the directories `cifar-100-python.tar.gz`
and `cifar-10-python.tar.gz` unpack to, as torchvision's `CIFAR100` / `CIFAR10` expect
them under their `root` (`root` may also be that directory itself). Each file is a
pickled dict: `data` (N, 3072) uint8, rows of 1024 red, 1024 green, 1024 blue values
of a 32x32 image, and `fine_labels` (CIFAR-100) or `labels` (CIFAR-10); the meta file
names the classes.

Read here rather than by torchvision's classes, which refuse any file whose md5 is not
the official archive's and then say only "Dataset not found or corrupted": this reader
names the missing, truncated or malformed file in one line, unpickles through an
allow-list (numpy arrays and plain values only, never arbitrary objects), and logs
whether each file is the official one (torchvision's md5 list) or another copy (a
subset, or the files the tests generate).

Normalisation uses the published statistics (`MEAN`, `STD`) instead of the prepared
split's own: the CIFAR-100 mean/std of CRD's code (RepDistiller
`dataset/cifar100.py`), the standard CIFAR-10 one for CIFAR-10.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lskd.atomic import atomic_path
from lskd.errors import DataError

log = logging.getLogger(__name__)

_HINT = (
    "unpack the python version of the archive (cifar-100-python.tar.gz / "
    "cifar-10-python.tar.gz) under the config's data root"
)
# what the archives' pickles may reference: numpy's array reconstruction, and
# Python 3's protocol-2 spelling of bytes (files written by Python 3)
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict[str, Any]:
    """One archive file as a dict with str keys; a missing, truncated or foreign file
    raises `DataError` naming it."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; {_HINT}")
    try:
        with open(path, "rb") as fh:
            obj = _Unpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DataError(
            f"{path}: truncated or not a CIFAR pickle ({type(err).__name__}: "
            f"{err or 'ends early'}); {_HINT}"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR pickle (a {type(obj).__name__}); {_HINT}")
    return {
        k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()
    }


@dataclass(frozen=True)
class CifarReader:
    """One of the two CIFAR layouts; `load_split` and `class_names` as every reader
    of `lskd.data.arrays` offers them."""

    name: str
    folder: str
    files: dict[str, tuple[str, ...]]  # split -> its batch files
    meta: str
    label_key: str
    names_key: str
    classes: int
    official: str  # torchvision's dataset class holding the md5 of each file
    MEAN: tuple[float, float, float]
    STD: tuple[float, float, float]

    def base(self, root: str | Path) -> Path:
        """The directory holding the files: `root/<folder>`, or `root` itself."""
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: data directory not found; {_HINT}")
        return root if root.name == self.folder else root / self.folder

    def class_names(self, root: str | Path) -> tuple[str, ...]:
        path = self.base(root) / self.meta
        names = read_pickle(path).get(self.names_key)
        if not isinstance(names, list) or len(names) != self.classes:
            raise DataError(
                f"{path}: expected {self.classes} class names under "
                f"{self.names_key!r}; {_HINT}"
            )
        return tuple(str(n) for n in names)

    def load_split(self, root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of `split`."""
        base = self.base(root)
        images, labels = [], []
        for name in self.files[split]:
            x, y = self._batch(base / name)
            images.append(x)
            labels.append(y)
        self._check_official(base, split)
        return np.concatenate(images), np.concatenate(labels)

    def _batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        d = read_pickle(path)
        data, labels = d.get("data"), d.get(self.label_key)
        if not isinstance(data, np.ndarray) or labels is None:
            raise DataError(f"{path}: no 'data' array or {self.label_key!r}; {_HINT}")
        labels = np.asarray(labels, dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(
                f"{path}: 'data' is {data.dtype} {data.shape}, expected uint8 "
                f"(N, 3072); {_HINT}"
            )
        if len(labels) != len(data):
            raise DataError(
                f"{path}: {len(data)} images but {len(labels)} labels; {_HINT}"
            )
        if len(labels) and not 0 <= labels.min() <= labels.max() < self.classes:
            raise DataError(
                f"{path}: labels outside 0..{self.classes - 1} "
                f"({labels.min()}..{labels.max()})"
            )
        return data.reshape(-1, 3, 32, 32), labels

    def _check_official(self, base: Path, split: str) -> None:
        """Log whether the files are the official archive's (their md5)."""
        import torchvision.datasets as tvd  # only for its md5 list

        cls = getattr(tvd, self.official)
        known = dict(cls.train_list if split == "train" else cls.test_list)
        same = all(
            hashlib.md5((base / f).read_bytes(), usedforsecurity=False).hexdigest()
            == known.get(f)
            for f in self.files[split]
        )
        log.info(
            "%s %s: %s",
            self.name,
            split,
            "the official archive's files (md5)"
            if same
            else "not the official "
            "archive's files (md5 differs): a subset or another copy",
        )


# CRD's CIFAR-100 normalisation (RepDistiller dataset/cifar100.py)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
# the usual CIFAR-10 statistics (per-channel mean / std of its training images)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

CIFAR100 = CifarReader(
    name="cifar100",
    folder="cifar-100-python",
    files={"train": ("train",), "test": ("test",)},
    meta="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    classes=100,
    official="CIFAR100",
    MEAN=CIFAR100_MEAN,
    STD=CIFAR100_STD,
)
CIFAR10 = CifarReader(
    name="cifar10",
    folder="cifar-10-batches-py",
    files={
        "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test": ("test_batch",),
    },
    meta="batches.meta",
    label_key="labels",
    names_key="label_names",
    classes=10,
    official="CIFAR10",
    MEAN=CIFAR10_MEAN,
    STD=CIFAR10_STD,
)
READERS = {"cifar100": CIFAR100, "cifar10": CIFAR10}


def write_archive(
    root: str | Path,
    reader: CifarReader,
    n_train: int,
    n_test: int,
    seed: int = 0,
) -> Path:
    """Write random images in `reader`'s archive layout under `root` (tests and
    benchmarks: nothing is downloaded); returns the archive directory. Every class
    gets a mean colour of its own, so a model can learn something from the images."""
    base = Path(root) / reader.folder
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(reader.classes, 3, 1))
    counts = {"train": n_train, "test": n_test}
    for split, files in reader.files.items():
        per_file = np.array_split(np.arange(counts[split]), len(files))
        for name, idx in zip(files, per_file, strict=True):
            labels = (idx % reader.classes).astype(np.int64)
            noise = rng.integers(-60, 61, size=(len(idx), 3, 1024))
            data = np.clip(colours[labels] + noise, 0, 255).astype(np.uint8)
            batch = {
                "batch_label": f"{split} batch",
                reader.label_key: labels.tolist(),
                "data": data.reshape(len(idx), 3072),
                "filenames": [f"img_{i}.png" for i in idx],
            }
            with atomic_path(base / name) as tmp, open(tmp, "wb") as fh:
                pickle.dump(batch, fh, protocol=2)
    names = [f"class_{k}" for k in range(reader.classes)]
    with atomic_path(base / reader.meta) as tmp, open(tmp, "wb") as fh:
        pickle.dump({reader.names_key: names}, fh, protocol=2)
    return base
