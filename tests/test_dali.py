"""The DALI loader on the CPU (also on a machine with CUDA): same protocol, order and
eval pixels as the torchvision loader, reproducible augmentation. Skipped when DALI is
not installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip(
    "nvidia.dali", reason="DALI not installed: pip install 'lskd[dali]'"
)

from lskd.data.augment import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from lskd.data.dali import DaliSource  # noqa: E402
from lskd.data.folders import (  # noqa: E402
    FolderSource,
    Manifest,
    save_manifest,
    scan_imagefolder,
)
from lskd.data.interface import Shard  # noqa: E402
from lskd.data.source import open_folder_source  # noqa: E402
from lskd.errors import ConfigError  # noqa: E402
from test_folders import TINY, make_imagefolder  # noqa: E402


@pytest.fixture(autouse=True)
def cpu_pipelines(monkeypatch):
    """DALI's CPU pipeline even where CUDA exists: the tolerances below are those of
    its CPU decoder against PIL, and the tensors stay on the host. The GPU decoder
    ("mixed") is tested in test_gpu.py::test_dali_decodes_on_the_gpu."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Manifest:
    root = make_imagefolder(tmp_path_factory.mktemp("imagenet"))
    return scan_imagefolder(root, val_per_class=2, split_seed=0)


@pytest.fixture(scope="module")
def noise_manifest(tmp_path_factory) -> Manifest:
    """Pure-noise JPEGs: every pixel differs from its neighbours, so an off-by-one
    size or crop offset shows up as a large error, not a small one. Sizes cover
    portrait, landscape, odd sides, up- and downscaling, and ties in the crop offset
    (500x375 → 341x256: (341 - 224) / 2 = 58.5, which torchvision rounds to 58)."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(0)
    items = []
    for i, (w, h) in enumerate([(40, 48), (333, 500), (500, 375), (97, 61)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"n{i}.jpg", quality=90)
        items.append([f"n{i}.jpg", 0])
    splits = {"train": items, "val": [], "test": items}
    return Manifest("imagefolder", str(root), ["noise"], splits)


def _epochs(source, seed: int, epochs: int = 2, batch_size: int = 4, **kw) -> list:
    batches = source.train_batches(
        batch_size, torch.Generator().manual_seed(seed), **kw
    )
    return [list(batches) for _ in range(epochs)]


def test_dali_batches_have_the_protocol_shapes(manifest):
    source = DaliSource(manifest, TINY)
    assert source.class_names == tuple(manifest.class_names)
    assert (source.in_channels, source.image_size) == (3, 16)
    batches = source.train_batches(5, torch.Generator().manual_seed(0))
    assert len(batches) == 2
    got = list(batches)
    assert len(got) == 2
    for x, y in got:
        assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
        assert y.shape == (5,) and y.dtype == torch.int64
        pixels = x * STD + MEAN
        assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
        assert pixels.mean(dim=(2, 3)).argmax(1).tolist() == y.tolist()
    test = source.eval_batches("test", 4)
    assert len(test) == 3 and [len(y) for _, y in test] == [4, 4, 1]
    assert torch.cat([y for _, y in test]).tolist() == source.labels("test").tolist()


@pytest.mark.parametrize("augment", [{}, TINY])
def test_dali_eval_matches_torchvision_within_one_grey_level(noise_manifest, augment):
    """Both resize with a triangle (antialiased linear) filter to the same integer
    sizes and crop at the same offsets, so only fixed-point rounding differs: measured
    max 1 grey level, mean 0.03-0.2, on these files and on three real photos. Without
    torchvision's sizes and offsets (DALI's resize_shorter + crop_pos 0.5) the same
    files differed by up to 132 grey levels."""
    dali = torch.cat(
        [x for x, _ in DaliSource(noise_manifest, augment).eval_batches("test", 3)]
    )
    tv = torch.cat(
        [x for x, _ in FolderSource(noise_manifest, augment).eval_batches("test", 3)]
    )
    assert dali.shape == tv.shape == (4, 3, *(2 * [augment.get("image_size", 224)]))
    grey_levels = ((dali - tv) * STD * 255).abs()
    assert grey_levels.max() <= 1 + 1e-3
    assert grey_levels.mean() < 0.3


def test_dali_training_is_reproducible_from_the_generator(manifest):
    a = _epochs(DaliSource(manifest, TINY, workers=1), seed=7)
    b = _epochs(DaliSource(manifest, TINY, workers=3), seed=7)  # other thread count
    for epoch_a, epoch_b in zip(a, b, strict=True):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a[0][0][0], a[1][0][0])  # a new permutation per epoch
    assert not torch.equal(
        a[0][0][0], _epochs(DaliSource(manifest, TINY), 8, 1)[0][0][0]
    )


def test_dali_epoch_order_and_shards_follow_the_torchvision_loader(manifest):
    for shard in (Shard(0, 2), Shard(1, 2)):
        dali = _epochs(DaliSource(manifest, TINY), 5, batch_size=2, shard=shard)
        tv = _epochs(FolderSource(manifest, TINY), 5, batch_size=2, shard=shard)
        labels = [[y.tolist() for _, y in epoch] for epoch in dali]
        assert labels == [[y.tolist() for _, y in epoch] for epoch in tv]
    # no crop or flip randomness: each rank's images can be compared as wholes
    fixed = {**TINY, "crop_scale": [1.0, 1.0], "crop_ratio": [1.2, 1.2], "hflip": False}
    seen = [
        torch.cat([x for x, _ in epoch[0]]).flatten(1)
        for epoch in (
            _epochs(DaliSource(manifest, fixed), 3, 1, batch_size=2, shard=Shard(r, 2))
            for r in (0, 1)
        )
    ]
    assert torch.unique(torch.cat(seen), dim=0).shape[0] == 12  # all 12 images, once


def _channel_spread(source) -> torch.Tensor:
    """Per-pixel max - min over R, G, B of the first training batch, in grey levels."""
    (x, _), *_ = _epochs(source, 0, 1)[0]
    pixels = (x * STD + MEAN) * 255
    return pixels.amax(1) - pixels.amin(1)


def test_dali_colour_augmentations(manifest):
    # torchvision's RandomGrayscale gives R = G = B exactly; DALI's hsv (saturation 0)
    # rounds each channel on its own: measured spread 1 grey level at most
    gray = {**TINY, "grayscale_p": 1.0, "rotation": 45}
    assert _channel_spread(DaliSource(manifest, gray)).max() <= 1 + 1e-3
    assert _channel_spread(DaliSource(manifest, TINY)).max() > 100  # class colours
    jitter = {**TINY, "color_jitter": [0.2, 0, 0.3, 0]}
    (x, _), *_ = _epochs(DaliSource(manifest, jitter), 0, 1)[0]
    assert x.shape == (4, 3, 16, 16)
    with pytest.raises(ConfigError, match="DALI does not support contrast"):
        DaliSource(manifest, {"color_jitter": [0.2, 0.2, 0, 0]})
    with pytest.raises(ConfigError, match="DALI does not support hue"):
        DaliSource(manifest, {"color_jitter": [0, 0, 0, 0.1]})


def test_open_folder_source_with_the_dali_loader(manifest, tmp_path):
    path = tmp_path / "manifest.json"
    save_manifest(manifest, path)
    assert isinstance(
        open_folder_source(path, TINY, loader="dali", workers=2), DaliSource
    )
