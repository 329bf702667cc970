"""The CIFAR architectures of the KD literature, by the names it uses.

CRD's code base (RepDistiller, Tian et al. 2020) defined the CIFAR-100 teacher-student
pairs every later KD paper reports (mdistiller, DKD, logit standardization): ResNets
with 16-32-64 channels (`resnet8` ... `resnet110`) and their 4x wider variants
(`resnet8x4`, `resnet32x4`), wide ResNets (`wrn_16_1` ... `wrn_40_2`), VGG with batch
norm (`vgg8`, `vgg13`), MobileNetV2 at width 0.5 (`mobile_half`) and ShuffleNet V1 / V2
(`shufflev1`, `shufflev2`; their `ShuffleV1` / `ShuffleV2`, lower-cased because
`weights:` keys are). Written here from the published definitions (RepDistiller's
`models/resnet.py`, `wrn.py`, `vgg.py`, `mobilenetv2.py`, `ShuffleNetv1.py`,
`ShuffleNetv2.py`), with the same module names and shapes, so the community's released
teacher checkpoints (`ckpt_epoch_240.pth`: `{"model": state_dict, ...}`) load as they
are (`lskd.models.weights`).

Differences that change no weight: the forward returns logits only (no feature
lists), and the global pooling is adaptive (RepDistiller's fixed 8x8 / 4x4 pools, on
the 32 px images they are written for), so 28 px grey images run as well; the first
convolution takes `in_channels`. The penultimate layer is the input of the final
`nn.Linear` (`fc`, `classifier`, `linear`), as `lskd.models.registry.classifier` finds
it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------- ResNet (CIFAR)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    """conv1-bn1-relu-conv2-bn2, plus the identity or `downsample` (1x1 conv + BN)."""

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-`depth` (6n + 2) of basic blocks with `filters` = (stem, stage 1..3)."""

    def __init__(
        self,
        depth: int,
        filters: tuple[int, int, int, int],
        num_classes: int,
        in_channels: int = 3,
    ):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, filters[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(filters[0])
        self.relu = nn.ReLU(inplace=True)
        cin = filters[0]
        for i, (planes, stride) in enumerate(
            zip(filters[1:], (1, 2, 2), strict=True), start=1
        ):
            blocks = [BasicBlock(cin, planes, stride)]
            blocks += [BasicBlock(planes, planes) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ------------------------------------------------------------------ Wide ResNet


def _init_normal(model: nn.Module) -> None:
    """RepDistiller's init of WRN, VGG and MobileNetV2: N(0, 2/(k*k*out)) convs,
    BN (1, 0), linear biases 0 (VGG and MobileNetV2: linear weights N(0, 0.01))."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear):
            m.bias.data.zero_()


class WideBlock(nn.Module):
    """Pre-activation block: bn1-relu1-conv1-bn2-relu2-conv2, `convShortcut` when the
    width changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = (  # noqa: N815 (the published module name)
            None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        return out + (x if self.equal else self.convShortcut(pre))


class NetworkBlock(nn.Module):
    """One stage of a WRN: `layer`, a Sequential of `WideBlock`s."""

    def __init__(self, n: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(
            *[
                WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                for i in range(n)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-`depth`-`widen` (depth 6n + 4; Zagoruyko & Komodakis 2016), no dropout."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n + 4, got {depth}")
        n = (depth - 4) // 6
        ch = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, ch[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, ch[0], ch[1], 1)
        self.block2 = NetworkBlock(n, ch[1], ch[2], 2)
        self.block3 = NetworkBlock(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes)
        _init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.adaptive_avg_pool2d(self.relu(self.bn1(out)), 1)
        return self.fc(torch.flatten(out, 1))


# ----------------------------------------------------------------- VGG (with BN)

VGG_CFG = {  # channels of block0..block4
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


def _vgg_block(widths: tuple[int, ...], cin: int) -> nn.Sequential:
    """conv-BN-ReLU per width, without the last ReLU (the forward applies it), so the
    state_dict indices are RepDistiller's (`block1.0.weight`, `block1.1.running_mean`,
    `block1.3.weight` ...)."""
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(True)]
        cin = w
    return nn.Sequential(*layers[:-1])


class VGG(nn.Module):
    """VGG with batch norm and one linear classifier (CRD's `vgg*_bn`)."""

    def __init__(
        self, cfg: tuple[tuple[int, ...], ...], num_classes: int, in_channels: int = 3
    ):
        super().__init__()
        cin = in_channels
        for i, widths in enumerate(cfg):
            setattr(self, f"block{i}", _vgg_block(widths, cin))
            cin = widths[-1]
        for i in range(4):
            setattr(self, f"pool{i}", nn.MaxPool2d(2, 2))
        self.pool4 = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Linear(512, num_classes)
        _init_normal(self)
        nn.init.normal_(self.classifier.weight, 0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        x = self.pool0(F.relu(self.block0(x)))
        x = self.pool1(F.relu(self.block1(x)))
        x = self.pool2(F.relu(self.block2(x)))
        x = F.relu(self.block3(x))
        if h == 64:  # as published: the fourth pool only for 64 px inputs
            x = self.pool3(x)
        x = self.pool4(F.relu(self.block4(x)))
        return self.classifier(torch.flatten(x, 1))


# ------------------------------------------------------------ MobileNetV2 (CIFAR)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """`conv`: expand 1x1, depthwise 3x3, project 1x1 (8 modules, as published)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, mid, 1, 1, 0, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """CRD's CIFAR MobileNetV2 (expansion `expand`, width `width`); `mobile_half` is
    expansion 6, width 0.5, the literature's "MobileNetV2" student."""

    SETTING = ((1, 16, 1, 1), (0, 24, 2, 1), (0, 32, 3, 2), (0, 64, 4, 2))
    SETTING += ((0, 96, 3, 1), (0, 160, 3, 2), (0, 320, 1, 1))  # 0: `expand`

    def __init__(
        self, expand: int, width: float, num_classes: int, in_channels: int = 3
    ):
        super().__init__()
        cin = int(32 * width)
        self.conv1 = _conv_bn(in_channels, cin, 3, 2)
        self.blocks = nn.ModuleList()
        for t, c, n, s in self.SETTING:
            cout, layers = int(c * width), []
            for stride in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(cin, cout, stride, t or expand))
                cin = cout
            self.blocks.append(nn.Sequential(*layers))
        self.last_channel = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = _conv_bn(cin, self.last_channel, 1, 1)
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, num_classes))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        _init_normal(self)
        nn.init.normal_(self.classifier[0].weight, 0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for block in self.blocks:
            out = block(out)
        out = self.avgpool(self.conv2(out))
        return self.classifier(torch.flatten(out, 1))


# -------------------------------------------------------------- ShuffleNet V1 / V2


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channel shuffle: (N, g, C/g, H, W) -> (N, C/g, g, H, W)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleBlock(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _shuffle(x, self.groups)


class ShuffleV1Block(nn.Module):
    """ShuffleNet V1 bottleneck: grouped 1x1, shuffle, depthwise 3x3, grouped 1x1;
    stride 2 concatenates an average-pooled shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int):
        super().__init__()
        self.stride = stride
        mid = cout // 4
        g = 1 if cin == 24 else groups
        self.conv1 = nn.Conv2d(cin, mid, 1, groups=g, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.shuffle1 = ShuffleBlock(g)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride == 2:
            self.shortcut = nn.Sequential(nn.AvgPool2d(3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle1(F.relu(self.bn1(self.conv1(x))))
        out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
        res = self.shortcut(x)
        return F.relu(torch.cat([out, res], 1) if self.stride == 2 else out + res)


class ShuffleNetV1(nn.Module):
    """CRD's CIFAR ShuffleNet V1 (`ShuffleV1`: 240-480-960 channels, 4-8-4 blocks,
    3 groups)."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        groups, cin = 3, 24
        self.conv1 = nn.Conv2d(in_channels, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        for i, (cout, n) in enumerate(
            zip((240, 480, 960), (4, 8, 4), strict=True), start=1
        ):
            blocks = []
            for j in range(n):
                concat = cin if j == 0 else 0
                blocks.append(
                    ShuffleV1Block(cin, cout - concat, 2 if j == 0 else 1, groups)
                )
                cin = cout
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.linear = nn.Linear(960, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class ShuffleV2Block(nn.Module):
    """ShuffleNet V2 unit: split, 1x1 / depthwise 3x3 / 1x1 on one half, concat,
    shuffle."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels // 2
        self.conv1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1] // 2
        x1, x2 = x[:, :c], x[:, c:]
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x2)))))
        out = F.relu(self.bn3(self.conv3(out)))
        return _shuffle(torch.cat([x1, out], 1), 2)


class ShuffleV2Down(nn.Module):
    """ShuffleNet V2 down-sampling unit: two stride-2 branches, concat, shuffle."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, 3, 2, 1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, 1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x)))))
        right = F.relu(self.bn5(self.conv5(right)))
        return _shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2(nn.Module):
    """CRD's CIFAR ShuffleNet V2 (`ShuffleV2`, net size 1: 116-232-464 channels,
    3-7-3 units, 1024-wide last 1x1 convolution)."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 24, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for i, (cout, n) in enumerate(
            zip((116, 232, 464), (3, 7, 3), strict=True), start=1
        ):
            units = [ShuffleV2Down(cin, cout)] + [
                ShuffleV2Block(cout) for _ in range(n)
            ]
            setattr(self, f"layer{i}", nn.Sequential(*units))
            cin = cout
        self.conv2 = nn.Conv2d(464, 1024, 1, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(1024)
        self.linear = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


# ------------------------------------------------------------------------ names

_NARROW, _WIDE = (16, 16, 32, 64), (32, 64, 128, 256)

# name -> constructor(num_classes, in_channels)
CIFAR_MODELS: dict[str, Callable[..., nn.Module]] = {
    **{
        f"resnet{d}": partial(CifarResNet, d, _NARROW)
        for d in (8, 14, 20, 32, 44, 56, 110)
    },
    "resnet8x4": partial(CifarResNet, 8, _WIDE),
    "resnet32x4": partial(CifarResNet, 32, _WIDE),
    "wrn_16_1": partial(WideResNet, 16, 1),
    "wrn_16_2": partial(WideResNet, 16, 2),
    "wrn_40_1": partial(WideResNet, 40, 1),
    "wrn_40_2": partial(WideResNet, 40, 2),
    "vgg8": partial(VGG, VGG_CFG["vgg8"]),
    "vgg13": partial(VGG, VGG_CFG["vgg13"]),
    "mobile_half": partial(MobileNetV2, 6, 0.5),
    "shufflev1": ShuffleNetV1,
    "shufflev2": ShuffleNetV2,
}
