"""ResNet backbones from torchvision's definitions, randomly initialised, without the FC layer.

Three stems, as the methods' code uses them: ``cifar`` (3x3 conv, stride 1, no max-pool) for 32-px
images, as GCC and SCAN; ``stl`` (the same conv, then a 2x2 stride-2 max-pool) for 64-96 px;
``imagenet`` (torchvision's 7x7 stride-2 conv and 3x3 max-pool), as CC at 224 px. The output
is the global-average-pooled last stage: 512-d for ResNet-18/34, 2048-d for ResNet-50.
"""

from __future__ import annotations

from typing import Literal

import torchvision
from torch import Tensor, nn

Depth = Literal["resnet18", "resnet34", "resnet50", "cnn4"]
Stem = Literal["auto", "cifar", "stl", "imagenet"]

FEATURE_DIM = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "cnn4": 256}
CNN4_WIDTHS = (32, 64, 128, 256)


def resolve_stem(stem: Stem, image_size: int) -> Literal["cifar", "stl", "imagenet"]:
    """``auto`` picks by resolution: cifar up to 32 px, stl up to 96 px, imagenet above."""
    if stem != "auto":
        return stem
    if image_size <= 32:
        return "cifar"
    if image_size <= 96:
        return "stl"
    return "imagenet"


class Backbone(nn.Module):
    """A feature extractor with its output dimension, so heads can be sized from it."""

    def __init__(self, trunk: nn.Module, out_dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.trunk(x)
        return out


def cnn4() -> Backbone:
    """A CPU-scale proxy backbone with 256-d features.

    Four 3×3 conv-BN-ReLU blocks (32-64-128-256 channels), 2×2 max-pools between them,
    global average pooling. Not any paper's network: it lets a trial on a real data set learn
    in minutes on one CPU core (ResNet-18 at 32 px runs at about 20 images/s there), with every
    method's heads and losses unchanged. Results with it are proxies, never reproductions.
    """
    layers: list[nn.Module] = []
    channels = 3
    for i, width in enumerate(CNN4_WIDTHS):
        layers += [
            nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        if i < len(CNN4_WIDTHS) - 1:
            layers.append(nn.MaxPool2d(2))
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Backbone(nn.Sequential(*layers), FEATURE_DIM["cnn4"])


def resnet(depth: Depth, stem: Stem, image_size: int) -> Backbone:
    """A ResNet trunk mapping B×3×S×S images to B×D features (D = ``out_dim``).

    ``cnn4`` (the CPU proxy) has no stem to choose and ignores ``stem``.
    """
    if depth == "cnn4":
        return cnn4()
    builder = getattr(torchvision.models, depth)
    model: torchvision.models.ResNet = builder(weights=None)
    chosen = resolve_stem(stem, image_size)
    if chosen in ("cifar", "stl"):
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = (
            nn.Identity() if chosen == "cifar" else nn.MaxPool2d(kernel_size=2, stride=2, padding=1)
        )
    model.fc = nn.Identity()
    return Backbone(model, FEATURE_DIM[depth])
