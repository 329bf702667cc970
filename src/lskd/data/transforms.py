"""Per-image augmentation settings and the torchvision transforms built from them.

An `augment` dict from the config names the recipe; every key is optional and the
defaults are the ImageNet recipe of PAPER.md §3.1/3.2 (RandomResizedCrop(224) with
torchvision's scale and ratio, horizontal flip; eval Resize(256) → CenterCrop(224)).
The CUB recipe of §3.3 sets `crop_scale: [0.2, 1.0]`, `crop_ratio: [0.8, 1.25]`,
`rotation: 45`, `grayscale_p: 0.2` and `color_jitter: [0.2, 0.2, 0, 0]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchvision import transforms as T

from lskd.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORED = frozenset({"pad"})  # batch-level translation of the array datasets only


@dataclass(frozen=True)
class ImageAugment:
    """Validated `augment` settings; `color_jitter` = brightness, contrast, saturation,
    hue as in `torchvision.transforms.ColorJitter`."""

    image_size: int = 224
    eval_resize: int = 256
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = True
    rotation: float = 0.0
    grayscale_p: float = 0.0
    color_jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def from_dict(cls, augment: dict[str, Any]) -> ImageAugment:
        """Check keys and value shapes; a bad one raises `ConfigError` naming it."""
        fields = cls.__dataclass_fields__
        values: dict[str, Any] = {}
        for key, value in augment.items():
            if key in IGNORED:
                continue
            if key not in fields:
                raise ConfigError(
                    f"augment.{key}: unknown key (known: {sorted(fields)})"
                )
            values[key] = _check(key, value, getattr(cls, key))
        a = cls(**values)
        limits = {
            "crop_scale": a.crop_scale[0] <= a.crop_scale[1] <= 1,
            "crop_ratio": 0 < a.crop_ratio[0] <= a.crop_ratio[1],
            "grayscale_p": a.grayscale_p <= 1,
            "color_jitter": a.color_jitter[3] <= 0.5,  # hue is a fraction of 360°
            "std": min(a.std) > 0,
            "eval_resize": a.eval_resize >= a.image_size,  # the centre crop fits
        }
        for key, ok in limits.items():
            if not ok:
                raise ConfigError(
                    f"augment.{key}: value {getattr(a, key)} out of range"
                )
        return a

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _check(key: str, value: Any, default: Any) -> Any:
    """Coerce `value` to the type of `default`: bool, positive int, float >= 0 or a
    tuple of as many floats."""
    bad = ConfigError(f"augment.{key}: bad value {value!r} (default {default!r})")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise bad
        return tuple(_check(key, v, 0.0) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise bad
    if isinstance(default, int):
        if int(value) != value or value < 1:
            raise bad
        return int(value)
    return float(value)


def train_transform(augment: dict[str, Any] | ImageAugment) -> T.Compose:
    """RandomResizedCrop → flip → rotation → grayscale → jitter → tensor → normalise
    (the order of PAPER.md §3.3; steps switched off by their settings are left out)."""
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
