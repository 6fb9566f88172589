"""Random+GPT (GPT-NAS Table 6): random samples whose masked units the architecture GPT re-generates."""

import random

import pytest

from lmnas.errors import LmnasError
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy

from bench_tables import BENCH as BENCHMARKS, needs  # noqa: E402 (tests/ is on sys.path: conftest.py)

needs_table = needs("nas_bench_101_subset.json")
BLOCKS = {"min_blocks": 3, "max_blocks": 6, "stage_widths": [16, 32, 64], "input_shape": [1, 8, 8], "num_classes": 5}


@pytest.fixture(scope="module")
def table():
    from lmnas.evaluation import EVALUATORS

    evaluator = EVALUATORS.create("table", benchmarks_dir=BENCHMARKS, table="subset")
    return evaluator, evaluator.keys(create_space("nas-bench-101"))[::10]


def asks(strategy, rounds):
    return [strategy.space.key(g) for _ in range(rounds) for g in strategy.ask()]


@needs_table
def test_searches_the_table_and_regenerates_vertices(archgpt_dir, table, tmp_path):
    evaluator, keys = table
    space = create_space("nas-bench-101", candidates=keys)
    runs = []
    for name in ("a", "b"):
        strategy = create_strategy("random-gpt", space=space, seed=4, archgpt_dir=archgpt_dir, mask_rate=1.0)
        outcome = run_search(space, strategy, evaluator, tmp_path / name / "journal.jsonl", Budget(12), seed=4,
                             progress=False)
        runs.append([r["key"] for r in outcome.journal.rows])
        assert all(k in keys for k in runs[-1])
        assert strategy.regenerated > 0  # every interior vertex of every sample went through the GPT
    assert runs[0] == runs[1] and len(runs[0]) == 12


@needs_table
def test_mask_rate_zero_is_random_search(archgpt_dir, table):
    space = create_space("nas-bench-101", candidates=table[1])
    gpt = create_strategy("random-gpt", space=space, seed=2, archgpt_dir=archgpt_dir, mask_rate=0.0)
    assert asks(gpt, 25) == asks(create_strategy("random", space=space, seed=2), 25)
    assert gpt.regenerated == 0


def test_gpt_changes_the_samples_of_the_block_space(archgpt_dir):
    space = create_space("gptnas-blocks", **BLOCKS)
    gpt = create_strategy("random-gpt", space=space, seed=0, archgpt_dir=archgpt_dir, mask_rate=1.0)
    proposals = [g for _ in range(8) for g in gpt.ask()]
    assert all(space.validate(g) == g for g in proposals)
    assert gpt.regenerated == sum(len(g) for g in proposals)
    # The same random draws without the GPT give other genotypes (the GPT really rebuilt them).
    rng = random.Random(0)
    assert any(space.sample(rng) != g for g in proposals)


@pytest.mark.parametrize("settings, match", [({"mask_rate": 1.5}, "mask_rate"), ({"temperature": -1}, "temperature"),
                                             ({"batch_size": 0}, "batch_size")])
def test_refuses_bad_settings(archgpt_dir, settings, match):
    with pytest.raises(LmnasError, match=match):
        create_strategy("random-gpt", space=create_space("nas-bench-101"), seed=0, archgpt_dir=archgpt_dir, **settings)


def test_needs_a_gpt_space(archgpt_dir):
    with pytest.raises(LmnasError, match="gptnas-blocks or nas-bench-101"):
        create_strategy("random-gpt", space=create_space("nas-bench-201"), seed=0, archgpt_dir=archgpt_dir)
