"""The GPT-NAS block space: a plain chain of 10–20 blocks drawn from torchvision's families.

Each block is one of the torchvision block classes that the fine-tuning corpus labels
(ConvNormActivation, ResNet BasicBlock/Bottleneck, ShuffleNetV2 unit, EfficientNet MBConv,
RegNet ResBottleneckBlock, GoogLeNet Inception), built with torchvision's own classes so
that the architecture GPT sees the same layer structures it was fine-tuned on.
The chain is split into len(stage_widths) equal stages; the first block of every stage but
the first halves the resolution and takes that stage's width.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn
from torchvision.models import efficientnet, regnet, resnet, shufflenetv2
from torchvision.ops import Conv2dNormActivation

from lmnas.errors import LmnasError
from lmnas.spaces import SPACES
from lmnas.spaces.base import REGENERATES_BLOCKS, Choice, SearchSpace

# `torchvision.models.googlenet` is shadowed by the builder function of the same name.
_googlenet = importlib.import_module("torchvision.models.googlenet")

# Short genotype code → the torchvision class name the corpus uses as the block label.
BLOCK_LABELS: dict[str, str] = {
    "conv": "Conv2dNormActivation",
    "basic": "BasicBlock",
    "bottleneck": "Bottleneck",
    "shuffle": "InvertedResidual",
    "mbconv": "MBConv",
    "regnet": "ResBottleneckBlock",
    "inception": "Inception",
}
CODE_OF_LABEL = {label: code for code, label in BLOCK_LABELS.items()}

BlockGenotype = tuple[str, ...]


def _projection(cin: int, cout: int, stride: int) -> nn.Module | None:
    if cin == cout and stride == 1:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


def make_block(code: str, cin: int, cout: int, stride: int) -> nn.Module:
    """One block from torchvision's classes; widths are multiples of 16 (checked by the space)."""
    if code == "conv":
        return Conv2dNormActivation(cin, cout, kernel_size=3, stride=stride)
    if code == "basic":
        return resnet.BasicBlock(cin, cout, stride, downsample=_projection(cin, cout, stride))
    if code == "bottleneck":  # expansion 4: planes = cout / 4
        return resnet.Bottleneck(cin, cout // 4, stride, downsample=_projection(cin, cout, stride))
    if code == "shuffle":
        return shufflenetv2.InvertedResidual(cin, cout, stride)
    if code == "mbconv":
        cnf = efficientnet.MBConvConfig(4, 3, stride, cin, cout, num_layers=1)
        return efficientnet.MBConv(cnf, stochastic_depth_prob=0.0, norm_layer=nn.BatchNorm2d)
    if code == "regnet":
        return regnet.ResBottleneckBlock(
            cin, cout, stride, nn.BatchNorm2d, nn.ReLU, group_width=8, bottleneck_multiplier=1.0, se_ratio=0.25
        )
    if code == "inception":
        block = _googlenet.Inception(cin, cout // 4, cout // 8, cout // 4, cout // 16, cout // 4, cout // 4)
        # Inception keeps the resolution; GoogLeNet downsamples with a max-pool in front.
        return nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), block) if stride == 2 else block
    raise LmnasError(f"unknown block code {code!r}; known: {sorted(BLOCK_LABELS)}")


@dataclass(frozen=True)
class BlockSpec:
    """What fixes a block's tensors and the resolution it works at."""

    code: str
    cin: int
    cout: int
    stride: int


class BlockNet(nn.Module):
    """stem → blocks → global pool → linear; `blocks[i]` is genotype position i."""

    def __init__(self, stem: nn.Module, blocks: Sequence[nn.Module], width: int, num_classes: int) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):  # x: [B, C, H, W] → logits [B, num_classes]
        x = self.blocks(self.stem(x))
        return self.classifier(self.pool(x).flatten(1))


@SPACES.register("gptnas-blocks")
class GPTNASBlockSpace(SearchSpace):
    name = "gptnas-blocks"
    regenerates = REGENERATES_BLOCKS
    inherits_weights = True

    def __init__(
        self,
        min_blocks: int = 10,
        max_blocks: int = 20,
        stage_widths: Sequence[int] = (64, 128, 256),
        block_types: Sequence[str] = tuple(BLOCK_LABELS),
        input_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
    ) -> None:
        if not 1 <= min_blocks <= max_blocks:
            raise LmnasError(f"search.space.min_blocks/max_blocks: need 1 <= {min_blocks} <= {max_blocks}")
        bad = [w for w in stage_widths if w <= 0 or w % 16]
        if bad or not stage_widths:
            raise LmnasError(f"search.space.stage_widths: widths must be positive multiples of 16, got {list(stage_widths)}")
        if min_blocks < len(stage_widths):
            raise LmnasError(f"search.space.min_blocks: need at least one block per stage ({len(stage_widths)})")
        unknown = sorted(set(block_types) - set(BLOCK_LABELS))
        if unknown:
            raise LmnasError(f"search.space.block_types: unknown {unknown}; known: {sorted(BLOCK_LABELS)}")
        smallest = min(input_shape[1:]) // 2 ** (len(stage_widths) - 1)
        if smallest < 1:
            raise LmnasError(f"search.space.stage_widths: {len(stage_widths)} stages downsample a {input_shape} input below 1 px")
        self.min_blocks, self.max_blocks = min_blocks, max_blocks
        self.stage_widths = tuple(int(w) for w in stage_widths)
        self.block_types = tuple(block_types)
        self.input_shape = tuple(int(s) for s in input_shape)  # type: ignore[assignment]
        self.num_classes = num_classes

    # -- genotype operators -------------------------------------------------------------
    def sample(self, rng: random.Random) -> BlockGenotype:
        n = rng.randint(self.min_blocks, self.max_blocks)
        return tuple(rng.choice(self.block_types) for _ in range(n))

    def mutate(self, genotype: BlockGenotype, rng: random.Random) -> BlockGenotype:
        """Replace, insert or delete one block (insert/delete only within the length range)."""
        blocks = list(genotype)
        ops = ["replace"]
        if len(blocks) < self.max_blocks:
            ops.append("insert")
        if len(blocks) > self.min_blocks:
            ops.append("delete")
        op = rng.choice(ops)
        i = rng.randrange(len(blocks))
        if op == "replace":
            blocks[i] = rng.choice([b for b in self.block_types if b != blocks[i]] or self.block_types)
        elif op == "insert":
            blocks.insert(i, rng.choice(self.block_types))
        else:
            del blocks[i]
        return tuple(blocks)

    def crossover(self, a: BlockGenotype, b: BlockGenotype, rng: random.Random) -> tuple[BlockGenotype, BlockGenotype]:
        """One-point crossover with a cut point in each parent (lengths may differ)."""
        for _ in range(10):
            i, j = rng.randint(1, len(a) - 1) if len(a) > 1 else 1, rng.randint(1, len(b) - 1) if len(b) > 1 else 1
            c1, c2 = a[:i] + b[j:], b[:j] + a[i:]
            if all(self.min_blocks <= len(c) <= self.max_blocks for c in (c1, c2)):
                return tuple(c1), tuple(c2)
        return a, b

    def validate(self, genotype: Any) -> BlockGenotype:
        blocks = tuple(genotype)
        if not self.min_blocks <= len(blocks) <= self.max_blocks:
            raise LmnasError(
                f"genotype {'-'.join(map(str, blocks))!r}: {len(blocks)} blocks, expected {self.min_blocks}..{self.max_blocks}"
            )
        bad = [b for b in blocks if b not in self.block_types]
        if bad:
            raise LmnasError(f"genotype {'-'.join(map(str, blocks))!r}: unknown blocks {bad}; allowed: {list(self.block_types)}")
        return blocks

    def key(self, genotype: BlockGenotype) -> str:
        return "-".join(genotype)

    def parse(self, key: str) -> BlockGenotype:
        return self.validate(tuple(key.split("-")) if key else ())

    # -- networks --------------------------------------------------------------------------
    # -- categorical view: max_blocks slots, those past min_blocks may be "none" (no block) ----------
    def categorical(self) -> tuple[Choice, ...]:
        return tuple(Choice(f"block{i}", self.block_types + (("none",) if i >= self.min_blocks else ()))
                     for i in range(self.max_blocks))

    def to_categorical(self, genotype: BlockGenotype) -> dict[str, Any]:
        blocks = self.validate(genotype)
        return {f"block{i}": blocks[i] if i < len(blocks) else "none" for i in range(self.max_blocks)}

    def from_categorical(self, values: Mapping[str, Any], rng: random.Random) -> BlockGenotype:
        return self.validate(tuple(b for b in (values[f"block{i}"] for i in range(self.max_blocks)) if b != "none"))

    def stage_of(self, genotype: BlockGenotype) -> list[int]:
        n, s = len(genotype), len(self.stage_widths)
        return [i * s // n for i in range(n)]

    def block_specs(self, genotype: Sequence[str]) -> list[BlockSpec]:
        """Every block's code, input/output width and stride: the network's layout (`build` makes these)."""
        specs, channels, previous_stage = [], self.stage_widths[0], 0
        for code, stage in zip(genotype, self.stage_of(tuple(genotype))):
            width = self.stage_widths[stage]
            specs.append(BlockSpec(code, channels, width, 2 if stage != previous_stage else 1))
            channels, previous_stage = width, stage
        return specs

    def new_blocks(self, child: Sequence[str], parent: Sequence[str]) -> list[int]:
        """Indices of the child's blocks that the parent has not at the same position (cannot inherit)."""
        parent_specs = self.block_specs(parent)
        return [i for i, spec in enumerate(self.block_specs(child))
                if i >= len(parent_specs) or parent_specs[i] != spec]

    def build(self, genotype: BlockGenotype) -> BlockNet:
        specs = self.block_specs(self.validate(genotype))
        stem = Conv2dNormActivation(self.input_shape[0], self.stage_widths[0], kernel_size=3)
        blocks = [make_block(s.code, s.cin, s.cout, s.stride) for s in specs]
        return BlockNet(stem, blocks, specs[-1].cout if specs else self.stage_widths[0], self.num_classes)

    def block_label(self, code: str) -> str:
        return BLOCK_LABELS[code]

    def describe(self) -> str:
        kinds = ", ".join(f"{code} ({BLOCK_LABELS[code]})" for code in self.block_types)
        return (
            f"A chain of {self.min_blocks} to {self.max_blocks} blocks after a 3x3 conv stem, split into "
            f"{len(self.stage_widths)} equal stages of widths {list(self.stage_widths)}; the first block of "
            f"each later stage halves the resolution. Each block is one of: {kinds}. "
            f"Input {list(self.input_shape)}, {self.num_classes} classes."
        )

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "min_blocks": self.min_blocks,
            "max_blocks": self.max_blocks,
            "stage_widths": list(self.stage_widths),
            "block_types": list(self.block_types),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }
