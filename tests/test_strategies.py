"""Every registered strategy through the ask/tell contract (a new one is tested for free)."""

import random
import sys
from pathlib import Path

import pytest

from lmnas.spaces import create_space
from lmnas.strategies import STRATEGIES, create_strategy
from lmnas.strategies.ga_gpt import mask_rate_at

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import SyntheticEvaluator, reseed_globals  # noqa: E402

SPACE = {"min_blocks": 3, "max_blocks": 6, "stage_widths": [16, 32, 64], "input_shape": [1, 8, 8], "num_classes": 5}
# Strategies that need a model or a server: tested in test_ga_gpt.py and test_genius.py.
NEEDS_MODEL = {"ga-gpt", "random-gpt", "genius", "genius-hybrid"}


def trace(name, seed, rounds=30, global_seed=0):
    reseed_globals(global_seed)  # the strategy's seed alone must decide what it asks
    space = create_space("gptnas-blocks", **SPACE)
    strategy = create_strategy(name, space=space, seed=seed)
    evaluator, asked = SyntheticEvaluator(), []
    for _ in range(rounds):
        batch = strategy.ask()
        if not batch:
            break
        for g in batch:
            assert space.validate(g) == g
            asked.append(space.key(g))
        for g in batch:
            strategy.tell(g, evaluator.evaluate(space, g, seed=seed))
    return asked


@pytest.mark.parametrize("name", sorted(set(STRATEGIES.names()) - NEEDS_MODEL))
def test_deterministic_per_seed(name):
    assert trace(name, 0, global_seed=1) == trace(name, 0, global_seed=2)
    assert trace(name, 0) != trace(name, 1)


# How many of the first asks are plain draws of space.sample from random.Random(seed) (the default
# settings: random search always, GA its population of 30, regularized evolution its 20).
RANDOM_START = {"random": 30, "ga": 30, "regularized-evolution": 20}


@pytest.mark.parametrize("name", sorted(RANDOM_START))
def test_the_random_start_is_the_seeded_sample(name):
    space, rng = create_space("gptnas-blocks", **SPACE), random.Random(4)
    drawn = [space.key(space.sample(rng)) for _ in range(RANDOM_START[name])]
    asked = trace(name, 4)
    assert asked[: len(drawn)] == drawn
    if name != "random":  # then evolution: children, not more draws of the same generator
        assert len(asked) > len(drawn) and asked[len(drawn):] != [space.key(space.sample(rng)) for _ in asked[len(drawn):]]


def test_mask_rate_decays_linearly_to_zero():
    rates = [mask_rate_at(0.4, g, 4) for g in range(1, 6)]
    assert rates == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.0])
