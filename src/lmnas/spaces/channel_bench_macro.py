"""Channel-Bench-Macro (Su et al., BCNet, CVPR 2021): width search on two fixed CIFAR-10 networks.

Key: 7 digits k in 1..4; width i = k_i × base_i (k/4 of the largest width). The networks follow
xiusu/Channel-Bench-Macro model.py (the GENIUS prompts channel_bench_res.py / channel_bench_mob.py
describe the same layers): a stride-2 3x3 conv stem (32 → 16 px), four or five blocks, one of
them stride 2 (16 → 8 px), global average pool, linear classifier.

No result table is shipped in ../shared/benchmarks: table lookup needs Results_ResNet.json /
Results_MobileNet.json from GENIUS's repository in the benchmarks folder (see
lmnas.nas_tables); without them the spaces can still be built and trained.
"""

from __future__ import annotations

import torch
from torch import nn

from lmnas.spaces import SPACES
from lmnas.spaces._mobilenet_blocks import InvertedResidual, PooledClassifier, conv_bn
from lmnas.spaces.nas_bench_macro import DigitGenotype, DigitSpace

RESNET_BASE = (64, 64, 64, 128, 128, 128, 128)
MOBILENET_BASE = (32, 192, 192, 192, 64, 384, 256)



class ResidualPair(nn.Module):
    """Two 3x3 conv+BN (ReLU between); relu(x + f(x)) at stride 1, relu(f(x)) where it downsamples."""

    def __init__(self, inp: int, mid: int, oup: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(conv_bn(inp, mid, 3, stride), conv_bn(mid, oup, 3, relu=False))
        self.shortcut = stride == 1 and inp == oup
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return self.relu(x + out if self.shortcut else out)


class ChannelBenchSpace(DigitSpace):
    length = 7
    choices = (1, 2, 3, 4)
    input_shape = (3, 32, 32)
    num_classes = 10
    base: tuple[int, ...] = ()

    def widths(self, genotype: DigitGenotype) -> list[int]:
        return [k * b for k, b in zip(self.validate(genotype), self.base)]

    def width_options(self) -> str:
        return "\n".join(f"  channels[{i}]: {[k * b for k in self.choices]}" for i, b in enumerate(self.base))


@SPACES.register("channel-bench-macro-resnet")
class ChannelBenchResNetSpace(ChannelBenchSpace):
    name = "channel-bench-macro-resnet"
    base = RESNET_BASE

    def build(self, genotype: DigitGenotype) -> nn.Module:
        c = self.widths(genotype)
        features = nn.Sequential(
            conv_bn(self.input_shape[0], c[0], 3, stride=2),
            ResidualPair(c[0], c[1], c[0], 1),
            ResidualPair(c[0], c[2], c[0], 1),
            ResidualPair(c[0], c[3], c[4], 2),
            ResidualPair(c[4], c[5], c[4], 1),
            ResidualPair(c[4], c[6], c[4], 1),
        )
        return PooledClassifier(features, c[4], self.num_classes)

    def describe(self) -> str:
        return (
            "Channel-Bench-Macro, ResNet (CIFAR-10, 32x32 input, 10 classes): choose the widths "
            "channels[0..6] of a fixed network: a 3x3 stride-2 conv stem to channels[0]; "
            "residual blocks of two 3x3 convs (conv-BN-ReLU-conv-BN, ReLU after the addition): "
            "channels[0]→channels[1]→channels[0], channels[0]→channels[2]→channels[0], "
            "a stride-2 block without shortcut channels[0]→channels[3]→channels[4], then "
            "channels[4]→channels[5]→channels[4] and channels[4]→channels[6]→channels[4]; "
            "global average pooling and a linear classifier. Width options:\n"
            f"{self.width_options()}\n"
            "An architecture is written as 7 digits k in 1..4, width = k × (smallest option), "
            f"e.g. 4432214. 4^7 = 16,384 architectures."
        )


@SPACES.register("channel-bench-macro-mobilenet")
class ChannelBenchMobileNetSpace(ChannelBenchSpace):
    name = "channel-bench-macro-mobilenet"
    base = MOBILENET_BASE

    def build(self, genotype: DigitGenotype) -> nn.Module:
        c = self.widths(genotype)
        features = nn.Sequential(
            conv_bn(self.input_shape[0], c[0], 3, stride=2),
            InvertedResidual(c[0], c[1], c[0], 3, 1),
            InvertedResidual(c[0], c[2], c[0], 3, 1),
            InvertedResidual(c[0], c[3], c[4], 3, 2),
            InvertedResidual(c[4], c[5], c[4], 3, 1),
            conv_bn(c[4], c[6], 1),
        )
        return PooledClassifier(features, c[6], self.num_classes)

    def describe(self) -> str:
        return (
            "Channel-Bench-Macro, MobileNet (CIFAR-10, 32x32 input, 10 classes): choose the widths "
            "channels[0..6] of a fixed network: a 3x3 stride-2 conv stem to channels[0]; "
            "MobileNetV2 inverted residuals (1x1 expand, 3x3 depthwise, 1x1 project, shortcut "
            "when the shape is kept) channels[0]→channels[1]→channels[0], "
            "channels[0]→channels[2]→channels[0], a stride-2 block channels[0]→channels[3]→channels[4], "
            "channels[4]→channels[5]→channels[4]; a 1x1 conv channels[4]→channels[6], global average "
            "pooling and a linear classifier. Width options:\n"
            f"{self.width_options()}\n"
            "An architecture is written as 7 digits k in 1..4, width = k × (smallest option), "
            f"e.g. 2443341. 4^7 = 16,384 architectures."
        )
