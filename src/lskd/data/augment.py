"""Per-image augmentation settings (`ImageAugment`), checked without importing torch
or torchvision, so the workflow can check a config's `augment` before any job runs.

An `augment` dict from the config names the recipe; every key is optional and the
schema's defaults (`lskd.schema`) are the ImageNet recipe of Chandrasegaran et al. 2022
(official code: RandomResizedCrop(224) with torchvision's scale and ratio, horizontal
flip; eval Resize(256) -> CenterCrop(224)); `lskd.data.transforms` builds the
transforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lskd.errors import ConfigError
from lskd.schema import validated

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORED = frozenset({"pad"})  # batch-level translation of the array datasets only


@dataclass(frozen=True)
class ImageAugment:
    """Validated `augment` settings; `color_jitter` = brightness, contrast, saturation,
    hue as in `torchvision.transforms.ColorJitter`."""

    image_size: int
    eval_resize: int
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    hflip: bool
    rotation: float
    grayscale_p: float
    color_jitter: tuple[float, float, float, float]
    mean: tuple[float, float, float] = IMAGENET_MEAN  # not config keys: the pretrained
    std: tuple[float, float, float] = IMAGENET_STD  # torchvision models' normalisation

    @classmethod
    def from_dict(cls, augment: dict[str, Any], where: str = "augment") -> ImageAugment:
        """The settings `augment` (keys and defaults of the schema's `augment`); a bad
        key or value raises `ConfigError` naming it."""
        values = validated("augment", augment, where)
        a = cls(
            **{k: _coerce(cls, k, v) for k, v in values.items() if k not in IGNORED}
        )
        limits = {  # what the schema cannot say: key: (within range, why not)
            "crop_scale": (a.crop_scale[0] <= a.crop_scale[1], "expected min <= max"),
            "crop_ratio": (a.crop_ratio[0] <= a.crop_ratio[1], "expected min <= max"),
            "color_jitter": (
                a.color_jitter[3] <= 0.5,  # hue is a fraction of 360°
                "hue, the 4th value, is at most 0.5",
            ),
            "eval_resize": (
                a.eval_resize >= a.image_size,
                f"below image_size {a.image_size}: the {a.image_size} px centre "
                "crop must fit in the resized image",
            ),
        }
        for key, (ok, why) in limits.items():
            if not ok:
                raise ConfigError(
                    f"{where}.{key}: value {getattr(a, key)} out of range ({why})"
                )
        return a

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _coerce(cls: type, key: str, value: Any) -> Any:
    """A validated JSON value as the field's Python type (numbers as floats where the
    field is a float, lists as tuples)."""
    kind = cls.__dataclass_fields__[key].type
    if kind.startswith("tuple"):
        return tuple(float(v) for v in value)
    return float(value) if kind == "float" else value
