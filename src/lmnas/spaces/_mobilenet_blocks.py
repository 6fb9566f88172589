"""Blocks shared by the NAS-Bench-Macro and Channel-Bench-Macro networks (Su et al.).

Both benchmarks use the same MobileNetV2 inverted residual with plain ReLU (not ReLU6), no
SE, bias-free convolutions each followed by BatchNorm, and a shortcut only when the shape is
kept. `InvertedResidual` takes the hidden width explicitly: NAS-Bench-Macro derives it as
round(inp * t), Channel-Bench-Macro searches it directly.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (bias-free, padding k//2) → BN → optional ReLU."""
    return Conv2dNormActivation(
        cin, cout, kernel_size=kernel, stride=stride, groups=groups, activation_layer=nn.ReLU if relu else None
    )


class InvertedResidual(nn.Module):
    """1x1 expand → kxk depthwise (carries the stride) → 1x1 linear projection; x + f(x) when shapes match."""

    def __init__(self, inp: int, hidden: int, oup: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            conv_bn(inp, hidden, 1),
            conv_bn(hidden, hidden, kernel, stride, groups=hidden),
            conv_bn(hidden, oup, 1, relu=False),
        )
        self.use_shortcut = inp == oup and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, inp, H, W] → [B, oup, H/stride, W/stride]
        out = self.conv(x)
        return out + x if self.use_shortcut else out


class SkipLayer(nn.Module):
    """NAS-Bench-Macro's identity choice: a true identity, or 1x1 conv + BN where the layer
    changes width or resolution (the first layer of each stage), as the benchmark trains it."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        self.downsample = conv_bn(inp, oup, 1, stride, relu=False) if stride != 1 or inp != oup else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)


class PooledClassifier(nn.Module):
    """features → global average pool → linear; the head every network here ends with."""

    def __init__(self, features: nn.Module, width: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] → logits [B, num_classes]
        return self.classifier(self.pool(self.features(x)).flatten(1))
