"""Every registered space, through the same contract (a new space is tested for free)."""

import random

import pytest
import torch

from lmnas.errors import LmnasError
from lmnas.models import measure
from lmnas.spaces import SPACES, create_space

SMALL_SETTINGS = {
    "gptnas-blocks": {"min_blocks": 3, "max_blocks": 6, "stage_widths": [16, 32, 64], "input_shape": [1, 8, 8], "num_classes": 5},
}


def small_space(name):
    return create_space(name, **SMALL_SETTINGS.get(name, {}))


@pytest.mark.parametrize("name", SPACES.names())
def test_operators_stay_valid_and_keys_round_trip(name):
    space, rng = small_space(name), random.Random(0)
    population = [space.sample(rng) for _ in range(20)]
    for g in population:
        assert space.parse(space.key(g)) == space.validate(g)
    for a, b in zip(population, population[1:]):
        for child in (*space.crossover(a, b, rng), space.mutate(a, rng)):
            assert space.validate(child) == child
    assert len({space.key(g) for g in population}) > 10  # sampling explores the space


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
    assert sizes["params"] > 0 and sizes["flops"] > 0


@pytest.mark.parametrize("name", SPACES.names())
def test_describe_mentions_the_choices(name):
    assert len(small_space(name).describe()) > 40


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
    assert measure(model, space.input_shape)["flops"] == expected
