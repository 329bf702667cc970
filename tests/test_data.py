"""Fashion-MNIST reader (real Debian files), prepared arrays and the batch iterator."""

import gzip
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from lskd.data import arrays as arrays_mod
from lskd.data.arrays import Arrays, load_arrays, prepare_arrays, save_arrays
from lskd.data.batches import Augment, Batches, augment_batch
from lskd.data.fashion_mnist import (
    CLASS_NAMES,
    DEFAULT_ROOT,
    FILES,
    load_split,
    read_idx,
)
from lskd.errors import DataError

HINT = "apt-get install dataset-fashion-mnist"


@pytest.fixture(scope="module")
def real_root() -> Path:
    root = Path(DEFAULT_ROOT)
    if not root.is_dir():
        pytest.skip(f"{root} missing: apt-get install dataset-fashion-mnist")
    return root


@pytest.fixture(scope="module")
def real_splits(real_root) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {split: load_split(real_root, split) for split in ("train", "test")}


def _write_idx(path: Path, data: np.ndarray, magic: int | None = None) -> Path:
    """gzip'd IDX: big-endian magic 0x0800 + ndim, one uint32 per dim, uint8 data."""
    magic = 0x0800 + data.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(
        int(d).to_bytes(4, "big") for d in data.shape
    )
    path.write_bytes(gzip.compress(header + data.astype(np.uint8).tobytes()))
    return path


# --- the real Debian files ----------------------------------------------------------


@pytest.mark.parametrize(("split", "n"), [("train", 60_000), ("test", 10_000)])
def test_real_split_shapes_and_balance(real_splits, split, n):
    images, labels = real_splits[split]
    assert images.shape == (n, 28, 28)
    assert images.dtype == np.uint8
    assert labels.shape == (n,)
    assert labels.dtype == np.int64
    # Fashion-MNIST is balanced: 6,000 per class in train, 1,000 in test
    assert np.bincount(labels, minlength=10).tolist() == [n // 10] * 10
    assert len(CLASS_NAMES) == 10
    # the images are not blank: pixel values span the whole uint8 range
    assert images.min() == 0
    assert images.max() == 255


def test_real_prepare_arrays(real_root, real_splits):
    a = prepare_arrays("fashion_mnist", real_root, val_size=5000, split_seed=0)
    assert {s: len(a.labels[s]) for s in ("train", "val", "test")} == {
        "train": 55_000,
        "val": 5_000,
        "test": 10_000,
    }
    assert a.images["train"].shape[1:] == (1, 28, 28)
    assert a.class_names == CLASS_NAMES
    assert (a.num_classes, a.in_channels) == (10, 1)
    # without test_size the test split is the Debian test file, in order
    np.testing.assert_array_equal(a.images["test"][:, 0], real_splits["test"][0])
    # train + val together are exactly the 60,000 training images (by label counts)
    both = np.concatenate([a.labels["train"], a.labels["val"]])
    assert np.bincount(both).tolist() == [6000] * 10


# --- reader errors on files made here -----------------------------------------------


def _assert_data_error(err: pytest.ExceptionInfo, path: Path) -> None:
    assert str(path) in str(err.value)
    assert HINT in str(err.value)


def test_missing_directory(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        load_split(root, "train")
    _assert_data_error(err, root)


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as err:
        load_split(tmp_path, "test")
    _assert_data_error(err, tmp_path / FILES["test"][0])


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"this is not gzip data")
    with pytest.raises(DataError, match="corrupt gzip") as err:
        read_idx(path, 3)
    _assert_data_error(err, path)


def test_truncated_gzip_stream(tmp_path):
    path = _write_idx(tmp_path / "x.gz", np.zeros((4, 28, 28)))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError) as err:
        read_idx(path, 3)
    _assert_data_error(err, path)


def test_wrong_magic(tmp_path):
    # a labels file (magic 0x801) read as images (0x803)
    path = _write_idx(tmp_path / "x.gz", np.zeros(10))
    with pytest.raises(DataError, match="not an IDX file") as err:
        read_idx(path, 3)
    _assert_data_error(err, path)


def test_truncated_data(tmp_path):
    # header says 4 x 28 x 28 = 3136 bytes, only 3000 follow
    path = tmp_path / "x.gz"
    header = (0x803).to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in (4, 28, 28)
    )
    path.write_bytes(gzip.compress(header + bytes(3000)))
    with pytest.raises(DataError, match="truncated") as err:
        read_idx(path, 3)
    _assert_data_error(err, path)


def test_read_idx_round_trip(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(
        read_idx(_write_idx(tmp_path / "x.gz", data), 3), data
    )


def test_wrong_image_count(tmp_path):
    images_file, labels_file, _ = FILES["test"]
    _write_idx(tmp_path / images_file, np.zeros((5, 28, 28)))
    _write_idx(tmp_path / labels_file, np.zeros(5))
    with pytest.raises(DataError, match="expected 10000") as err:
        load_split(tmp_path, "test")
    _assert_data_error(err, tmp_path / images_file)


# --- prepared arrays (fake reader: each image carries its own index) ---------------

N_TRAIN, N_TEST = 1000, 300


def _fake_split(n: int, seed: int, test: bool) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(seed).integers(0, 256, (n, 6, 6), dtype=np.uint8)
    ids = np.arange(n)
    images[:, 0, 0], images[:, 0, 1] = ids // 256, ids % 256
    images[:, 0, 2] = 255 if test else 0
    return images, (ids + (3 if test else 0)) % 10


@pytest.fixture
def fake(monkeypatch) -> str:
    splits = {
        "train": _fake_split(N_TRAIN, 1, False),
        "test": _fake_split(N_TEST, 2, True),
    }
    reader = types.SimpleNamespace(
        CLASS_NAMES=tuple(f"c{i}" for i in range(10)),
        load_split=lambda root, split: splits[split],
    )
    monkeypatch.setitem(arrays_mod.READERS, "fake", reader)
    return "fake"


def _ids(images: np.ndarray) -> np.ndarray:
    return images[:, 0, 0, 0].astype(int) * 256 + images[:, 0, 0, 1]


def test_val_holdout_disjoint_from_train(fake):
    a = prepare_arrays(fake, "unused", val_size=200, split_seed=0)
    train, val, test = (_ids(a.images[s]) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (800, 200, 300)
    assert not set(train) & set(val)
    assert sorted(np.concatenate([train, val])) == list(range(N_TRAIN))
    assert (a.images["val"][:, 0, 0, 2] == 0).all()  # val comes from train
    assert (a.images["test"][:, 0, 0, 2] == 255).all()
    # labels follow their images (fake label = id % 10 in train, (id + 3) % 10 in test)
    np.testing.assert_array_equal(a.labels["train"], train % 10)
    np.testing.assert_array_equal(a.labels["val"], val % 10)
    np.testing.assert_array_equal(a.labels["test"], (test + 3) % 10)


def test_split_is_deterministic_per_seed(fake):
    a = prepare_arrays(fake, "unused", val_size=200, split_seed=7)
    b = prepare_arrays(fake, "unused", val_size=200, split_seed=7)
    c = prepare_arrays(fake, "unused", val_size=200, split_seed=8)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(a.images[s], b.images[s])
        np.testing.assert_array_equal(a.labels[s], b.labels[s])
    assert set(_ids(a.images["val"])) != set(_ids(c.images["val"]))


def test_train_and_test_subsets(fake):
    full = prepare_arrays(fake, "unused", val_size=200, split_seed=3)
    a = prepare_arrays(
        fake, "unused", val_size=200, split_seed=3, train_size=100, test_size=50
    )
    assert (len(a.labels["train"]), len(a.labels["test"])) == (100, 50)
    assert set(_ids(a.images["train"])) <= set(_ids(full.images["train"]))
    assert set(_ids(a.images["test"])) <= set(range(N_TEST))
    assert len(set(_ids(a.images["test"]))) == 50  # no repeats
    # the held-out val split does not depend on the subsets
    np.testing.assert_array_equal(a.images["val"], full.images["val"])


def test_normalisation_from_train_split(fake):
    a = prepare_arrays(fake, "unused", val_size=200, split_seed=0, train_size=300)
    train = a.images["train"].astype(np.float64) / 255.0
    assert a.mean == pytest.approx((train.mean(),), abs=1e-12)
    assert a.std == pytest.approx((train.std(),), abs=1e-12)
    everything = np.concatenate([a.images[s] for s in ("train", "val", "test")])
    assert abs(a.mean[0] - everything.mean() / 255.0) > 1e-4  # not the pooled mean


def test_val_size_too_large(fake):
    with pytest.raises(DataError, match="val_size 1000"):
        prepare_arrays(fake, "unused", val_size=N_TRAIN, split_seed=0)


def test_save_load_round_trip(fake, tmp_path):
    a = prepare_arrays(fake, "unused", val_size=200, split_seed=0)
    path = tmp_path / "sub" / "data.npz"
    save_arrays(a, path)
    b = load_arrays(path)
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(b.images[s], a.images[s])
        np.testing.assert_array_equal(b.labels[s], a.labels[s])
        assert b.images[s].dtype == np.uint8
    assert (b.class_names, b.mean, b.std) == (a.class_names, a.mean, a.std)
    assert [p.name for p in path.parent.iterdir()] == ["data.npz"]  # no temp left


def test_load_arrays_errors_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not an npz file at all")
    with pytest.raises(DataError, match="not a prepared lskd dataset") as err:
        load_arrays(garbage)
    assert str(garbage) in str(err.value)
    partial = tmp_path / "partial.npz"
    np.savez(partial, images_train=np.zeros((1, 1, 2, 2), np.uint8))
    with pytest.raises(DataError) as err:
        load_arrays(partial)
    assert str(partial) in str(err.value)
    with pytest.raises(DataError, match="not found") as err:
        load_arrays(tmp_path / "missing.npz")
    assert str(tmp_path / "missing.npz") in str(err.value)


# --- batches ------------------------------------------------------------------------


def _toy(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((n, 1, 4, 4), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # pixel (0, 0) = index
    return images, np.arange(n) % 3


@pytest.mark.parametrize(("drop_last", "sizes"), [(False, [4, 4, 2]), (True, [4, 4])])
def test_batch_count(drop_last, sizes):
    # 10 images in batches of 4: 4 + 4 + 2, or 4 + 4 when the last is dropped
    images, labels = _toy(10)
    batches = Batches(images, labels, 4, (0.0,), (1.0,), drop_last=drop_last)
    assert len(batches) == len(sizes)
    assert [len(y) for _, y in batches] == sizes


def test_fixed_order_without_generator():
    images, labels = _toy(10)
    xs = [x for x, _ in Batches(images, labels, 4, (0.0,), (1.0,))]
    order = torch.cat(xs)[:, 0, 0, 0] * 255
    assert order.round().tolist() == list(range(10))


def _epoch(
    seed: int, augment: Augment | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    images = np.random.default_rng(0).integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)
    gen = torch.Generator().manual_seed(seed)
    batches = Batches(images, np.arange(20), 6, (0.5,), (0.25,), gen, augment)
    return list(batches)


def test_same_seed_same_batches():
    a, b, c = (_epoch(s, Augment(pad=2, hflip=True)) for s in (5, 5, 6))
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb)
        assert torch.equal(ya, yb)
    assert not all(torch.equal(ya, yc) for (_, ya), (_, yc) in zip(a, c, strict=True))


def test_shuffled_epoch_is_a_permutation():
    labels = torch.cat([y for _, y in _epoch(0, None)])
    assert sorted(labels.tolist()) == list(range(20))
    assert labels.tolist() != list(range(20))


def test_normalisation():
    # pixel 51 -> 51/255 = 0.2 -> (0.2 - 0.1) / 0.5 = 0.2
    # pixel 0 -> (0 - 0.1) / 0.5 = -0.2
    images = np.zeros((1, 1, 2, 2), np.uint8)
    images[0, 0, 1, 1] = 51
    ((x, _),) = Batches(images, np.zeros(1, np.int64), 1, (0.1,), (0.5,))
    expected = torch.tensor([[[[-0.2, -0.2], [-0.2, 0.2]]]])
    torch.testing.assert_close(x, expected)
    assert x.dtype == torch.float32


def test_normalisation_per_channel():
    images = np.full((1, 3, 1, 1), 255, np.uint8)
    ((x, _),) = Batches(
        images, np.zeros(1, np.int64), 1, (0.0, 0.5, 1.0), (1.0, 0.5, 2.0)
    )
    # (1 - m) / s per channel: 1, 1, 0
    assert x.flatten().tolist() == [1.0, 1.0, 0.0]


def test_augment_pad_shifts_by_at_most_pad():
    # one bright pixel at (14, 14); a crop of the 2-padded image starting at (dy, dx) in
    # 0..4 puts it at (14 + 2 - dy, 14 + 2 - dx), so rows and columns 12..16
    x = torch.zeros(64, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    out = augment_batch(
        x, Augment(pad=2, hflip=False), torch.Generator().manual_seed(0)
    )
    assert out.shape == x.shape
    assert torch.equal(out.sum(dim=(1, 2, 3)), torch.ones(64))  # nothing lost
    where = out[:, 0].flatten(1).argmax(1)
    rows, cols = where // 28, where % 28
    assert rows.min() >= 12 and rows.max() <= 16
    assert cols.min() >= 12 and cols.max() <= 16
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 5  # it does move


def test_augment_pad_zero_fills_at_the_border():
    # an all-ones image shifted by (dy, dx) keeps (28 - |2 - dy|)(28 - |2 - dx|) ones
    x = torch.ones(32, 1, 28, 28)
    out = augment_batch(
        x, Augment(pad=2, hflip=False), torch.Generator().manual_seed(1)
    )
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert (out.sum(dim=(1, 2, 3)) >= 26 * 26).all()
    assert (out.sum(dim=(1, 2, 3)) < 28 * 28).any()


def test_augment_hflip_flips():
    x = torch.arange(4.0).view(1, 1, 1, 4).repeat(64, 1, 1, 1)  # [0 1 2 3] per image
    out = augment_batch(x, Augment(pad=0, hflip=True), torch.Generator().manual_seed(0))
    flipped = torch.tensor([3.0, 2.0, 1.0, 0.0])
    is_flip = (out[:, 0, 0] == flipped).all(1)
    is_same = (out[:, 0, 0] == x[:, 0, 0]).all(1)
    assert (is_flip | is_same).all()
    assert 0 < int(is_flip.sum()) < 64  # about half are flipped


def test_augment_is_applied_by_batches():
    images = np.zeros((16, 1, 8, 8), np.uint8)
    images[:, 0, :, 0] = 255  # bright left column
    gen = torch.Generator().manual_seed(0)
    batches = Batches(
        images,
        np.zeros(16, np.int64),
        16,
        (0.0,),
        (1.0,),
        gen,
        Augment(pad=2, hflip=True),
    )
    ((x, _),) = batches
    assert not torch.equal(x, torch.from_numpy(images).float() / 255)


def test_arrays_properties():
    a = Arrays(
        images={s: np.zeros((2, 3, 8, 8), np.uint8) for s in ("train", "val", "test")},
        labels={s: np.zeros(2, np.int64) for s in ("train", "val", "test")},
        class_names=("a", "b", "c", "d"),
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
    )
    assert (a.num_classes, a.in_channels) == (4, 3)
