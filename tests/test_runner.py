import json
import random
import sys
from pathlib import Path

from lmnas.search.journal import Journal
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import SyntheticEvaluator, reseed_globals  # noqa: E402

SPACE = {"min_blocks": 3, "max_blocks": 6, "stage_widths": [16, 32, 64], "input_shape": [1, 8, 8], "num_classes": 5}


def run(tmp_path, strategy="ga", budget=40, seed=0, evaluator=None, **settings):
    space = create_space("gptnas-blocks", **SPACE)
    strat = create_strategy(strategy, space=space, seed=seed, **settings)
    evaluator = evaluator or SyntheticEvaluator()
    outcome = run_search(space, strat, evaluator, tmp_path / "journal.jsonl", Budget(budget), seed=seed, progress=False)
    return outcome, evaluator


def keys(path):
    return [json.loads(line)["key"] for line in Path(path).read_text().splitlines()]


def test_budget_is_exact_and_keys_are_distinct(tmp_path):
    outcome, evaluator = run(tmp_path, population=8, generations=50, budget=40)
    assert len(outcome.journal) == 40 == len(set(keys(tmp_path / "journal.jsonl")))
    assert evaluator.calls == keys(tmp_path / "journal.jsonl")
    assert outcome.stopped_because == "evaluation budget spent"


def test_same_seed_identical_journal(tmp_path):
    reseed_globals(1)
    run(tmp_path / "a", population=8, generations=4, budget=100)
    reseed_globals(2)  # other global RNG states: only the seed may decide
    run(tmp_path / "b", population=8, generations=4, budget=100)
    strip = lambda p: [{k: v for k, v in json.loads(l).items() if k != "finished_at"} for l in Path(p).read_text().splitlines()]
    assert strip(tmp_path / "a/journal.jsonl") == strip(tmp_path / "b/journal.jsonl")
    run(tmp_path / "c", seed=1, population=8, generations=4, budget=100)
    assert keys(tmp_path / "a/journal.jsonl") != keys(tmp_path / "c/journal.jsonl")


def test_resume_replays_without_reevaluating(tmp_path):
    full, _ = run(tmp_path / "full", population=8, generations=20, budget=45)
    run(tmp_path / "part", population=8, generations=20, budget=17)
    resumed, evaluator = run(tmp_path / "part", population=8, generations=20, budget=45)
    assert resumed.resumed_from == 17
    assert len(evaluator.calls) == 45 - 17  # nothing evaluated twice
    assert keys(tmp_path / "part/journal.jsonl") == keys(tmp_path / "full/journal.jsonl")


def test_torn_last_line_is_dropped_and_rewritten(tmp_path):
    run(tmp_path, population=8, generations=6, budget=10)
    path = tmp_path / "journal.jsonl"
    path.write_text(path.read_text() + '{"key": "conv-co')  # a kill mid-write
    journal = Journal(path)
    assert len(journal) == 10
    resumed, evaluator = run(tmp_path, population=8, generations=6, budget=12)
    assert resumed.resumed_from == 10 and len(evaluator.calls) == 2
    run(tmp_path / "straight", population=8, generations=6, budget=12)
    assert keys(path) == keys(tmp_path / "straight" / "journal.jsonl")  # no trace of the torn line


def test_ga_improves_over_its_initial_population(tmp_path):
    outcome, _ = run(tmp_path, population=10, generations=8, budget=90)
    rows = outcome.journal.rows
    first = max(r["metrics"]["accuracy"] for r in rows if r["generation"] == 0)
    assert max(r["metrics"]["accuracy"] for r in rows) > first


def test_random_search_runs(tmp_path):
    outcome, evaluator = run(tmp_path, strategy="random", budget=25)
    space, rng = create_space("gptnas-blocks", **SPACE), random.Random(0)
    drawn = [space.sample(rng) for _ in range(25)]  # random search = the seeded sampler, in order
    rows = outcome.journal.rows
    assert [r["key"] for r in rows] == [space.key(g) for g in drawn] == evaluator.calls
    assert [r["step"] for r in rows] == list(range(1, 26)) and outcome.stopped_because == "evaluation budget spent"
    reference = SyntheticEvaluator()
    assert [r["metrics"]["accuracy"] for r in rows] == [reference.evaluate(space, g, seed=0).accuracy for g in drawn]
