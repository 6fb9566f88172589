"""NAS-Bench-Macro (Su et al., CVPR 2021): 8 searchable layers, 3 choices each, CIFAR-10.

Key: 8 digits as the benchmark table writes them, one per layer: 0 = identity, 1 = MobileNetV2
block expansion 3 kernel 3, 2 = expansion 6 kernel 5. The network (xiusu/NAS-Bench-Macro
train/model.py): stem 3x3 conv 3→32 + BN + ReLU at 32 px; stages of [2, 3, 3] layers whose
first layer strides 2 and doubles the width (32 → 64 → 128 → 256; 32 → 16 → 8 → 4 px; an
identity there becomes 1x1 conv + BN); head 1x1 conv 256→1280 + BN + ReLU, global average
pool, linear 1280→10.

`DigitSpace` (fixed-length digit strings) is shared with Channel-Bench-Macro, and the one-position
mutation and uniform crossover with NAS-Bench-201.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from numbers import Integral
from typing import Any

import numpy as np
from torch import nn

from lmnas.errors import LmnasError
from lmnas.spaces import SPACES
from lmnas.spaces._mobilenet_blocks import InvertedResidual, PooledClassifier, SkipLayer, conv_bn
from lmnas.spaces.base import Choice, SearchSpace, one_hot

DigitGenotype = tuple[int, ...]

CROSSOVERS = ("uniform", "one-point")


def mutate_position(genotype: tuple, choices: tuple, rng: random.Random) -> tuple:
    """Change one position to a different choice."""
    items = list(genotype)
    i = rng.randrange(len(items))
    items[i] = rng.choice([c for c in choices if c != items[i]])
    return tuple(items)


def uniform_crossover(a: tuple, b: tuple, rng: random.Random) -> tuple[tuple, tuple]:
    """Each position swapped between the parents with probability 1/2."""
    swap = [rng.random() < 0.5 for _ in a]
    return tuple(y if s else x for x, y, s in zip(a, b, swap)), tuple(x if s else y for x, y, s in zip(a, b, swap))


class DigitSpace(SearchSpace):
    """Genotype = a fixed-length tuple of small ints; key = their digits concatenated."""

    length: int = 0
    choices: tuple[int, ...] = ()

    def __init__(self, crossover: str = "uniform") -> None:
        if crossover not in CROSSOVERS:
            raise LmnasError(f"search.space.crossover: {crossover!r}; expected one of {list(CROSSOVERS)}")
        self.crossover_kind = crossover

    # -- genotype operators -------------------------------------------------------------
    def sample(self, rng: random.Random) -> DigitGenotype:
        return tuple(rng.choice(self.choices) for _ in range(self.length))

    def mutate(self, genotype: DigitGenotype, rng: random.Random) -> DigitGenotype:
        return mutate_position(genotype, self.choices, rng)

    def crossover(self, a: DigitGenotype, b: DigitGenotype, rng: random.Random) -> tuple[DigitGenotype, DigitGenotype]:
        if self.crossover_kind == "one-point":
            cut = rng.randint(1, self.length - 1)
            return a[:cut] + b[cut:], b[:cut] + a[cut:]
        return uniform_crossover(a, b, rng)

    def validate(self, genotype: Any) -> DigitGenotype:
        if isinstance(genotype, str):
            return self.parse(genotype)
        try:
            digits = tuple(genotype)
        except TypeError:
            raise LmnasError(f"genotype {genotype!r}: expected {self.length} ints in {list(self.choices)}") from None
        ok = len(digits) == self.length and all(
            isinstance(d, Integral) and not isinstance(d, bool) and int(d) in self.choices for d in digits
        )
        if not ok:
            raise LmnasError(
                f"genotype {list(digits)!r}: expected {self.length} ints, each one of {list(self.choices)}"
            )
        return tuple(int(d) for d in digits)

    def key(self, genotype: DigitGenotype) -> str:
        return "".join(map(str, genotype))

    def parse(self, key: str) -> DigitGenotype:
        allowed = {str(c) for c in self.choices}
        if len(key) != self.length or not set(key) <= allowed:
            raise LmnasError(
                f"{self.name} key {key!r}: expected {self.length} digits, each one of {''.join(sorted(allowed))}"
            )
        return tuple(int(c) for c in key)

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "crossover": self.crossover_kind}

    # -- categorical view: one decision per position, every combination valid --------------------
    def categorical(self) -> tuple[Choice, ...]:
        return tuple(Choice(f"layer{i}", self.choices) for i in range(self.length))

    def to_categorical(self, genotype: DigitGenotype) -> dict[str, Any]:
        return {f"layer{i}": d for i, d in enumerate(self.validate(genotype))}

    def from_categorical(self, values: Mapping[str, Any], rng: random.Random) -> DigitGenotype:
        return self.validate([values[f"layer{i}"] for i in range(self.length)])


# Layer choices in key order (the benchmark's candidate_OP list).
MACRO_OPS = ("identity", "MB3_K3", "MB6_K5")
MACRO_STAGES = (2, 3, 3)
MACRO_STEM_WIDTH = 32
MACRO_HEAD_WIDTH = 1280


def macro_layer(choice: int, inp: int, oup: int, stride: int) -> nn.Module:
    if choice == 0:
        return SkipLayer(inp, oup, stride)
    expansion, kernel = (3, 3) if choice == 1 else (6, 5)
    return InvertedResidual(inp, round(inp * expansion), oup, kernel, stride)


@SPACES.register("nas-bench-macro")
class NASBenchMacroSpace(DigitSpace):
    name = "nas-bench-macro"
    length = sum(MACRO_STAGES)
    choices = (0, 1, 2)
    input_shape = (3, 32, 32)
    num_classes = 10

    def stages(self, genotype: DigitGenotype) -> list[DigitGenotype]:
        bounds = [sum(MACRO_STAGES[:i]) for i in range(len(MACRO_STAGES) + 1)]
        return [tuple(genotype[lo:hi]) for lo, hi in zip(bounds, bounds[1:])]

    def distinct(self, genotype: DigitGenotype) -> DigitGenotype:
        """The trained network behind a key: inside each stage the identities after the first
        (downsampling) layer move to the end, as the benchmark's collector merges them
        (6,561 keys → 3,969 distinct networks)."""
        out: list[int] = []
        for stage in self.stages(genotype):
            rest = [d for d in stage[1:] if d != 0]
            out += [stage[0], *rest, *[0] * (len(stage) - 1 - len(rest))]
        return tuple(out)

    def distinct_key(self, genotype: DigitGenotype) -> str:
        return self.key(self.distinct(genotype))

    def features(self, genotype: DigitGenotype) -> np.ndarray:
        """One-hot of the trained network behind the key (keys of one network get one vector)."""
        return one_hot(self.categorical(), self.to_categorical(self.distinct(genotype)))

    def build(self, genotype: DigitGenotype) -> nn.Module:
        genotype = self.validate(genotype)
        width = MACRO_STEM_WIDTH
        layers: list[nn.Module] = [conv_bn(self.input_shape[0], width, 3)]
        for stage in self.stages(genotype):
            for i, choice in enumerate(stage):
                out = width * 2 if i == 0 else width
                layers.append(macro_layer(choice, width, out, 2 if i == 0 else 1))
                width = out
        layers.append(conv_bn(width, MACRO_HEAD_WIDTH, 1))
        return PooledClassifier(nn.Sequential(*layers), MACRO_HEAD_WIDTH, self.num_classes)

    def describe(self) -> str:
        return (
            "NAS-Bench-Macro (CIFAR-10, 32x32 input, 10 classes): a network of 8 searchable layers "
            "after a 3x3 conv stem of 32 channels, in 3 stages of [2, 3, 3] layers. The first layer "
            "of each stage has stride 2 and doubles the channels (64, 128, 256); the network ends "
            "with a 1x1 conv to 1280 channels, global average pooling and a linear classifier. "
            "Each layer is one of: 0 = identity (skip; a 1x1 conv where it downsamples), "
            "1 = MobileNetV2 block with expansion 3 and a 3x3 depthwise kernel (MB3_K3), "
            "2 = MobileNetV2 block with expansion 6 and a 5x5 depthwise kernel (MB6_K5). "
            "An architecture is written as 8 digits, e.g. 12012021. 3^8 = 6,561 architectures; "
            "each has a measured CIFAR-10 test accuracy (best over 50 epochs, mean of 3 runs)."
        )
