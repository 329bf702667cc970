"""NVIDIA DALI pipelines over an image-file manifest (`loader: dali`,
docs/recipes.md#imagenet-students).

Training: random-crop decode (area `crop_scale`, aspect `crop_ratio`, DALI's sampler)
→ resize to `image_size` → optional rotation / grayscale / brightness / saturation →
flip and normalise. Evaluation: decode → resize the shorter side to `eval_resize` →
centre crop, with torchvision's integer sizes and crop offsets computed per image; the
antialiased linear filter then matches PIL's bilinear one to ±1 grey level
(tests/test_dali.py). Contrast and hue jitter are not supported (`UNSUPPORTED`).

With CUDA the pipeline decodes on the GPU ("mixed") of `LOCAL_RANK` and returns CUDA
images; without it everything runs on the CPU (`device_id=None`). The epoch order is
the torchvision loader's: this module permutes the file list with the sampler
`torch.Generator`, feeds it to `fn.readers.file` unshuffled, and seeds the pipeline
from the same generator, so one generator state gives one epoch of batches. A new
pipeline is built for every pass (its reader would otherwise carry on where it left).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import nvidia.dali.math as dmath
import torch
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy
from torch import Tensor

from lskd.data.folders import draw_epoch, eval_order, train_order
from lskd.data.interface import SPLITS, WHOLE, Shard
from lskd.data.manifest import Manifest
from lskd.data.transforms import ImageAugment
from lskd.errors import ConfigError

UNSUPPORTED = {
    1: "contrast (torchvision blends with each image's mean grey)",
    3: "hue (torchvision shifts hue in HSV, DALI rotates it in YIQ)",
}


def _uniform(spread: float) -> Any:
    """A per-sample factor uniform in [max(0, 1 - spread), 1 + spread]."""
    return fn.random.uniform(range=[max(0.0, 1.0 - spread), 1.0 + spread])


def _augment(images: Any, a: ImageAugment) -> Any:
    """Rotation, grayscale, brightness and saturation in torchvision's order (the flip
    comes later, in `crop_mirror_normalize`: it commutes with all of these in
    distribution, since the rotation angle is symmetric)."""
    if a.rotation:
        angle = fn.random.uniform(range=[-a.rotation, a.rotation])
        images = fn.rotate(
            images,
            angle=angle,
            keep_size=True,
            fill_value=0,
            interp_type=types.INTERP_LINEAR,
        )
    if a.grayscale_p:  # saturation 0 gives the ITU-R 601 luma, as PIL's convert("L")
        gray = fn.random.coin_flip(probability=a.grayscale_p, dtype=types.INT32)
        images = fn.hsv(images, saturation=fn.cast(1 - gray, dtype=types.FLOAT))
    brightness, _, saturation, _ = a.color_jitter
    if brightness:
        images = fn.brightness_contrast(images, brightness=_uniform(brightness))
    if saturation:
        images = fn.hsv(images, saturation=_uniform(saturation))
    return images


def _normalise(images: Any, a: ImageAugment, **kw: Any) -> Any:
    return fn.crop_mirror_normalize(
        images,
        dtype=types.FLOAT,
        output_layout="CHW",
        mean=[255.0 * m for m in a.mean],
        std=[255.0 * s for s in a.std],
        **kw,
    )


@pipeline_def
def train_pipeline(files: list[str], labels: list[int], a: ImageAugment, gpu: bool):
    jpegs, y = fn.readers.file(
        files=files, labels=labels, random_shuffle=False, name="reader"
    )
    images = fn.decoders.image_random_crop(
        jpegs,
        device="mixed" if gpu else "cpu",
        output_type=types.RGB,
        random_area=list(a.crop_scale),
        random_aspect_ratio=list(a.crop_ratio),
    )
    images = fn.resize(
        images,
        resize_x=a.image_size,
        resize_y=a.image_size,
        interp_type=types.INTERP_LINEAR,
        antialias=True,
    )
    images = _augment(images, a)
    mirror = fn.random.coin_flip(probability=0.5) if a.hflip else 0
    return _normalise(images, a, mirror=mirror), y


def _half_even(d: Any) -> Any:
    """round(d / 2) with Python's ties-to-even, as torchvision's CenterCrop offset."""
    k = d // 2
    return k + (d - 2 * k) * (k - 2 * (k // 2))


def _eval_geometry(jpegs: Any, a: ImageAugment) -> tuple[Any, Any, Any]:
    """torchvision's `Resize(eval_resize)` output width and height (shorter side to
    `eval_resize`, longer side truncated) and `CenterCrop(image_size)` start (y, x)."""
    shape = fn.peek_image_shape(jpegs, dtype=types.INT32)  # H, W, C
    h, w = shape[0], shape[1]
    long = (a.eval_resize * dmath.max(h, w)) // dmath.min(h, w)
    portrait = fn.cast(w <= h, dtype=types.INT32)
    new_w = portrait * a.eval_resize + (1 - portrait) * long
    new_h = (1 - portrait) * a.eval_resize + portrait * long
    start = fn.stack(_half_even(new_h - a.image_size), _half_even(new_w - a.image_size))
    return new_w, new_h, start


@pipeline_def
def eval_pipeline(files: list[str], labels: list[int], a: ImageAugment, gpu: bool):
    """Decode → resize → centre crop with torchvision's exact sizes and offsets."""
    jpegs, y = fn.readers.file(
        files=files, labels=labels, random_shuffle=False, name="reader"
    )
    new_w, new_h, start = _eval_geometry(jpegs, a)
    images = fn.decoders.image(
        jpegs, device="mixed" if gpu else "cpu", output_type=types.RGB
    )
    images = fn.resize(
        images,
        resize_x=fn.cast(new_w, dtype=types.FLOAT),
        resize_y=fn.cast(new_h, dtype=types.FLOAT),
        subpixel_scale=False,  # scale each axis to its integer size, as PIL does
        interp_type=types.INTERP_LINEAR,
        antialias=True,
    )
    crop = [a.image_size, a.image_size]
    images = fn.slice(images, start=start, shape=crop, axis_names="HW")
    return _normalise(images, a), y


class DaliBatches:
    """`make()` builds a fresh DALI iterator for each pass; `len()` = steps."""

    def __init__(self, make: Callable[[], DALIGenericIterator | None], steps: int):
        self.make, self.steps = make, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        iterator = self.make()
        if iterator is None:
            return
        for out in iterator:
            yield out[0]["x"], out[0]["y"].view(-1).long()


class DaliSource:
    """The `DataSource` over a `Manifest`, decoded and augmented by DALI."""

    in_channels = 3
    transfer = None

    def __init__(self, manifest: Manifest, augment: dict[str, Any], workers: int = 0):
        self.manifest, self.threads = manifest, max(1, workers)
        self.augment = ImageAugment.from_dict(augment)
        for i, what in UNSUPPORTED.items():
            if self.augment.color_jitter[i]:
                raise ConfigError(
                    f"augment.color_jitter: DALI does not support {what} yet; "
                    "use loader: torchvision"
                )
        self.class_names = tuple(manifest.class_names)
        self.image_size = self.augment.image_size
        self.gpu = torch.cuda.is_available()
        self.device_id = int(os.environ.get("LOCAL_RANK", "0")) if self.gpu else None
        self._files = {
            s: [os.path.join(manifest.root, rel) for rel, _ in manifest.splits[s]]
            for s in SPLITS
        }
        self._labels = {s: manifest.labels(s) for s in SPLITS}

    def labels(self, split: str) -> np.ndarray:
        return self._labels[split]

    def _iterator(
        self, pipeline: Callable, split: str, idx: list[int], batch_size: int, seed: int
    ) -> DALIGenericIterator | None:
        if not idx:
            return None
        files = [self._files[split][i] for i in idx]
        labels = self._labels[split][idx].tolist()
        pipe = pipeline(
            files=files,
            labels=labels,
            a=self.augment,
            gpu=self.gpu,
            batch_size=batch_size,
            num_threads=self.threads,
            device_id=self.device_id,
            seed=seed,
        )
        policy = LastBatchPolicy.PARTIAL if pipeline is eval_pipeline else None
        return DALIGenericIterator(
            pipe,
            ["x", "y"],
            reader_name="reader",
            last_batch_policy=policy or LastBatchPolicy.DROP,
        )

    def train_batches(
        self, batch_size: int, generator: torch.Generator, shard: Shard = WHOLE
    ) -> DaliBatches:
        n = len(self._labels["train"])
        order = train_order(n, batch_size, shard, self.manifest.root)

        def make() -> DALIGenericIterator | None:
            perm, base = draw_epoch(n, generator)
            seed = (base + shard.rank) % 2**31  # one seed per rank
            idx = perm[order].tolist()
            return self._iterator(train_pipeline, "train", idx, batch_size, seed)

        return DaliBatches(make, len(order) // batch_size)

    def eval_batches(
        self,
        split: str,
        batch_size: int,
        indices: np.ndarray | None = None,
        shard: Shard = WHOLE,
    ) -> DaliBatches:
        idx = eval_order(len(self._labels[split]), indices, shard)
        steps = -(-len(idx) // batch_size)

        def make() -> DALIGenericIterator | None:
            return self._iterator(eval_pipeline, split, idx, batch_size, seed=0)

        return DaliBatches(make, steps)
