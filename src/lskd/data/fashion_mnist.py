"""Fashion-MNIST read from Debian's `dataset-fashion-mnist` files (gzip'd IDX), no
download.

The IDX format: big-endian magic (0x00000803 images, 0x00000801 labels), then one 32-bit
size per dimension, then uint8 data.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from lskd.errors import DataError

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000),
}
_HINT = (
    "install it with `apt-get install dataset-fashion-mnist` "
    "or point the config's data root at a copy"
)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read one gzip'd IDX file with `ndim` dimensions as a uint8 array."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; {_HINT}")
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip file ({err}); {_HINT}") from None
    header = 4 + 4 * ndim
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic != 0x0800 + ndim or len(raw) < header:
        raise DataError(f"{path}: not an IDX file with {ndim} dimensions; {_HINT}")
    shape = tuple(
        int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(
            f"{path}: truncated, header says {shape} but {len(raw) - header} bytes "
            f"follow; {_HINT}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_split(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of `split` ('train' or 'test')."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found; {_HINT}")
    images_file, labels_file, expected = FILES[split]
    images = read_idx(root / images_file, 3)
    labels = read_idx(root / labels_file, 1).astype(np.int64)
    if len(images) != expected or len(labels) != expected:
        raise DataError(
            f"{root / images_file}: expected {expected} images and labels, "
            f"found {len(images)} and {len(labels)}; {_HINT}"
        )
    if labels.max() >= len(CLASS_NAMES):
        raise DataError(f"{root / labels_file}: label {labels.max()} outside 0..9")
    return images, labels
