"""Every registered space, through the same contract (a new space is tested for free)."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from lmnas.errors import LmnasError
from lmnas.models import measure
from lmnas.spaces import SPACES, create_space
from lmnas.spaces.genius_imagenet import OPS as GENIUS_OPS
from lmnas.spaces.gptnas_blocks import BLOCK_LABELS
from lmnas.spaces.nas_bench_101 import OP_CODES
from lmnas.spaces.nas_bench_201 import NB201_OPS
from lmnas.spaces.nas_bench_macro import MACRO_OPS

SMALL_SETTINGS = {
    "gptnas-blocks": {"min_blocks": 3, "max_blocks": 6, "stage_widths": [16, 32, 64], "input_shape": [1, 8, 8], "num_classes": 5},
}


def small_space(name):
    return create_space(name, **SMALL_SETTINGS.get(name, {}))


def counted_by_hand(model, input_shape):
    """(params, multiply-adds) from the layer shapes, independent of lmnas.models.measure: conv/linear
    weights and biases, BatchNorm affine pairs; MACs from each conv/linear output seen by a forward hook."""
    params, macs = 0, [0]
    for module in model.modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            expected = module.out_channels * module.in_channels // module.groups * kh * kw
            assert own == expected + (module.out_channels if module.bias is not None else 0), module
        elif isinstance(module, nn.Linear):
            assert own == module.out_features * (module.in_features + (module.bias is not None)), module
        elif isinstance(module, nn.BatchNorm2d):
            assert own == (2 * module.num_features if module.affine else 0), module
        params += own

    def conv(m, _, out):
        macs[0] += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, _, out):
        macs[0] += out.numel() * m.in_features

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for hook in hooks:
        hook.remove()
    return params, macs[0]


@pytest.mark.parametrize("name", SPACES.names())
def test_operators_stay_valid_and_keys_round_trip(name):
    space, rng = small_space(name), random.Random(0)
    population = [space.sample(rng) for _ in range(20)]
    for g in population:
        assert space.parse(space.key(g)) == space.validate(g)
    for a, b in zip(population, population[1:]):
        for child in (*space.crossover(a, b, rng), space.mutate(a, rng)):
            assert space.validate(child) == child
    # sampling explores the space: 20 draws, 20 networks (NAS-Bench-101's sampler favours small cells: 19)
    assert len({space.key(g) for g in population}) == (19 if name == "nas-bench-101" else 20)


@pytest.mark.parametrize("name", SPACES.names())
def test_build_forward_backward(name):
    space = small_space(name)
    g = space.sample(random.Random(1))
    model = space.build(g)
    x = torch.randn(2, *space.input_shape)
    out = model(x)
    assert out.shape == (2, space.num_classes)
    out.sum().backward()
    sizes = measure(model, space.input_shape)
    params, macs = counted_by_hand(model, space.input_shape)
    assert (sizes["params"], sizes["flops"]) == (params, macs) and macs > 0


@pytest.mark.parametrize("name", SPACES.names())
def test_describe_mentions_the_choices(name):
    """The plain-text description (an LLM strategy's prompt) names every choice the space offers,
    as the space's own constants list them."""
    space = small_space(name)
    text = space.describe()
    assert name in DESCRIBED_CHOICES, f"{name}: say in DESCRIBED_CHOICES how its description shows each choice"
    missing = [choice for choice in DESCRIBED_CHOICES[name](space) if choice not in text]
    assert not missing, f"{name}: describe() does not mention {missing}"


def _channel_widths(space):
    # one line per position: "channels[i]: [w1, w2, ...]", every width k x base[i] of that position
    return [f"channels[{i}]: {[k * base for k in space.choices]}" for i, base in enumerate(space.base)]


DESCRIBED_CHOICES = {
    "gptnas-blocks": lambda space: [f"{code} ({BLOCK_LABELS[code]})" for code in space.block_types],
    "nas-bench-201": lambda space: list(NB201_OPS),
    "nas-bench-macro": lambda space: [f"{i} = " for i in range(len(MACRO_OPS))] + list(MACRO_OPS),
    "nas-bench-101": lambda space: [f"{code} = " for code in OP_CODES],
    "genius-imagenet": lambda space: [f"{i}: {op.signature()}" for i, op in enumerate(GENIUS_OPS)],
    "channel-bench-macro-resnet": _channel_widths,
    "channel-bench-macro-mobilenet": _channel_widths,
}


def test_block_space_rejects_bad_genotypes():
    space = small_space("gptnas-blocks")
    with pytest.raises(LmnasError, match="unknown blocks"):
        space.parse("conv-basic-warp")
    with pytest.raises(LmnasError, match="2 blocks, expected 3..6"):
        space.parse("conv-basic")


def test_block_space_every_block_type_builds_at_every_stage():
    space = small_space("gptnas-blocks")
    for code in space.block_types:
        model = space.build((code,) * 6)
        assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 5)
        # stages of [16, 32, 64]: blocks 2 and 4 halve 8 px → 4 → 2
        assert len(model.blocks) == 6


def test_block_space_macs_of_a_known_network():
    # stem conv 1→16 (3x3, 8x8) = 9216 MACs; conv blocks 16→16@8x8, 16→32@4x4, 32→64@2x2;
    # linear 64→5 = 320.  (BN/ReLU/pool are not multiply-adds.)
    space = small_space("gptnas-blocks")
    model = space.build(("conv", "conv", "conv"))
    expected = 9 * 1 * 16 * 64 + 9 * 16 * 16 * 64 + 9 * 16 * 32 * 16 + 9 * 32 * 64 * 4 + 64 * 5
    # params: bias-free convs 1→16, 16→16, 16→32, 32→64 (3x3), a BN (weight + bias) after each, linear 64→5 + bias
    params = 9 * (1 * 16 + 16 * 16 + 16 * 32 + 32 * 64) + 2 * (16 + 16 + 32 + 64) + 64 * 5 + 5
    assert measure(model, space.input_shape) == {"params": params, "flops": expected} == {"params": 26_069, "flops": 304_448}


@pytest.mark.parametrize("name", SPACES.names())
def test_categorical_view_round_trips_and_any_combination_is_valid(name):
    """The contract the model-based strategies use: genotype → values → the same genotype; any
    combination of values → a valid genotype; features of one fixed length."""
    space, rng = small_space(name), random.Random(1)
    choices = space.categorical()
    lengths = set()
    for _ in range(30):
        g = space.sample(rng)
        values = space.to_categorical(g)
        assert set(values) == {c.name for c in choices} and all(values[c.name] in c.options for c in choices)
        assert space.from_categorical(values, rng) == space.validate(g)
        any_values = {c.name: rng.choice(c.options) for c in choices}
        child = space.from_categorical(any_values, rng)
        assert space.validate(child) == child
        features = space.features(g)
        assert features.dtype == np.float32 and features.ndim == 1 and np.isfinite(features).all()
        lengths.add(len(features))
    assert len(lengths) == 1


def test_path_encoding_of_a_known_nas_bench_201_cell():
    space = create_space("nas-bench-201")
    # only 0→3 (conv3x3) and 0→1→3 (skip, conv1x1) carry signal; every other edge is `none`
    g = space.parse("|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|none~2|")
    paths = space.features(g)[30:]
    assert paths.sum() == 2
    assert paths[2] == 1  # route 0→3, op nor_conv_3x3 (index 2 of the 4 non-`none` ops)
    assert paths[4 + 0 * 4 + 1] == 1  # route 0→1→3: skip_connect then nor_conv_1x1


def test_nas_bench_101_invalid_combination_maps_to_the_nearest_candidate():
    space = create_space("nas-bench-101")
    no_edges = {c.name: (0 if c.name.startswith("e") else c.options[0]) for c in space.categorical()}
    cell = space.from_categorical(no_edges, random.Random(0))  # no input→output path: repaired
    assert space.key(cell) == "1|"  # input → output directly: the only edge added
    rng = random.Random(2)
    candidates = [space.key(space.sample(rng)) for _ in range(40)]
    restricted = create_space("nas-bench-101", candidates=candidates)
    assert space.key(restricted.from_categorical(no_edges, rng)) in set(candidates)
