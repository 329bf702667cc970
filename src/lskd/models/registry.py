"""Model registry: small demo MLPs of our own, the KD literature's CIFAR nets
(`lskd.models.cifar`), everything else from torchvision by name.

`build_model(name, num_classes, in_channels, image_size)` is the only constructor the
rest of lskd calls. torchvision models are built with `weights=None` (pretrained inits
come from local files, never from a hub) and adapted to grey or small inputs by
replacing their stem.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lskd.errors import ConfigError
from lskd.models.cifar import CIFAR_MODELS


class MLP(nn.Module):
    """Flatten, then Linear-BN-ReLU hidden layers, then one linear classifier `fc`.

    Fast on CPU, which is what the embedded demo needs; the input of `fc` (after the
    last ReLU) is the penultimate layer.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU()]
            in_features = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


# Our own demo nets: name -> constructor(num_classes, in_channels, image_size).
MODELS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "mlp512": lambda k, c, side: MLP(c * side * side, (512, 256), k),
    "mlp128": lambda k, c, side: MLP(c * side * side, (128, 64), k),
    # the CIFAR nets by the literature's names (`vgg13` is CRD's, not torchvision's)
    **{name: (lambda k, c, side, f=f: f(k, c)) for name, f in CIFAR_MODELS.items()},
}


def available_models() -> list[str]:
    """Names `build_model` accepts: our registry plus every torchvision classifier."""
    return sorted(set(MODELS) | set(_torchvision_models()))


def _torchvision_models() -> list[str]:
    import torchvision  # on demand: it costs ~2 s and the demo nets do not need it

    return torchvision.models.list_models(torchvision.models)


def _adapt_stem(model: nn.Module, in_channels: int, small_input: bool) -> None:
    """Replace the first convolution for `in_channels` and, for small images, stride 1.

    For ResNet-style stems (`conv1` + `maxpool`) the small-input variant is the usual
    CIFAR stem: 3x3 stride-1 convolution and no max-pooling. The first max-pool is
    dropped for any model (ResNet/ShuffleNet `maxpool`, VGG `features.3`): VGG's five
    pools would shrink a 28 px image to 0 px.
    """
    name, conv = next(
        (n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
    )
    kernel, stride, padding = conv.kernel_size, conv.stride, conv.padding
    if small_input:
        kernel, stride, padding = (3, 3), (1, 1), (1, 1)
        pool = next(
            (n for n, m in model.named_modules() if isinstance(m, nn.MaxPool2d)), None
        )
        if pool is not None:
            model.set_submodule(pool, nn.Identity())
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel,
        stride,
        padding,
        bias=conv.bias is not None,
    )
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], new)


def build_model(
    name: str, num_classes: int, in_channels: int = 3, image_size: int = 224
) -> nn.Module:
    """Build architecture `name` with a fresh `num_classes`-way classifier.

    torchvision models get a grey stem when `in_channels` != 3 and a small-image stem
    (3x3 stride 1, no max-pool) when `image_size` < 64.
    """
    if name in MODELS:
        return MODELS[name](num_classes, in_channels, image_size)
    if name not in _torchvision_models():
        raise ConfigError(
            f"unknown architecture {name!r}; known: {', '.join(available_models())}"
        )
    import torchvision

    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if in_channels != 3 or image_size < 64:
        _adapt_stem(model, in_channels, small_input=image_size < 64)
    return model


def classifier(model: nn.Module) -> nn.Linear:
    """The final linear layer (its input is the penultimate representation)."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError(f"{type(model).__name__} has no linear classifier")
    return last[-1]
