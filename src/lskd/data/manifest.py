"""Image-file datasets as a JSON manifest of (file, label) splits.

`scan_imagefolder` (ImageNet-style `train/<class>/*` + `val/<class>/*`) and `scan_cub`
(the official CUB_200_2011 layout) list the files, check them against the expected
counts (docs/recipes.md#data-sets) and hold out `val_per_class` training images per
class as the `val` split, so model selection never looks at the reported `test` split.
`select_subset` cuts the visualisation subset
(docs/visualisation.md#the-official-script) from a manifest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lskd.atomic import write_text
from lskd.data.interface import SPLITS
from lskd.errors import ConfigError, DataError
from lskd.progress import Interval, format_clock

log = logging.getLogger("lskd")

DATASETS = ("imagefolder", "cub200")
EXTENSIONS = (".jpeg", ".jpg", ".png")
CUB_FILES = ("images.txt", "train_test_split.txt", "image_class_labels.txt")
FORMAT = "lskd-image-manifest/1"


@dataclass
class Manifest:
    """`splits[s]` lists `[path relative to root, label]` in a fixed order."""

    dataset: str
    root: str
    class_names: list[str]
    splits: dict[str, list[list[Any]]]

    def labels(self, split: str) -> np.ndarray:
        return np.array([y for _, y in self.splits[split]], dtype=np.int64)

    def with_train(self, indices: np.ndarray) -> Manifest:
        """The same manifest with the training split cut to `indices`."""
        train = [self.splits["train"][i] for i in np.asarray(indices).tolist()]
        return replace(self, splits={**self.splits, "train": train})

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Manifest:
        """Check the structure; a bad field raises `ValueError` naming it."""
        if obj.get("format") != FORMAT:
            raise ValueError(f"format is {obj.get('format')!r}, expected {FORMAT!r}")
        m = cls(obj["dataset"], obj["root"], obj["class_names"], obj["splits"])
        if m.dataset not in DATASETS:
            raise ValueError(f"dataset {m.dataset!r} is not one of {DATASETS}")
        if sorted(m.splits) != sorted(SPLITS):
            raise ValueError(f"splits are {sorted(m.splits)}, expected {list(SPLITS)}")
        k = len(m.class_names)
        for split, items in m.splits.items():
            for item in items:
                if not (
                    len(item) == 2
                    and isinstance(item[0], str)
                    and type(item[1]) is int
                    and 0 <= item[1] < k
                ):
                    raise ValueError(f"splits.{split}: bad entry {item!r}")
        return m


def _expect(where: Path, what: str, n: int, expected: int | None) -> None:
    if expected is not None and n != expected:
        raise DataError(f"{where}: {n} {what}, expected {expected}")


def _hold_out(
    items: list[list[Any]], names: list[str], val_per_class: int, seed: int, where: Path
) -> tuple[list[list[Any]], list[list[Any]]]:
    """Move `val_per_class` random items of each class to a validation list; both
    lists keep the input order."""
    if val_per_class < 0:
        raise ConfigError(f"val_per_class: {val_per_class} is negative")
    rng = np.random.default_rng(seed)
    labels = np.array([y for _, y in items], dtype=np.int64)
    is_val = np.zeros(len(items), dtype=bool)
    for c, name in enumerate(names):
        idx = np.flatnonzero(labels == c)
        if val_per_class >= len(idx):
            raise DataError(
                f"{where}: class {name} has {len(idx)} images, val_per_class "
                f"{val_per_class} leaves none for training"
            )
        is_val[rng.choice(idx, val_per_class, replace=False)] = True
    train = [it for it, v in zip(items, is_val, strict=True) if not v]
    return train, [it for it, v in zip(items, is_val, strict=True) if v]


def _class_dirs(path: Path) -> list[str]:
    if not path.is_dir():
        raise DataError(f"{path}: directory not found")
    names = sorted(
        e.name for e in os.scandir(path) if e.is_dir() and not _hidden(e.name)
    )
    if not names:
        raise DataError(f"{path}: no class folders")
    return names


def _hidden(name: str) -> bool:
    """Hidden files and folders (`.ipynb_checkpoints`, `._x.JPEG` of macOS) are not
    data: never a class, never an image."""
    return name.startswith(".")


def _walk(top: Path):
    """`os.walk(top)` (symlinks followed) without hidden folders."""
    for d, dirs, files in os.walk(top, followlinks=True):
        dirs[:] = [x for x in dirs if not _hidden(x)]
        yield d, dirs, files


def _list_images(root: Path, sub: str, classes: list[str]) -> list[list[Any]]:
    """Files of each class folder in torchvision ImageFolder's order (sorted walk); a
    progress line per `lskd.progress.Interval` (1.3 M ImageNet files take minutes)."""
    items: list[list[Any]] = []
    interval = Interval()
    for label, name in enumerate(classes):
        elapsed = interval.due() if label else None
        if elapsed is not None:
            left = elapsed / label * (len(classes) - label)
            log.info(
                "scanning %s: class %d/%d, %d files so far, ETA %s",
                root / sub,
                label,
                len(classes),
                len(items),
                format_clock(left),
            )
        class_dir = root / sub / name
        found = [
            os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
            for d, _, files in sorted(_walk(class_dir))
            for f in sorted(files)
            if f.lower().endswith(EXTENSIONS) and not _hidden(f)
        ]
        if not found:
            raise DataError(f"{class_dir}: 0 images")
        items += [[rel, label] for rel in found]
    return items


def scan_imagefolder(
    root: str | Path,
    val_per_class: int,
    split_seed: int,
    expect_classes: int | None = None,
    expect_train: int | None = None,
    expect_test: int | None = None,
) -> Manifest:
    """List `root/train/<class>/*` (train + held-out val) and `root/val/<class>/*`
    (test); ImageNet-1K: expect 1000 classes, 1,281,167 train, 50,000 test."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataError(f"{root}: dataset directory not found")
    classes = _class_dirs(root / "train")
    test_classes = _class_dirs(root / "val")
    if classes != test_classes:
        missing = sorted(set(classes) - set(test_classes))[:3]
        extra = sorted(set(test_classes) - set(classes))[:3]
        raise DataError(
            f"{root / 'val'}: class folders differ from {root / 'train'} "
            f"(missing {missing}, extra {extra})"
        )
    _expect(root / "train", "classes", len(classes), expect_classes)
    train, test = (
        _list_images(root, "train", classes),
        _list_images(root, "val", classes),
    )
    _expect(root / "train", "images", len(train), expect_train)
    _expect(root / "val", "images", len(test), expect_test)
    train, val = _hold_out(train, classes, val_per_class, split_seed, root / "train")
    splits = {"train": train, "val": val, "test": test}
    return Manifest("imagefolder", str(root), classes, splits)


def _read_table(path: Path) -> dict[str, str]:
    """`<id> <value>` lines (CUB metadata) as an ordered dict."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    table: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) != 2:
            raise DataError(f"{path}:{n}: expected '<id> <value>', got {line!r}")
        if fields[0] in table:
            raise DataError(f"{path}:{n}: duplicate id {fields[0]}")
        table[fields[0]] = fields[1].strip()
    return table


def _cub_classes(root: Path, expect_classes: int | None) -> list[str]:
    table = _read_table(root / "classes.txt")
    if list(table) != [str(i) for i in range(1, len(table) + 1)]:
        raise DataError(f"{root / 'classes.txt'}: class ids are not 1..{len(table)}")
    _expect(root / "classes.txt", "classes", len(table), expect_classes)
    return list(table.values())


def scan_cub(
    root: str | Path,
    val_per_class: int,
    split_seed: int,
    expect_classes: int | None = 200,
    expect_train: int | None = 5994,
    expect_test: int | None = 5794,
) -> Manifest:
    """Read the official CUB_200_2011 split (`root` or `root/CUB_200_2011`): labels =
    class id − 1, `is_training_image` 1 → train (+ held-out val), 0 → test."""
    root = Path(root).resolve()
    if not (root / "images.txt").exists() and (root / "CUB_200_2011").is_dir():
        root = root / "CUB_200_2011"
    if not root.is_dir():
        raise DataError(f"{root}: dataset directory not found")
    classes = _cub_classes(root, expect_classes)
    images, is_train, class_of = (_read_table(root / name) for name in CUB_FILES)
    for name, table in (
        ("train_test_split.txt", is_train),
        ("image_class_labels.txt", class_of),
    ):
        if table.keys() != images.keys():
            odd = sorted(table.keys() ^ images.keys())[:3]
            raise DataError(f"{root / name}: image ids differ from images.txt ({odd})")
    splits: dict[str, list[list[Any]]] = {"train": [], "test": []}
    for image_id, rel in images.items():
        label = int(class_of[image_id]) - 1 if class_of[image_id].isdigit() else -1
        if not 0 <= label < len(classes) or is_train[image_id] not in ("0", "1"):
            raise DataError(
                f"{root}: image {image_id}: bad class {class_of[image_id]!r} or "
                f"is_training_image {is_train[image_id]!r}"
            )
        if not (root / "images" / rel).is_file():
            raise DataError(f"{root / 'images' / rel}: image file not found")
        split = "train" if is_train[image_id] == "1" else "test"
        splits[split].append([f"images/{rel}", label])
    where = root / "train_test_split.txt"
    _expect(where, "training images", len(splits["train"]), expect_train)
    _expect(where, "test images", len(splits["test"]), expect_test)
    train, val = _hold_out(splits["train"], classes, val_per_class, split_seed, where)
    splits = {"train": train, "val": val, "test": splits["test"]}
    return Manifest("cub200", str(root), classes, splits)


def check_readable(manifest: Manifest, limit: int | None = None) -> int:
    """Decode every image (the first `limit` per split) and return how many were
    checked. `verify()` alone passes truncated JPEGs, so each file is also decoded at
    1/8 scale (JPEG draft mode), which still reads the whole entropy-coded stream."""
    checked = 0
    for split in SPLITS:
        for rel, _ in manifest.splits[split][:limit]:
            path = Path(manifest.root) / rel
            try:
                with Image.open(path) as im:
                    im.verify()
                with Image.open(path) as im:
                    im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
                    im.load()
            except (OSError, ValueError, SyntaxError) as err:
                raise DataError(f"{path}: unreadable image ({err})") from None
            checked += 1
    return checked


def save_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write `manifest` as compact JSON, atomically."""
    write_text(path, json.dumps(manifest.to_dict(), separators=(",", ":")) + "\n")


def load_manifest(path: str | Path) -> Manifest:
    """Read a file written by `save_manifest`; a missing or bad file names itself."""
    path = Path(path)
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise DataError(
            f"{path}: manifest not found (run the prepare_data rule)"
        ) from None
    except (OSError, AttributeError, KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: not an lskd image manifest ({err})") from None


def select_subset(
    manifest: Manifest,
    classes: Sequence[int | str],
    train_per_class: int,
    test_per_class: int,
) -> Manifest:
    """The visualisation subset (docs/visualisation.md): for each class (label id or
    class name) the first `train_per_class` files of its training folder (train +
    held-out val, sorted by path) and the first `test_per_class` test files. Labels keep
    their ids; `val` is empty."""
    pool = sorted(manifest.splits["train"] + manifest.splits["val"])
    picked: dict[str, list[list[Any]]] = {"train": [], "val": [], "test": []}
    for c in classes:
        if isinstance(c, str) and c in manifest.class_names:
            c = manifest.class_names.index(c)
        if isinstance(c, str) or not 0 <= c < len(manifest.class_names):
            raise ConfigError(f"classes: {c!r} is not a class of {manifest.root}")
        for split, items, n in (
            ("train", pool, train_per_class),
            ("test", manifest.splits["test"], test_per_class),
        ):
            chosen = [item for item in items if item[1] == c][:n]
            if len(chosen) < n:
                raise DataError(
                    f"{manifest.root}: class {manifest.class_names[c]} has "
                    f"{len(chosen)} {split} images, {n} requested"
                )
            picked[split] += chosen
    return Manifest(manifest.dataset, manifest.root, list(manifest.class_names), picked)
