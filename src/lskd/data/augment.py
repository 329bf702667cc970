"""Per-image augmentation settings (`ImageAugment`), checked without importing torch
or torchvision, so the workflow can check a config's `augment` before any job runs.

An `augment` dict from the config names the recipe; every key is optional and the
defaults are the ImageNet recipe of Chandrasegaran et al. 2022 (official code:
RandomResizedCrop(224) with torchvision's scale and ratio, horizontal flip; eval
Resize(256) -> CenterCrop(224)); `lskd.data.transforms` builds the transforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        limits = {  # key: (within range, why not)
            "crop_scale": (
                a.crop_scale[0] <= a.crop_scale[1] <= 1,
                "expected min <= max <= 1",
            ),
            "crop_ratio": (
                0 < a.crop_ratio[0] <= a.crop_ratio[1],
                "expected 0 < min <= max",
            ),
            "grayscale_p": (a.grayscale_p <= 1, "a probability is <= 1"),
            "color_jitter": (
                a.color_jitter[3] <= 0.5,  # hue is a fraction of 360°
                "hue, the 4th value, is at most 0.5",
            ),
            "std": (min(a.std) > 0, "expected > 0"),
            "eval_resize": (
                a.eval_resize >= a.image_size,
                f"below image_size {a.image_size}: the {a.image_size} px centre "
                "crop must fit in the resized image",
            ),
        }
        for key, (ok, why) in limits.items():
            if not ok:
                raise ConfigError(
                    f"augment.{key}: value {getattr(a, key)} out of range ({why})"
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
