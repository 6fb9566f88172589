"""NAS-Bench-201 (Dong & Yang, ICLR 2020): one cell of 4 nodes and 6 edges, 5 operations each.

Genotype: the 6 edge operations in the order of the benchmark's architecture string
`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, i.e. edges 0→1, 0→2, 1→2, 0→3, 1→3, 2→3
(node j = sum over i < j of op_ij(node i); node 3 is the cell output).

Network (the benchmark's TinyNetwork with C=16, N=5): 3x3 conv stem 3→C + BN; 3 stages of N
cells at C, 2C, 4C channels, joined by residual blocks that halve the resolution
(ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, shortcut 2x2 avg-pool + 1x1 conv); then BN + ReLU
("lastact"), global average pool, linear. Every edge op is built, including ops whose output
never reaches the cell output, as the benchmark does (its params count them).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch
from torch import nn

from lmnas.errors import LmnasError
from lmnas.spaces import SPACES
from lmnas.spaces.base import Choice, SearchSpace, one_hot
from lmnas.spaces.nas_bench_macro import mutate_position, uniform_crossover

# The benchmark's operation list, in its own order (also GENIUS's 0..4 numbering).
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (from node, to node) of each genotype position, in architecture-string order.
NB201_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))

NB201Genotype = tuple[str, ...]

# Path encoding (BANANAS, White et al. 2021): the input→output routes of the cell as edge indices,
# and one feature per (route, ops on it) with no `none` on it: 4 + 16 + 16 + 64 = 100 features.
NB201_ROUTES = ((3,), (0, 4), (1, 5), (0, 2, 5))  # 0→3; 0→1→3; 0→2→3; 0→1→2→3
_PATH_OPS = NB201_OPS[1:]
_PATH_INDEX: dict[tuple[int, tuple[str, ...]], int] = {
    (r, ops): i for i, (r, ops) in enumerate(
        (r, ops) for r, route in enumerate(NB201_ROUTES) for ops in itertools.product(_PATH_OPS, repeat=len(route)))
}

_OP = "|".join(NB201_OPS)
_KEY_RE = re.compile(rf"^\|({_OP})~0\|\+\|({_OP})~0\|({_OP})~1\|\+\|({_OP})~0\|({_OP})~1\|({_OP})~2\|$")


class Zero(nn.Module):
    """`none`: the edge contributes nothing (x * 0 keeps the shape and dtype, as the benchmark does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def relu_conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
    )


def edge_op(name: str, channels: int) -> nn.Module:
    """One cell edge; inside a cell every op keeps channels and resolution (stride 1)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return relu_conv_bn(channels, channels, 1)
    if name == "nor_conv_3x3":
        return relu_conv_bn(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise LmnasError(f"unknown NAS-Bench-201 op {name!r}; known: {list(NB201_OPS)}")


class Cell(nn.Module):
    def __init__(self, genotype: NB201Genotype, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(edge_op(op, channels) for op in genotype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] → [B, C, H, W]
        nodes = [x]
        for j in (1, 2, 3):
            nodes.append(sum(self.edges[e](nodes[i]) for e, (i, t) in enumerate(NB201_EDGES) if t == j))
        return nodes[3]


class ResidualReduction(nn.Module):
    """Between stages: halves the resolution and doubles the channels."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_a = relu_conv_bn(cin, cout, 3, stride=2)
        self.conv_b = relu_conv_bn(cout, cout, 3)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    def __init__(self, genotype: NB201Genotype, channels: int, cells_per_stage: int, in_channels: int,
                 num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers += [Cell(genotype, c) for _ in range(cells_per_stage)]
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] → logits [B, num_classes]
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.pool(x).flatten(1))


@SPACES.register("nas-bench-201")
class NASBench201Space(SearchSpace):
    name = "nas-bench-201"

    def __init__(
        self,
        num_classes: int = 10,
        input_shape: Sequence[int] = (3, 32, 32),
        channels: int = 16,
        cells_per_stage: int = 5,
    ) -> None:
        if len(input_shape) != 3 or min(input_shape[1:]) < 4:
            raise LmnasError(f"search.space.input_shape: expected [C, H, W] with H, W >= 4, got {list(input_shape)}")
        if channels < 1 or cells_per_stage < 1 or num_classes < 2:
            raise LmnasError(
                f"search.space: need channels >= 1, cells_per_stage >= 1, num_classes >= 2; got "
                f"{channels}, {cells_per_stage}, {num_classes}"
            )
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(s) for s in input_shape)  # type: ignore[assignment]
        self.channels = int(channels)
        self.cells_per_stage = int(cells_per_stage)

    # -- genotype operators -------------------------------------------------------------
    def sample(self, rng: random.Random) -> NB201Genotype:
        return tuple(rng.choice(NB201_OPS) for _ in NB201_EDGES)

    def mutate(self, genotype: NB201Genotype, rng: random.Random) -> NB201Genotype:
        """Change the operation on one edge."""
        return mutate_position(genotype, NB201_OPS, rng)

    def crossover(self, a: NB201Genotype, b: NB201Genotype, rng: random.Random) -> tuple[NB201Genotype, NB201Genotype]:
        """Uniform: each edge's op swapped between the parents with probability 1/2."""
        return uniform_crossover(a, b, rng)

    def validate(self, genotype: Any) -> NB201Genotype:
        """6 op names in edge order, or their indices 0..4 in NB201_OPS order, or the arch string."""
        if isinstance(genotype, str):
            return self.parse(genotype)
        try:
            items = tuple(genotype)
        except TypeError:
            raise LmnasError(f"genotype {genotype!r}: expected 6 NAS-Bench-201 op names {list(NB201_OPS)}") from None
        ops = tuple(
            NB201_OPS[int(x)] if isinstance(x, Integral) and not isinstance(x, bool) and 0 <= int(x) < len(NB201_OPS)
            else x
            for x in items
        )
        if len(ops) != len(NB201_EDGES) or any(op not in NB201_OPS for op in ops):
            raise LmnasError(
                f"genotype {list(items)!r}: expected 6 ops (edges 0→1, 0→2, 1→2, 0→3, 1→3, 2→3), "
                f"each one of {list(NB201_OPS)} or its index 0..4"
            )
        return ops

    def key(self, genotype: NB201Genotype) -> str:
        a, b, c, d, e, f = genotype
        return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"

    def parse(self, key: str) -> NB201Genotype:
        match = _KEY_RE.match(key.strip())
        if match is None:
            raise LmnasError(
                f"NAS-Bench-201 key {key!r}: expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2| "
                f"with op one of {list(NB201_OPS)}"
            )
        return match.groups()

    # -- categorical view and features -------------------------------------------------------------
    def categorical(self) -> tuple[Choice, ...]:
        return tuple(Choice(f"edge{i}{j}", NB201_OPS) for i, j in NB201_EDGES)

    def to_categorical(self, genotype: NB201Genotype) -> dict[str, Any]:
        return {f"edge{i}{j}": op for (i, j), op in zip(NB201_EDGES, self.validate(genotype))}

    def from_categorical(self, values: Mapping[str, Any], rng: random.Random) -> NB201Genotype:
        return self.validate([values[f"edge{i}{j}"] for i, j in NB201_EDGES])  # every combination is a cell

    def features(self, genotype: NB201Genotype) -> np.ndarray:
        """One-hot of the 6 edge ops (30) followed by the path encoding (100)."""
        paths = np.zeros(len(_PATH_INDEX), dtype=np.float32)
        for r, route in enumerate(NB201_ROUTES):
            ops = tuple(genotype[e] for e in route)
            if "none" not in ops:
                paths[_PATH_INDEX[(r, ops)]] = 1.0
        return np.concatenate([one_hot(self.categorical(), self.to_categorical(genotype)), paths])

    # -- networks --------------------------------------------------------------------------
    def build(self, genotype: NB201Genotype) -> NB201Network:
        return NB201Network(
            self.validate(genotype), self.channels, self.cells_per_stage, self.input_shape[0], self.num_classes
        )

    def describe(self) -> str:
        return (
            "NAS-Bench-201: a cell with 4 nodes (node 0 = cell input, node 3 = cell output); node j is "
            "the sum of one operation applied to every earlier node, so the cell has 6 edges "
            "(0→1, 0→2, 1→2, 0→3, 1→3, 2→3). Each edge is one of: none (zero, removes the edge), "
            "skip_connect (identity), nor_conv_1x1 (ReLU-conv1x1-BN), nor_conv_3x3 (ReLU-conv3x3-BN), "
            "avg_pool_3x3 (3x3 average pooling). The same cell is stacked "
            f"{self.cells_per_stage} times in each of 3 stages of {self.channels}, {2 * self.channels} and "
            f"{4 * self.channels} channels, joined by stride-2 residual blocks, after a 3x3 conv stem; "
            "global average pooling and a linear classifier end the network. "
            "An architecture is written |op~0|+|op~0|op~1|+|op~0|op~1|op~2| (op~i = the edge from node i). "
            f"5^6 = 15,625 architectures. Input {list(self.input_shape)}, {self.num_classes} classes."
        )

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "channels": self.channels,
            "cells_per_stage": self.cells_per_stage,
        }
