"""The torchvision transforms built from `ImageAugment` settings (defined, and checked
without torch, in `lskd.data.augment`; re-exported here).

The CUB recipe of the official code (src/image_classification/cub/train_teacher.py of
Chandrasegaran et al. 2022) sets `crop_scale: [0.2, 1.0]`, `crop_ratio: [0.8, 1.25]`,
`rotation: 45`, `grayscale_p: 0.2` and `color_jitter: [0.2, 0.2, 0, 0]`.
"""

from __future__ import annotations

from typing import Any

from torchvision import transforms as T

from lskd.data.augment import ImageAugment

__all__ = [
    "ImageAugment",
    "eval_transform",
    "train_transform",
]


def train_transform(augment: dict[str, Any] | ImageAugment) -> T.Compose:
    """RandomResizedCrop → flip → rotation → grayscale → jitter → tensor → normalise
    (the order of the official CUB code; steps that their settings switch off are
    left out)."""
    a = (
        augment
        if isinstance(augment, ImageAugment)
        else ImageAugment.from_dict(augment)
    )
    steps: list[Any] = [
        T.RandomResizedCrop(a.image_size, scale=a.crop_scale, ratio=a.crop_ratio)
    ]
    if a.hflip:
        steps.append(T.RandomHorizontalFlip())
    if a.rotation:
        steps.append(
            T.RandomRotation(a.rotation, interpolation=T.InterpolationMode.BILINEAR)
        )
    if a.grayscale_p:
        steps.append(T.RandomGrayscale(a.grayscale_p))
    if any(a.color_jitter):
        steps.append(T.ColorJitter(*a.color_jitter))
    return T.Compose([*steps, T.ToTensor(), T.Normalize(a.mean, a.std)])


def eval_transform(augment: dict[str, Any] | ImageAugment) -> T.Compose:
    """Resize(eval_resize) → CenterCrop(image_size) → tensor → normalise."""
    a = (
        augment
        if isinstance(augment, ImageAugment)
        else ImageAugment.from_dict(augment)
    )
    return T.Compose(
        [
            T.Resize(a.eval_resize),
            T.CenterCrop(a.image_size),
            T.ToTensor(),
            T.Normalize(a.mean, a.std),
        ]
    )
