"""The GENIUS ImageNet MobileNet space (Zheng et al. 2023, "Can GPT-4 Perform NAS?").

30 searchable layers in 5 stages of 6, each one of 7 ops: skip or an inverted residual
(kernel 3/5/7, expansion 4/6) with squeeze-excitation and hard-swish. Fixed parts, as in
GENIUS `imagenet/network/genius.py`: a 3x3 stride-2 stem (16) → a depthwise-separable block
(16, SE) → the stages (widths 24/40/80/96/192, strides 2/2/2/1/2) → 1x1 conv 320 → global
pool → 1x1 conv 1280 → dropout 0.2 → linear.

Inside a stage only the first layer changes width or stride; a skip there becomes a 1x1
conv + BN projection, a skip anywhere else is dropped, so where the skips sit among layers
2..6 of a stage does not change the network. `validate` therefore moves them to the end of
the stage: one canonical genotype (and key) per network.

FLOPs are counted per layer analytically, so a FLOPs check costs microseconds, in one of two
conventions (`flops_count`):
- "macs": multiply-adds of convs and linears, what `lmnas.models.measure` counts (torch's
  FlopCounterMode; the tests check the analytic sum against it);
- "genius": what thop (GENIUS's counter, `thop.profile` in its train.py) counts: those plus
  4 ops per batch-norm output element (an affine BatchNorm2d) and (H*W + 1) per output of the
  global AdaptiveAvgPool2d (H*W adds and a divide: 16,000 on the 320 x 7 x 7 map at 224 px,
  GENIUS's prompt lists it as "FLOPS: 0.016"). SE pools are `x.mean` in GENIUS, no module, so
  thop counts nothing for them; activations, dropout and biases count nothing either. Rounded to
  the integer, it reproduces the FLOPs GENIUS reports in its transcripts (329 for GENIUS-329,
  401 for GENIUS-401, and 194 of the 205 distinct designs with a FLOPs figure in its chat
  histories; the other 11 are off by more than 0.5 M and thus GENIUS's own slips), so GENIUS's
  budgets such as [270, 330] mean the same thing here.

GENIUS judges a design by its FLOPs rounded to an integer number of millions, as its feedback
prints them: its transcripts accept designs at 330.07, 330.24 and 330.40 M under [270, 330] and
reject one at 330.55 M ("resulting 331 FLOPS, which is 1 FLOPS higher..."). `check_constraints`
does the same.

GENIUS states its budgets at 224 px (the retraining resolution) even when candidates are
trained at a smaller proxy resolution (196 px for GENIUS-329). So `flops` (the paper convention,
what the constraint, the prompts and the history use) is counted at `flops_resolution` (224 by
default), apart from `input_shape`; `macs` is torch's multiply-adds at `input_shape`.
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from timm.models._efficientnet_builder import efficientnet_init_weights
from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
from torchvision.ops import Conv2dNormActivation

from lmnas.errors import LmnasError
from lmnas.spaces import SPACES
from lmnas.spaces.base import Choice, SearchSpace

OpGenotype = tuple[int, ...]


@dataclass(frozen=True)
class Op:
    name: str
    kernel: int  # 0 for skip
    expansion: int  # 0 for skip

    def signature(self) -> str:
        if not self.kernel:
            return "Skip(in_channels, out_channels, stride)"
        return f"InvertedResidual(in_channels, out_channels, stride, kernel_size={self.kernel}, expansion={self.expansion})"


# Op ids exactly as GENIUS numbers them (OPS_LIST in genius.py and the prompts).
OPS: tuple[Op, ...] = (
    Op("skip", 0, 0),
    Op("ir_k3_e4", 3, 4),
    Op("ir_k5_e4", 5, 4),
    Op("ir_k7_e4", 7, 4),
    Op("ir_k3_e6", 3, 6),
    Op("ir_k5_e6", 5, 6),
    Op("ir_k7_e6", 7, 6),
)
STEM_WIDTH = 16
STAGE_WIDTHS = (24, 40, 80, 96, 192)
STAGE_STRIDES = (2, 2, 2, 1, 2)
LAYERS_PER_STAGE = 6
NUM_LAYERS = LAYERS_PER_STAGE * len(STAGE_WIDTHS)
LAST_CONV_WIDTH = 320
HEAD_WIDTH = 1280


def _out_size(size: int, kernel: int, stride: int) -> int:
    """Spatial size after a conv with padding (kernel-1)//2, as Conv2dNormActivation pads."""
    return (size + 2 * ((kernel - 1) // 2) - kernel) // stride + 1


def _squeeze_channels(expanded: int) -> int:
    # What torchvision's MobileNetV3 InvertedResidual computes for its squeeze-excitation,
    # through the public helper (_make_divisible(expanded // 4, 8) inside).
    return InvertedResidualConfig.adjust_channels(expanded // 4, 1.0)


FLOPS_COUNTS = ("macs", "genius")
BN_OPS_PER_ELEMENT = 4  # thop: 2 per element for normalising, doubled when the BN is affine


class Cost(NamedTuple):
    macs: int  # multiply-adds of convs and linears
    bn: int  # batch-norm output elements
    pool: int = 0  # thop's ops for an AdaptiveAvgPool2d: (kernel elements + 1 divide) per output

    def flops(self, count: str) -> int:
        return self.macs + (BN_OPS_PER_ELEMENT * self.bn + self.pool if count == "genius" else 0)


def _global_pool_cost(channels: int, hw: tuple[int, int]) -> Cost:
    """thop's count_adap_avgpool for AdaptiveAvgPool2d(1): (H*W adds + 1 divide) x C outputs."""
    return Cost(0, 0, (hw[0] * hw[1] + 1) * channels)


def _conv_cost(cin: int, cout: int, kernel: int, stride: int, hw: tuple[int, int], groups: int = 1) -> Cost:
    """A conv (padding (k-1)//2) followed by a BatchNorm2d."""
    ho, wo = _out_size(hw[0], kernel, stride), _out_size(hw[1], kernel, stride)
    return Cost(cout * (cin // groups) * kernel * kernel * ho * wo, cout * ho * wo)


def _ir_cost(cin: int, cout: int, kernel: int, expanded: int, stride: int, hw: tuple[int, int]) -> Cost:
    """Expand 1x1 (absent when expanded == cin) + depthwise + SE (two 1x1 on a 1x1 map) + project 1x1."""
    hw_out = (_out_size(hw[0], kernel, stride), _out_size(hw[1], kernel, stride))
    parts = [
        _conv_cost(cin, expanded, 1, 1, hw) if expanded != cin else Cost(0, 0),
        _conv_cost(expanded, expanded, kernel, stride, hw, groups=expanded),
        Cost(2 * expanded * _squeeze_channels(expanded), 0),
        _conv_cost(expanded, cout, 1, 1, hw_out),
    ]
    return Cost(sum(p.macs for p in parts), sum(p.bn for p in parts))


@dataclass(frozen=True)
class LayerSlot:
    """One searchable layer: where it sits and what it maps (hw = input height, width)."""

    index: int  # 0..29, the position in the genotype
    stage: int  # 0..4
    first: bool  # first layer of its stage: may change width/stride
    cin: int
    cout: int
    stride: int
    hw: tuple[int, int]


def op_cost(slot: LayerSlot, op_id: int) -> Cost:
    op = OPS[op_id]
    if not op.kernel:
        if slot.cin == slot.cout and slot.stride == 1:
            return Cost(0, 0)
        return _conv_cost(slot.cin, slot.cout, 1, slot.stride, slot.hw)
    return _ir_cost(slot.cin, slot.cout, op.kernel, slot.cin * op.expansion, slot.stride, slot.hw)


def make_layer(slot: LayerSlot, op_id: int) -> nn.Module | None:
    """The module of one layer; None for a skip that is an identity (dropped from the net)."""
    op = OPS[op_id]
    if not op.kernel:
        if slot.cin == slot.cout and slot.stride == 1:
            return None
        return Conv2dNormActivation(slot.cin, slot.cout, kernel_size=1, stride=slot.stride, activation_layer=None)
    cnf = InvertedResidualConfig(
        slot.cin, op.kernel, slot.cin * op.expansion, slot.cout, True, "HS", slot.stride, 1, 1.0
    )
    return InvertedResidual(cnf, nn.BatchNorm2d)


class GeniusNet(nn.Module):
    """features (stem, DS block, 5 stages, 1x1 conv 320) → pool → head (1x1 conv 1280, dropout, linear)."""

    def __init__(self, features: nn.Sequential, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Conv2d(LAST_CONV_WIDTH, HEAD_WIDTH, 1),
            nn.Hardswish(),
            nn.Flatten(1),
            nn.Dropout(dropout),
            nn.Linear(HEAD_WIDTH, num_classes),
        )
        # GENIUS's init (genius.py calls it): convs normal(0, sqrt(2 / fan_out)) with fan_out =
        # k*k*out_channels / groups (so a depthwise 5x5 gets std sqrt(2/25) = 0.28), BN (1, 0),
        # linears uniform(+-1/sqrt(out_features)), biases 0.
        self.init_weights()

    def init_weights(self) -> None:
        """GENIUS's (timm's EfficientNet) init; transfer's from-scratch baseline calls it too."""
        efficientnet_init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] → logits [B, num_classes]
        return self.head(self.pool(self.features(x)))


@SPACES.register("genius-imagenet")
class GeniusImageNetSpace(SearchSpace):
    name = "genius-imagenet"
    canonical_form = ("each stage's later skips moved to the end of the stage (a skip there is no layer, "
                      "so the network is the same)")

    def __init__(
        self,
        input_shape: Sequence[int] = (3, 224, 224),
        num_classes: int = 1000,
        flops_limits: Sequence[float] | None = None,
        flops_count: str = "genius",
        dropout: float = 0.2,
        flops_resolution: int | None = 224,
    ) -> None:
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise LmnasError(f"search.space.input_shape: expected (C, H, W) of positive ints, got {list(input_shape)}")
        if num_classes < 1:
            raise LmnasError(f"search.space.num_classes: expected >= 1, got {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise LmnasError(f"search.space.dropout: expected 0 <= dropout < 1, got {dropout}")
        if flops_count not in FLOPS_COUNTS:
            raise LmnasError(f"search.space.flops_count: {flops_count!r}, expected one of {list(FLOPS_COUNTS)}")
        if flops_resolution is not None and flops_resolution < 1:
            raise LmnasError(f"search.space.flops_resolution: expected a positive size in pixels or null, got {flops_resolution}")
        if flops_limits is not None:
            if len(flops_limits) != 2 or not 0 <= flops_limits[0] <= flops_limits[1]:
                raise LmnasError(
                    f"search.space.flops_limits: expected [low, high] in millions with 0 <= low <= high, got {list(flops_limits)}"
                )
            flops_limits = (float(flops_limits[0]), float(flops_limits[1]))
        self.input_shape = tuple(int(s) for s in input_shape)  # type: ignore[assignment]
        self.num_classes = int(num_classes)
        self.flops_limits: tuple[float, float] | None = flops_limits
        self.flops_count = flops_count
        self.dropout = float(dropout)
        self.flops_resolution = None if flops_resolution is None else int(flops_resolution)
        c = self.input_shape[0]
        flops_shape = self.input_shape if flops_resolution is None else (c, self.flops_resolution, self.flops_resolution)
        self.slots, self._input_fixed = self._layout(self.input_shape)
        flops_slots, self._fixed = self._layout(flops_shape)  # the paper convention's resolution
        # Cost of every (layer, op): a whole count is a sum of 30 lookups.
        self._op_costs = [[op_cost(slot, i) for i in range(len(OPS))] for slot in flops_slots]
        self._input_op_costs = [[op_cost(slot, i) for i in range(len(OPS))] for slot in self.slots]
        self._flops_cache: dict[tuple[OpGenotype, str], int] = {}

    # -- layout and FLOPs -------------------------------------------------------------------
    def _layout(self, shape: tuple[int, ...]) -> tuple[list[LayerSlot], dict[str, Cost]]:
        """The 30 searchable slots and the costs of the fixed layers, at input size `shape`."""
        c, h, w = shape
        fixed = {"stem": _conv_cost(c, STEM_WIDTH, 3, 2, (h, w))}
        h, w = _out_size(h, 3, 2), _out_size(w, 3, 2)
        fixed["ds_block"] = _ir_cost(STEM_WIDTH, STEM_WIDTH, 3, STEM_WIDTH, 1, (h, w))
        slots, cin = [], STEM_WIDTH
        for stage, (width, stride) in enumerate(zip(STAGE_WIDTHS, STAGE_STRIDES)):
            for pos in range(LAYERS_PER_STAGE):
                first = pos == 0
                s = stride if first else 1
                slots.append(LayerSlot(len(slots), stage, first, cin, width, s, (h, w)))
                h, w, cin = _out_size(h, 3, s), _out_size(w, 3, s), width
        fixed["last_conv"] = _conv_cost(cin, LAST_CONV_WIDTH, 1, 1, (h, w))
        fixed["global_pool"] = _global_pool_cost(LAST_CONV_WIDTH, (h, w))
        fixed["head_conv"] = Cost(LAST_CONV_WIDTH * HEAD_WIDTH, 0)  # on the pooled 1x1 map, no BN
        fixed["classifier"] = Cost(HEAD_WIDTH * self.num_classes, 0)
        return slots, fixed

    def flops(self, genotype: OpGenotype, count: str | None = None) -> int:
        """FLOPs for one image at `flops_resolution` in `count` (default: the space's `flops_count`,
        the paper's convention): what the constraint checks and the prompts show."""
        return self._count(genotype, count or self.flops_count, self._op_costs, self._fixed, "flops")

    def macs(self, genotype: OpGenotype) -> int:
        """Multiply-adds of convs and linears at `input_shape`: equals `lmnas.models.measure(...)["flops"]`."""
        return self._count(genotype, "macs", self._input_op_costs, self._input_fixed, "input")

    def _count(self, genotype: OpGenotype, count: str, op_costs: list[list[Cost]], fixed: dict[str, Cost],
               where: str) -> int:
        genotype = self.validate(genotype)
        cache_key = (genotype, count + where)
        if cache_key not in self._flops_cache:
            costs = [op_costs[i][op] for i, op in enumerate(genotype)] + list(fixed.values())
            self._flops_cache[cache_key] = sum(c.flops(count) for c in costs)
        return self._flops_cache[cache_key]

    def check_constraints(self, genotype: OpGenotype) -> str | None:
        """None when within `flops_limits`, else GENIUS's feedback message.

        Judged as GENIUS judged: on the FLOPs in millions rounded to an integer, the number its
        message prints ("resulting 362 FLOPS, which is 32 FLOPS higher the upper bound of 330")."""
        if self.flops_limits is None:
            return None
        low, high = self.flops_limits
        mflops = round(self.flops(genotype) / 1e6)
        if mflops > high:
            where = f"{mflops - high:g} FLOPS higher the upper bound of {high:g}"
        elif mflops < low:
            where = f"{low - mflops:g} FLOPS below the lower bound of {low:g}"
        else:
            return None
        return (
            f"The design fails to meet the FLOPS constraint, resulting {mflops} FLOPS, which is {where}. "
            "Please revise your design to propose a more suitable approach that maximizes the model's "
            "performance on ImageNet while meeting the FLOPS constraint."
        )

    def _within_limits(self, genotype: OpGenotype) -> bool:
        return self.check_constraints(genotype) is None

    # -- genotype operators -----------------------------------------------------------------
    def sample(self, rng: random.Random) -> OpGenotype:
        """Each layer skips with a probability drawn per sample (so depths and FLOPs spread widely),
        else takes a uniform inverted residual; with `flops_limits`, rejection-sampled into them."""
        for _ in range(10_000):
            p_skip = rng.random()
            ops = [0 if rng.random() < p_skip else rng.randrange(1, len(OPS)) for _ in range(NUM_LAYERS)]
            g = self.validate(ops)
            if self._within_limits(g):
                return g
        raise LmnasError(f"search.space.flops_limits {list(self.flops_limits or ())}: no sample within them in 10000 tries")

    def mutate(self, genotype: OpGenotype, rng: random.Random) -> OpGenotype:
        """Change one layer's op; prefers a child within `flops_limits` (100 tries, else the last child)."""
        genotype = self.validate(genotype)
        child = genotype
        for _ in range(100):
            ops = list(genotype)
            i = rng.randrange(NUM_LAYERS)
            ops[i] = rng.choice([o for o in range(len(OPS)) if o != ops[i]])
            child = self.validate(ops)
            if self._within_limits(child):
                break
        return child

    def crossover(self, a: OpGenotype, b: OpGenotype, rng: random.Random) -> tuple[OpGenotype, OpGenotype]:
        """One-point crossover at a layer boundary; prefers children within `flops_limits` (10 tries)."""
        a, b = self.validate(a), self.validate(b)
        children = (a, b)
        for _ in range(10):
            cut = rng.randint(1, NUM_LAYERS - 1)
            children = (self.validate(a[:cut] + b[cut:]), self.validate(b[:cut] + a[cut:]))
            if all(self._within_limits(c) for c in children):
                break
        return children

    def validate(self, genotype: Any) -> OpGenotype:
        try:
            ops = list(genotype)
        except TypeError:
            raise LmnasError(f"genotype {genotype!r}: expected a sequence of {NUM_LAYERS} op ids") from None
        shown = ",".join(map(str, ops))
        if len(ops) != NUM_LAYERS:
            raise LmnasError(
                f"genotype {shown!r}: {len(ops)} layers, expected {NUM_LAYERS} "
                f"({len(STAGE_WIDTHS)} stages x {LAYERS_PER_STAGE})"
            )
        choices = ", ".join(f"{i} {op.name}" for i, op in enumerate(OPS))
        for i, op in enumerate(ops):
            if isinstance(op, bool) or not isinstance(op, numbers.Integral) or not 0 <= op < len(OPS):
                raise LmnasError(
                    f"genotype {shown!r}: layer {i} (stage {i // LAYERS_PER_STAGE + 1}, position "
                    f"{i % LAYERS_PER_STAGE + 1}) has op {op!r}, expected an int 0..{len(OPS) - 1} ({choices})"
                )
        return self.canonical(tuple(int(op) for op in ops))

    # -- categorical view: one op per layer ----------------------------------------------------------
    def categorical(self) -> tuple[Choice, ...]:
        return tuple(Choice(f"layer{i}", tuple(range(len(OPS)))) for i in range(NUM_LAYERS))

    def to_categorical(self, genotype: OpGenotype) -> dict[str, Any]:
        return {f"layer{i}": op for i, op in enumerate(self.validate(genotype))}

    def from_categorical(self, values: Mapping[str, Any], rng: random.Random) -> OpGenotype:
        """The ops as given; outside `flops_limits`, one-layer changes (at most 100) until within them,
        else a fresh sample."""
        genotype = self.validate([values[f"layer{i}"] for i in range(NUM_LAYERS)])
        for _ in range(100):
            if self._within_limits(genotype):
                return genotype
            genotype = self.mutate(genotype, rng)
        return genotype if self._within_limits(genotype) else self.sample(rng)

    @staticmethod
    def canonical(ops: OpGenotype) -> OpGenotype:
        """Keep each stage's first op; move that stage's later skips to its end (same network)."""
        out: list[int] = []
        for start in range(0, NUM_LAYERS, LAYERS_PER_STAGE):
            stage = ops[start : start + LAYERS_PER_STAGE]
            rest = [op for op in stage[1:] if op != 0]
            out += [stage[0], *rest] + [0] * (LAYERS_PER_STAGE - 1 - len(rest))
        return tuple(out)

    def key(self, genotype: OpGenotype) -> str:
        return ",".join(map(str, self.validate(genotype)))

    def parse(self, key: str) -> OpGenotype:
        """Inverse of `key`; also reads GENIUS's list form "[1, 0, 0, ...]"."""
        tokens = [t.strip() for t in key.strip().strip("[]").split(",")]
        if tokens == [""]:
            tokens = []
        bad = [t for t in tokens if not t.isdigit()]
        if bad:
            raise LmnasError(f"genotype key {key!r}: {bad[:3]} are not op ids; expected {NUM_LAYERS} comma-separated ints")
        return self.validate(tuple(int(t) for t in tokens))

    # -- networks ---------------------------------------------------------------------------
    def build(self, genotype: OpGenotype) -> GeniusNet:
        genotype = self.validate(genotype)
        stem = Conv2dNormActivation(self.input_shape[0], STEM_WIDTH, kernel_size=3, stride=2, activation_layer=nn.Hardswish)
        # GENIUS's stage0: depthwise-separable 3x3 with SE = an inverted residual without expansion.
        ds_block = InvertedResidual(
            InvertedResidualConfig(STEM_WIDTH, 3, STEM_WIDTH, STEM_WIDTH, True, "HS", 1, 1, 1.0), nn.BatchNorm2d
        )
        stages = [nn.Sequential() for _ in STAGE_WIDTHS]
        for slot, op_id in zip(self.slots, genotype):
            layer = make_layer(slot, op_id)
            if layer is not None:
                stages[slot.stage].append(layer)
        last_conv = Conv2dNormActivation(STAGE_WIDTHS[-1], LAST_CONV_WIDTH, kernel_size=1, activation_layer=nn.Hardswish)
        features = nn.Sequential(stem, ds_block, *stages, last_conv)
        return GeniusNet(features, self.num_classes, self.dropout)

    # -- text -------------------------------------------------------------------------------
    def flops_table(self) -> dict[str, list[float]]:
        """MFLOPs per op id of every stage's first and later layers (GENIUS's flops_stageN_first/rest)."""
        table = {}
        for stage in range(len(STAGE_WIDTHS)):
            first = stage * LAYERS_PER_STAGE
            for part, costs in (("first", self._op_costs[first]), ("rest", self._op_costs[first + 1])):
                table[f"flops_stage{stage + 1}_{part}"] = [round(c.flops(self.flops_count) / 1e6, 4) for c in costs]
        return table

    def describe(self) -> str:
        c, h, w = self.input_shape
        mf = {k: round(v.flops(self.flops_count) / 1e6, 4) for k, v in self._fixed.items()}
        unit = "millions of multiply-adds" + (
            ", plus what thop counts for batch norms and the global pool" if self.flops_count == "genius" else ""
        ) + (f", counted at {self.flops_resolution}x{self.flops_resolution} input" if self.flops_resolution else "")
        lines = [
            f"A MobileNet-style network for {h}x{w} images with {c} channels and {self.num_classes} classes "
            f"(GENIUS ImageNet space). {NUM_LAYERS} layers are undefined; each takes one of these "
            f"{len(OPS)} operations:",
            *(f"{i}: {op.signature()}" for i, op in enumerate(OPS)),
            "Every InvertedResidual uses squeeze-and-excitation and hard-swish. The Skip() operation skips a "
            "layer, but where in_channels != out_channels or stride != 1 a 1x1 convolution transforms the "
            "input feature map to the expected dimensions.",
            "",
            f"The model architecture (FLOPS = {unit}):",
            f"layer0: defined, Conv2d(in_channels={c}, out_channels={STEM_WIDTH}, kernel_size=3, stride=2), FLOPS: {mf['stem']}",
            f"layer1: defined, DepthwiseSeparable(in_channels={STEM_WIDTH}, out_channels={STEM_WIDTH}, kernel_size=3, "
            f"stride=1), FLOPS: {mf['ds_block']}",
        ]
        for slot in self.slots:
            part = "first" if slot.first else "rest"
            lines.append(
                f"layer{slot.index + 2}: undefined, downsample: {slot.stride == 2}, in_channels: {slot.cin}, "
                f"out_channels: {slot.cout}, stride: {slot.stride}, "
                f"FLOPS: flops_stage{slot.stage + 1}_{part}[op_list[{slot.index}]]"
            )
        n = NUM_LAYERS + 2
        lines += [
            f"layer{n}: defined, Conv2d(in_channels={STAGE_WIDTHS[-1]}, out_channels={LAST_CONV_WIDTH}, kernel_size=1), "
            f"FLOPS: {mf['last_conv']}",
            f"layer{n + 1}: defined, AdaptiveAvgPool2d(output_size=1)"
            + (f", FLOPS: {mf['global_pool']}" if mf["global_pool"] else ""),
            f"layer{n + 2}: defined, Conv2d(in_channels={LAST_CONV_WIDTH}, out_channels={HEAD_WIDTH}, kernel_size=1), "
            f"FLOPS: {mf['head_conv']}",
            f"layer{n + 3}: defined, Linear(in_features={HEAD_WIDTH}, out_features={self.num_classes}), "
            f"FLOPS: {mf['classifier']}",
            "Whenever downsample is True, the width and height of the feature map are halved. FLOPS of each "
            "operation in each layer (index = operation ID):",
            *(f"{name} = {values}" for name, values in self.flops_table().items()),
            "",
            f"The undefined layers 2 to {NUM_LAYERS + 1} form {len(STAGE_WIDTHS)} stages "
            f"(widths {', '.join(map(str, STAGE_WIDTHS))}):",
            *(
                f"Stage {s + 1}: Layer {s * LAYERS_PER_STAGE + 2} to Layer {(s + 1) * LAYERS_PER_STAGE + 1}"
                for s in range(len(STAGE_WIDTHS))
            ),
            f"An architecture is the op_list of {NUM_LAYERS} operation IDs, e.g. "
            f"[{', '.join(['1'] + ['0'] * (NUM_LAYERS - 1))}]. Use Skip to control the depth of each stage.",
        ]
        if self.flops_limits is not None:
            low, high = self.flops_limits
            lines.append(
                f"The total FLOPS of the model (defined and undefined layers) must remain in [{low:g}, {high:g}]."
            )
        return "\n".join(lines)

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "flops_limits": list(self.flops_limits) if self.flops_limits is not None else None,
            "flops_count": self.flops_count,
            "flops_resolution": self.flops_resolution,
            "dropout": self.dropout,
        }
