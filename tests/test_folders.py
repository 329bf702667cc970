"""Image-folder manifests (ImageNet and CUB layouts), transforms and `FolderSource`,
on tiny real JPEG files written by PIL."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lskd.data.augment import IMAGENET_MEAN, IMAGENET_STD
from lskd.data.folders import (
    FolderSource,
    Manifest,
    check_readable,
    load_manifest,
    save_manifest,
    scan_cub,
    scan_imagefolder,
    select_subset,
)
from lskd.data.interface import Shard
from lskd.data.source import open_folder_source, open_source
from lskd.data.transforms import ImageAugment, eval_transform, train_transform
from lskd.errors import ConfigError, DataError

CLASSES = ("n01", "n02", "n03")
COLOURS = ((200, 40, 40), (40, 200, 40), (40, 40, 200))
TINY = {"image_size": 16, "eval_resize": 20}  # augment settings for 40x48 images


def write_jpeg(path: Path, label: int, seed: int, size: tuple[int, int] = (40, 48)):
    """A class-coloured image with a horizontal ramp (so flips change it) and noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(-40, 40, w)[None, :, None]
    arr = np.array(COLOURS[label])[None, None, :] + ramp + rng.normal(0, 10, (h, w, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def make_imagefolder(root: Path, n_train: int = 6, n_val: int = 3) -> Path:
    for label, name in enumerate(CLASSES):
        for i in range(n_train):
            size = (48, 40) if i % 2 else (40, 48)  # landscape and portrait
            write_jpeg(root / "train" / name / f"{name}_{i}.JPEG", label, i, size)
        for i in range(n_val):
            write_jpeg(root / "val" / name / f"val_{label}{i}.JPEG", label, 100 + i)
    return root


def make_cub(root: Path, per_class: int = 5) -> Path:
    """Official CUB_200_2011 layout; images 1, 3, 5 of each class are test images."""
    cub = root / "CUB_200_2011"
    names = [f"{c + 1:03d}.Bird_{c}" for c in range(3)]
    lines: dict[str, list[str]] = {k: [] for k in ("images", "split", "labels")}
    for c, name in enumerate(names):
        for i in range(per_class):
            image_id = c * per_class + i + 1
            rel = f"{name}/Bird_{c}_{i:04d}.jpg"
            write_jpeg(cub / "images" / rel, c, image_id)
            lines["images"].append(f"{image_id} {rel}")
            lines["split"].append(f"{image_id} {i % 2}")
            lines["labels"].append(f"{image_id} {c + 1}")
    (cub / "classes.txt").write_text(
        "".join(f"{c + 1} {n}\n" for c, n in enumerate(names))
    )
    for key, file in (
        ("images", "images.txt"),
        ("split", "train_test_split.txt"),
        ("labels", "image_class_labels.txt"),
    ):
        (cub / file).write_text("\n".join(lines[key]) + "\n")
    return root


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="module")
def manifest(folder_root) -> Manifest:
    return scan_imagefolder(folder_root, val_per_class=2, split_seed=0)


@pytest.fixture
def fresh_root(tmp_path) -> Path:
    """A private copy to damage."""
    return make_imagefolder(tmp_path / "imagenet")


def scan_cub_tiny(root: Path, **kw) -> Manifest:
    expect = {"expect_classes": 3, "expect_train": 6, "expect_test": 9, **kw}
    return scan_cub(root, val_per_class=1, split_seed=0, **expect)


# --- ImageFolder manifests -----------------------------------------------------------


def test_scan_imagefolder_counts_labels_and_order(manifest, folder_root):
    assert manifest.dataset == "imagefolder"
    assert manifest.root == str(folder_root.resolve())
    assert manifest.class_names == list(CLASSES)
    counts = {s: np.bincount(manifest.labels(s)).tolist() for s in manifest.splits}
    assert counts == {"train": [4, 4, 4], "val": [2, 2, 2], "test": [3, 3, 3]}
    assert manifest.splits["test"][:2] == [
        ["val/n01/val_00.JPEG", 0],
        ["val/n01/val_01.JPEG", 0],
    ]
    for rel, label in manifest.splits["train"]:
        assert rel.startswith(f"train/{CLASSES[label]}/")
        assert (folder_root / rel).is_file()
    train = [rel for rel, _ in manifest.splits["train"]]
    assert train == sorted(train)  # sorted file order is kept


def test_held_out_val_is_disjoint_sized_and_seeded(manifest, folder_root):
    train = {rel for rel, _ in manifest.splits["train"]}
    val = {rel for rel, _ in manifest.splits["val"]}
    assert not train & val
    files = (folder_root / "train").rglob("*.JPEG")
    assert train | val == {p.relative_to(folder_root).as_posix() for p in files}
    again = scan_imagefolder(folder_root, val_per_class=2, split_seed=0)
    other = scan_imagefolder(folder_root, val_per_class=2, split_seed=1)
    assert again == manifest
    assert other.splits["val"] != manifest.splits["val"]
    assert other.splits["test"] == manifest.splits["test"]


def _break(root: Path, how: str) -> str:
    """Damage the copy at `root`; return the text the error must contain."""
    if how == "no root":
        shutil.rmtree(root)
        return f"{root}: dataset directory not found"
    if how == "no val":
        shutil.rmtree(root / "val")
        return f"{root / 'val'}: directory not found"
    if how == "class mismatch":
        (root / "val" / "n03").rename(root / "val" / "n04")
        return f"{root / 'val'}: class folders differ from {root / 'train'}"
    if how == "empty class":
        for f in (root / "val" / "n02").iterdir():
            f.unlink()
        return f"{root / 'val' / 'n02'}: 0 images"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["no root", "no val", "class mismatch", "empty class"])
def test_scan_imagefolder_layout_errors_name_the_path(fresh_root, how):
    expected = _break(fresh_root, how)
    with pytest.raises(DataError) as err:
        scan_imagefolder(fresh_root, val_per_class=1, split_seed=0)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"expect_classes": 1000}, "train: 3 classes, expected 1000"),
        ({"expect_train": 1_281_167}, "train: 18 images, expected 1281167"),
        ({"expect_test": 50_000}, "val: 9 images, expected 50000"),
        ({"val_per_class": 6}, "class n01 has 6 images, val_per_class 6 leaves none"),
    ],
)
def test_scan_imagefolder_count_errors(folder_root, kw, message):
    kw = {"val_per_class": 1, **kw}
    with pytest.raises(DataError, match=message):
        scan_imagefolder(folder_root, split_seed=0, **kw)


# --- CUB-200-2011 --------------------------------------------------------------------


def test_scan_cub_official_split(tmp_path):
    m = scan_cub_tiny(make_cub(tmp_path))
    assert m.dataset == "cub200"
    assert m.root == str(tmp_path.resolve() / "CUB_200_2011")
    assert m.class_names == ["001.Bird_0", "002.Bird_1", "003.Bird_2"]
    # is_training_image = i % 2 → images 1 and 3 of each class train, 0, 2, 4 test
    assert [rel[-8:] for rel, _ in m.splits["test"][:3]] == [
        "0000.jpg",
        "0002.jpg",
        "0004.jpg",
    ]
    assert m.labels("test").tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sorted(m.labels("train").tolist() + m.labels("val").tolist()) == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    assert np.bincount(m.labels("val")).tolist() == [1, 1, 1]
    assert scan_cub_tiny(tmp_path / "CUB_200_2011") == m  # either root works


def test_scan_cub_checks_official_counts_by_default(tmp_path):
    make_cub(tmp_path)
    with pytest.raises(DataError, match=r"classes.txt: 3 classes, expected 200"):
        scan_cub(tmp_path, val_per_class=1, split_seed=0)
    with pytest.raises(DataError, match=r"train_test_split.txt: 6 training images"):
        scan_cub_tiny(tmp_path, expect_train=5994)


def test_scan_cub_id_mismatch_names_the_file(tmp_path):
    cub = make_cub(tmp_path) / "CUB_200_2011"
    labels = cub / "image_class_labels.txt"
    labels.write_text(labels.read_text().replace("15 3\n", "16 3\n"))
    with pytest.raises(DataError, match=f"{labels}: image ids differ"):
        scan_cub_tiny(tmp_path)


def test_scan_cub_missing_file_and_image(tmp_path):
    cub = make_cub(tmp_path) / "CUB_200_2011"
    image = cub / "images" / "002.Bird_1" / "Bird_1_0003.jpg"
    image.unlink()
    with pytest.raises(DataError, match=f"{image}: image file not found"):
        scan_cub_tiny(tmp_path)
    (cub / "train_test_split.txt").unlink()
    with pytest.raises(DataError, match=f"{cub / 'train_test_split.txt'}: file not"):
        scan_cub_tiny(tmp_path)


# --- readability, files, subsets -----------------------------------------------------


def test_check_readable_names_a_truncated_jpeg(fresh_root):
    m = scan_imagefolder(fresh_root, val_per_class=1, split_seed=0)
    assert check_readable(m) == 27
    bad = fresh_root / m.splits["test"][4][0]
    bad.write_bytes(bad.read_bytes()[:-200])  # Image.verify() alone passes this file
    with pytest.raises(DataError, match=f"{bad}: unreadable image"):
        check_readable(m)
    assert check_readable(m, limit=2) == 6  # the damaged file is 5th of its split


def test_manifest_round_trip_and_bad_files(manifest, tmp_path):
    path = tmp_path / "data" / "manifest.json"
    save_manifest(manifest, path)
    assert load_manifest(path) == manifest
    with pytest.raises(
        DataError, match=f"{tmp_path / 'nope.json'}: manifest not found"
    ):
        load_manifest(tmp_path / "nope.json")
    obj = json.loads(path.read_text())
    obj["splits"]["train"][0][1] = 7  # label out of range
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match=f"{path}: not an lskd image manifest"):
        load_manifest(path)
    path.write_text("{")
    with pytest.raises(DataError, match=f"{path}: not an lskd image manifest"):
        load_manifest(path)


def test_select_subset_takes_first_files_with_original_labels(manifest):
    sub = select_subset(manifest, [2, "n01"], train_per_class=5, test_per_class=2)
    assert sub.class_names == list(CLASSES)
    # the first 5 of the training folder, whether they were held out as val or not
    assert sub.splits["train"] == [[f"train/n03/n03_{i}.JPEG", 2] for i in range(5)] + [
        [f"train/n01/n01_{i}.JPEG", 0] for i in range(5)
    ]
    assert sub.splits["test"] == [
        ["val/n03/val_20.JPEG", 2],
        ["val/n03/val_21.JPEG", 2],
        ["val/n01/val_00.JPEG", 0],
        ["val/n01/val_01.JPEG", 0],
    ]
    assert sub.splits["val"] == []
    with pytest.raises(DataError, match="class n02 has 3 test images, 4 requested"):
        select_subset(manifest, [1], train_per_class=1, test_per_class=4)
    with pytest.raises(ConfigError, match="classes: 'n09'"):
        select_subset(manifest, ["n09"], train_per_class=1, test_per_class=1)


# --- transforms ----------------------------------------------------------------------


def test_augment_keys_are_checked():
    assert ImageAugment.from_dict({"pad": 4}) == ImageAugment.from_dict(
        {}
    )  # array-only key
    with pytest.raises(ConfigError, match="augment.crop_size: unknown key"):
        ImageAugment.from_dict({"crop_size": 3})
    with pytest.raises(ConfigError, match="augment.crop_scale: 0.5 is not of type"):
        ImageAugment.from_dict({"crop_scale": 0.5})
    with pytest.raises(ConfigError, match="augment.grayscale_p: 2 is greater than"):
        ImageAugment.from_dict({"grayscale_p": 2})
    with pytest.raises(ConfigError, match=r"augment.crop_ratio: value \(2.0, 1.0\)"):
        ImageAugment.from_dict({"crop_ratio": [2, 1]})


def test_cub_train_transform_has_the_recipe_order():
    cub = {
        "crop_scale": [0.2, 1.0],
        "crop_ratio": [0.8, 1.25],
        "rotation": 45,
        "grayscale_p": 0.2,
        "color_jitter": [0.2, 0.2, 0, 0],
    }
    names = [type(t).__name__ for t in train_transform(cub).transforms]
    assert names == [
        "RandomResizedCrop",
        "RandomHorizontalFlip",
        "RandomRotation",
        "RandomGrayscale",
        "ColorJitter",
        "ToTensor",
        "Normalize",
    ]
    default = [type(t).__name__ for t in train_transform({}).transforms]
    assert default == [
        "RandomResizedCrop",
        "RandomHorizontalFlip",
        "ToTensor",
        "Normalize",
    ]
    crop = train_transform(cub).transforms[0]
    assert (crop.size, crop.scale, crop.ratio) == ((224, 224), (0.2, 1.0), (0.8, 1.25))


# --- FolderSource --------------------------------------------------------------------


def _epochs(source, seed: int, epochs: int = 2, **kw) -> list[list]:
    gen = torch.Generator().manual_seed(seed)
    batches = source.train_batches(4, gen, **kw)
    return [list(batches) for _ in range(epochs)]


def test_train_batches_shape_normalisation_and_length(manifest):
    source = FolderSource(manifest, TINY)
    batches = source.train_batches(5, torch.Generator().manual_seed(0))
    assert len(batches) == 2  # 12 training images, drop_last
    got = list(batches)
    assert len(got) == 2
    for x, y in got:
        assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
        assert y.dtype == torch.int64
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        pixels = x * std + mean
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
        # class colours survive augmentation: the dominant channel is the label's
        assert pixels.mean(dim=(2, 3)).argmax(1).tolist() == y.tolist()


def test_same_generator_state_same_batches_any_worker_count(manifest):
    source0 = FolderSource(manifest, TINY, workers=0)
    source2 = FolderSource(manifest, TINY, workers=2)
    global_state = torch.get_rng_state()
    a, b = _epochs(source0, 7), _epochs(source2, 7)
    assert torch.equal(torch.get_rng_state(), global_state)  # global RNG untouched
    for epoch_a, epoch_b in zip(a, b, strict=True):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a[0][0][0], a[1][0][0])  # a new permutation per epoch
    assert not torch.equal(a[0][0][0], _epochs(source0, 8, epochs=1)[0][0][0])


def test_shards_are_disjoint_and_cover_the_epoch(manifest):
    # identical crops per image would make images comparable; use eval-like settings
    aug = {**TINY, "crop_scale": [1.0, 1.0], "crop_ratio": [1.2, 1.2], "hflip": False}
    source = FolderSource(manifest, aug)
    seen = {}
    for rank in (0, 1):
        batches = source.train_batches(
            2, torch.Generator().manual_seed(3), Shard(rank, 2)
        )
        assert len(batches) == 3  # 12 images / 2 ranks / batch 2
        seen[rank] = torch.cat([x for x, _ in batches]).flatten(1)
    both = torch.cat([seen[0], seen[1]])
    assert len(both) == 12
    assert torch.unique(both, dim=0).shape[0] == 12  # every training image once


def test_eval_batches_match_the_eval_transform_by_hand(manifest):
    source = FolderSource(manifest, TINY)
    batches = source.eval_batches("test", 4)
    assert len(batches) == 3  # 9 test images: 4 + 4 + 1
    x, y = next(iter(batches))
    first = Path(manifest.root) / manifest.splits["test"][0][0]
    by_hand = eval_transform(TINY)(Image.open(first).convert("RGB"))
    assert torch.equal(x[0], by_hand)
    assert torch.cat([y for _, y in batches]).tolist() == source.labels("test").tolist()
    assert torch.equal(next(iter(source.eval_batches("test", 4)))[0], x)  # fixed order
    subset = source.eval_batches(
        "test", 4, indices=np.array([8, 0, 3]), shard=Shard(1, 2)
    )
    ((x1, y1),) = list(subset)  # rank 1 of 2 gets the second of [8, 0, 3]
    assert torch.equal(x1[0], x[0]) and y1.tolist() == [0]


def test_open_source_reads_a_manifest(manifest, tmp_path):
    path = tmp_path / "manifest.json"
    save_manifest(manifest, path)
    source = open_source(path, TINY)
    assert isinstance(source, FolderSource)
    assert source.class_names == CLASSES and source.image_size == 16
    assert source.in_channels == 3
    with pytest.raises(ConfigError, match="loader: unknown value 'ffcv'"):
        open_folder_source(path, TINY, loader="ffcv")
    with pytest.raises(ConfigError, match="batch_size: 13 is more than the 12"):
        source.train_batches(13, torch.Generator())


def test_dali_loader_without_dali_names_the_extra(manifest, tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    save_manifest(manifest, path)
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)  # import fails as if absent
    monkeypatch.delitem(sys.modules, "lskd.data.dali", raising=False)
    with pytest.raises(ConfigError, match=r"pip install 'lskd\[dali\]'"):
        open_folder_source(path, TINY, loader="dali")


def test_scan_logs_its_progress(folder_root, monkeypatch, caplog):
    """LSKD_LOG_EVERY=0: a line before every class after the first, per split, with
    the files found so far."""
    monkeypatch.setenv("LSKD_LOG_EVERY", "0")
    with caplog.at_level("INFO", logger="lskd"):
        scan_imagefolder(folder_root, val_per_class=2, split_seed=0)
    lines = [r.getMessage() for r in caplog.records if "scanning" in r.getMessage()]
    n = len(CLASSES)
    assert len(lines) == 2 * (n - 1)  # train and val
    assert f"class {n - 1}/{n}, {6 * (n - 1)} files so far" in lines[n - 2]
