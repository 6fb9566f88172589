"""A resumed search equals the uninterrupted one, at any kill point, at the sizes users run.

A kill is simulated by cutting the uninterrupted run's logs back to what a process killed at
that point leaves on disk: the first k journal rows (sometimes with a torn half row after
them) and, for LLM strategies, the transcript up to the request in flight. A fresh strategy
object then resumes the run, exactly as a restarted process does. Real SIGKILLs are in
test_resume_sigkill.py. Accuracies come from the real tables in ../shared/benchmarks.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from lmnas.evaluation import EVALUATORS
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from llm_server import ScriptedServer, hill_climb  # noqa: E402

KEY_ENV = "LMNAS_TEST_KEY"


@pytest.fixture(autouse=True)
def fast_logs(monkeypatch):
    # Kills are simulated by truncating files, not by power loss: fsync only costs time here.
    monkeypatch.setattr("lmnas.jsonl.os.fsync", lambda fd: None)
    monkeypatch.setenv(KEY_ENV, "sk-test")


def rows(out: Path) -> list[tuple]:
    lines = (out / "journal.jsonl").read_text().splitlines()
    return [(r["step"], r["key"], r["generation"], r["metrics"]["accuracy"], r["cost_s"])
            for r in map(json.loads, lines)]


def run(space_name, strategy_name, settings, out: Path, budget: int, evaluator, **space_settings):
    space = create_space(space_name, **space_settings)
    strategy = create_strategy(strategy_name, space=space, seed=3, **settings)
    return run_search(space, strategy, evaluator, out / "journal.jsonl", Budget(budget), seed=3, progress=False)


def cut(reference: Path, out: Path, k: int, torn: bool, transcript_requests: int | None) -> None:
    """Leave in `out` what a process killed after its k-th evaluation leaves on disk."""
    out.mkdir(parents=True)
    lines = (reference / "journal.jsonl").read_text().splitlines(keepends=True)
    text = "".join(lines[:k]) + (lines[k][: len(lines[k]) // 2] if torn and k < len(lines) else "")
    (out / "journal.jsonl").write_text(text)
    if transcript_requests is not None:
        kept, requests = [], 0
        for line in (reference / "transcript.jsonl").read_text().splitlines(keepends=True):
            if json.loads(line).get("event") == "request":
                requests += 1
                if requests > transcript_requests:
                    break
            kept.append(line)
        (out / "transcript.jsonl").write_text("".join(kept))


def kill_points(total: int, n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted({0, 1, total - 1, *rng.sample(range(2, total - 1), n)})


TABLE_CASES = [  # (space, strategy, settings, budget): thousands of evaluations, long converged tails
    ("nas-bench-201", "random", {}, 3000),
    ("nas-bench-201", "regularized-evolution", {"population": 50, "sample_size": 10}, 3000),
    ("nas-bench-201", "ga", {"population": 30, "generations": 400}, 3000),
    ("nas-bench-macro", "regularized-evolution", {"population": 20, "sample_size": 5}, 2000),
]


@pytest.mark.parametrize("space_name,strategy_name,settings,budget", TABLE_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in TABLE_CASES])
def test_table_search_resumes_identically_at_every_kill_point(tmp_path, space_name, strategy_name, settings, budget):
    table = EVALUATORS.create("table")
    reference = tmp_path / "reference"
    outcome = run(space_name, strategy_name, settings, reference, budget, table)
    expected = rows(reference)
    points = kill_points(len(expected), 10, seed=budget)
    for i, k in enumerate(points):
        out = tmp_path / f"killed-{k}"
        cut(reference, out, k, torn=i % 2 == 1, transcript_requests=None)
        resumed = run(space_name, strategy_name, settings, out, budget, table)
        assert rows(out) == expected, f"kill after {k} evaluations: the resumed journal differs"
        assert resumed.stopped_because == outcome.stopped_because
        assert resumed.resumed_from == k
    # a larger budget extends the run exactly as an uninterrupted run of that budget
    bigger = tmp_path / "bigger"
    run(space_name, strategy_name, settings, bigger, budget + 500, table)
    extended = tmp_path / "killed-0"  # already holds the full budget-sized run
    run(space_name, strategy_name, settings, extended, budget + 500, table)
    assert rows(extended) == rows(bigger)
    print(f"\n{space_name}/{strategy_name}: {len(expected)} evaluations ({outcome.stopped_because}); "
          f"{len(points)} kill points {points} all identical to the uninterrupted run")


# Model-based strategies: the predictor / TPE study is rebuilt by replaying the journal, so every
# kill point must give the same proposals. Small settings keep the 8 replays quick.
MODEL_CASES = [  # (space, strategy, settings, budget, table, candidates from the table)
    ("nas-bench-201", "bananas", {"initial": 5, "candidates": 30, "epochs": 40}, 120, "nas-bench-201", False),
    ("nas-bench-macro", "bananas", {"initial": 5, "candidates": 30, "epochs": 40, "acquisition": "ucb",
                                    "retrain_growth": 0.0, "batch_size": 3}, 120, None, False),
    ("nas-bench-201", "optuna-tpe", {"initial": 5}, 150, "nas-bench-201", False),
    # most NAS-Bench-101 combinations are no cell: from_categorical maps them to the nearest candidate
    ("nas-bench-101", "optuna-tpe", {"initial": 5, "max_repeats": 5}, 80, "subset", True),
]


@pytest.mark.parametrize("space_name,strategy_name,settings,budget,table_name,restricted", MODEL_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in MODEL_CASES])
def test_model_based_search_resumes_identically(tmp_path, space_name, strategy_name, settings, budget, table_name,
                                                restricted):
    table = EVALUATORS.create("table", **({"table": "subset"} if table_name == "subset" else {}))
    space_settings = {"candidates": table.keys(create_space(space_name))} if restricted else {}
    reference = tmp_path / "reference"
    outcome = run(space_name, strategy_name, settings, reference, budget, table, **space_settings)
    expected = rows(reference)
    assert len({key for _, key, *_ in expected}) == len(expected) == budget
    for i, k in enumerate(kill_points(len(expected), 5, seed=budget)):
        out = tmp_path / f"killed-{k}"
        cut(reference, out, k, torn=i % 2 == 1, transcript_requests=None)
        resumed = run(space_name, strategy_name, settings, out, budget, table, **space_settings)
        assert rows(out) == expected, f"{strategy_name}: kill after {k} evaluations: the resumed journal differs"
        assert resumed.stopped_because == outcome.stopped_because and resumed.resumed_from == k
    bigger, extended = tmp_path / "bigger", tmp_path / "killed-0"  # killed-0 holds the full run now
    run(space_name, strategy_name, settings, bigger, budget + 30, table, **space_settings)
    run(space_name, strategy_name, settings, extended, budget + 30, table, **space_settings)
    assert rows(extended) == rows(bigger)


def test_ga_gpt_resumes_identically(tmp_path, archgpt_dir):
    table = EVALUATORS.create("table", table="subset")
    cells = table.keys(create_space("nas-bench-101"))  # the space is the 292 cells the table holds
    settings = {"archgpt_dir": str(archgpt_dir), "population": 10, "generations": 30, "device": "cpu"}
    reference = tmp_path / "reference"
    run("nas-bench-101", "ga-gpt", settings, reference, 120, table, candidates=cells)
    expected = rows(reference)
    for k in kill_points(len(expected), 4, seed=7):
        out = tmp_path / f"killed-{k}"
        cut(reference, out, k, torn=k % 2 == 0, transcript_requests=None)
        run("nas-bench-101", "ga-gpt", settings, out, 120, table, candidates=cells)
        assert rows(out) == expected, f"kill after {k} evaluations"


@pytest.mark.parametrize("strategy_name,budget", [("genius", 40), ("genius-hybrid", 150)])
def test_llm_strategies_resume_identically(tmp_path, strategy_name, budget):
    table = EVALUATORS.create("table")
    with ScriptedServer(hill_climb(8, 3)) as server:
        settings = {"model": "scripted", "api_key_env": KEY_ENV, "backoff_s": 0.001, "base_url": server.base_url}
        reference = tmp_path / "reference"
        run("nas-bench-macro", strategy_name, {**settings, "out_dir": str(reference)}, reference, budget, table)
        expected = rows(reference)
        requests = sum(1 for line in (reference / "transcript.jsonl").read_text().splitlines()
                       if json.loads(line).get("event") == "request")
        for i, k in enumerate(kill_points(len(expected), 5, seed=budget)):
            out = tmp_path / f"killed-{k}"
            # the request in flight at the kill may or may not have its answer recorded
            asked = sum(1 for r in map(json.loads, (reference / "transcript.jsonl").read_text().splitlines())
                        if r.get("event") == "request" and r.get("outcome", {}).get("keys")
                        and r["outcome"]["keys"][0] in {key for _, key, *_ in expected[:k]})
            cut(reference, out, k, torn=False, transcript_requests=min(requests, asked + i % 2))
            run("nas-bench-macro", strategy_name, {**settings, "out_dir": str(out)}, out, budget, table)
            assert rows(out) == expected, f"{strategy_name}: kill after {k} evaluations"


def test_parallel_workers_resume_to_the_same_evaluations(tmp_path):
    """With 2 worker processes the journal's order follows completion, but the strategy is told in
    asked order: the resumed run evaluates exactly the uninterrupted run's genotypes, with its results."""
    table = EVALUATORS.create("table")
    settings = {"batch_size": 4}  # batches of 4 keep both workers busy

    def search(out: Path) -> None:
        space = create_space("nas-bench-201")
        strategy = create_strategy("random", space=space, seed=3, **settings)
        run_search(space, strategy, table, out / "journal.jsonl", Budget(400), seed=3, workers=2, progress=False)

    search(tmp_path / "reference")
    expected = sorted((key, acc) for _, key, _, acc, _ in rows(tmp_path / "reference"))
    for k in (0, 137, 399):
        out = tmp_path / f"killed-{k}"
        cut(tmp_path / "reference", out, k, torn=True, transcript_requests=None)
        search(out)
        assert sorted((key, acc) for _, key, _, acc, _ in rows(out)) == expected
