"""Zero-cost warm start: the seam (`Strategy.initial_candidates`), the ranking, its cost file,
the run identity, and exact resume through `lmnas.search.request.search` on the real NAS-Bench-201 table."""

import dataclasses
import json
import random
import sys
from pathlib import Path

import pytest

from lmnas.config import schema, validate_search_section
from lmnas.errors import LmnasError
from lmnas.proxies.cache import ProxySpec, ProxyTable
from lmnas.proxies.warm_start import STATS, WarmStart, draw_pool
from lmnas.search.request import SearchRequest, search
from lmnas.search.runner import Budget
from lmnas.spaces import create_space
from lmnas.strategies import STRATEGIES, create_strategy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tables import BENCH, needs  # noqa: E402

SMALL = {"channels": 8, "cells_per_stage": 1}  # the scored networks: NAS-Bench-201 cells at 8 channels, 1 per stage
STRATEGY_CASES = [("random", {}), ("regularized-evolution", {"population": 8, "sample_size": 3}),
                  ("ga", {"population": 6, "generations": 10})]


def warm(tmp_path, **settings):
    return {"proxy": "synflow", "pool": 40, "top": 5, "space_overrides": SMALL,
            "cache_dir": str(tmp_path / "cache"), **settings}


def run(out, budget, strategy="random", settings=None, warm_start=None, seed=0, policy="refuse"):
    request = SearchRequest(space={"name": "nas-bench-201"}, strategy={"name": strategy, **(settings or {})},
                            evaluator={"name": "table", "benchmarks_dir": str(BENCH)}, budget=Budget(budget),
                            seed=seed, out_dir=Path(out), progress=False, warm_start=warm_start, policy=policy)
    return search(request)


def keys(out):
    return [json.loads(line)["key"] for line in (Path(out) / "journal.jsonl").read_text().splitlines()]


def rows(out):
    drop = {"finished_at"}
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (Path(out) / "journal.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("name,settings", STRATEGY_CASES)
def test_without_a_warm_start_the_start_is_the_old_random_draws(name, settings):
    space = create_space("nas-bench-201")
    strategy = create_strategy(name, space=space, seed=3, **settings)
    n = settings.get("population", 1)
    first = strategy.ask() if name == "ga" else [g for _ in range(n) for g in strategy.ask()]
    rng = random.Random(3)
    assert first == [space.sample(rng) for _ in range(n)]


def test_strategies_that_do_not_take_a_warm_start_refuse_it():
    space = create_space("nas-bench-201")

    class Fixed(STRATEGIES.get("random")):
        warm_startable = False

    with pytest.raises(LmnasError, match="does not take a warm start"):
        Fixed(space, 0).set_warm_start([space.sample(random.Random(0))])


@needs("nasbench201_cifar10.json")
def test_the_first_queries_are_the_proxy_best_of_the_pool(tmp_path):
    summary = run(tmp_path / "run", 12, warm_start=warm(tmp_path))
    space = create_space("nas-bench-201")
    pool = draw_pool(space, 40, seed=0)
    assert len(set(pool)) == 40
    table = ProxyTable(space, ProxySpec("synflow", space_overrides=SMALL), tmp_path / "cache")
    scores = table.scores(pool)
    assert table.computed == 0  # the run's scores are in the cache
    best5 = sorted(pool, key=lambda k: (-scores[k], k))[:5]
    got = keys(tmp_path / "run")
    assert got[:5] == best5
    # after the warm start, random search goes on with its own (untouched) random stream
    plain = run(tmp_path / "plain", 7)
    assert got[5:] == [k for k in keys(tmp_path / "plain") if k not in best5][:7]
    stats = json.loads((tmp_path / "run" / STATS).read_text())
    assert [t["key"] for t in stats["top"]] == best5 and stats["pool"] == 40 and stats["computed"] == 40
    assert stats["proxy_cpu_s"] > 0 and stats["proxy_cpu_s_all"] >= stats["proxy_cpu_s"]
    # the prior's cost stays out of what later stages read: best.json has the plain run's keys only
    assert set(summary) == set(plain) and "warm_start" not in summary
    assert all("proxy" not in json.dumps(r) for r in rows(tmp_path / "run"))
    fingerprint = json.loads((tmp_path / "run" / "fingerprint.json").read_text())
    assert fingerprint["warm_start"]["proxy"] == "synflow" and "cache_dir" not in fingerprint["warm_start"]
    assert "warm_start" not in json.loads((tmp_path / "plain" / "fingerprint.json").read_text())


@needs("nasbench201_cifar10.json")
@pytest.mark.parametrize("name,settings", [("bananas", {"initial": 5}), ("optuna-tpe", {"initial": 5})])
def test_model_based_strategies_start_from_the_warm_start(tmp_path, name, settings):
    """bananas and optuna-tpe spend their `initial` queries on the proxy-best of the pool too."""
    run(tmp_path / "random", 5, warm_start=warm(tmp_path))
    run(tmp_path / name, 8, name, settings, warm(tmp_path))
    assert keys(tmp_path / name)[:5] == keys(tmp_path / "random")


@needs("nasbench201_cifar10.json")
@pytest.mark.parametrize("name,settings", STRATEGY_CASES)
def test_a_resumed_warm_started_run_equals_the_uninterrupted_one(tmp_path, name, settings):
    budget = 30
    run(tmp_path / "whole", budget, name, settings, warm(tmp_path))
    expected = rows(tmp_path / "whole")
    assert len(expected) == budget
    for k in (1, 4, 13):
        out = tmp_path / f"part-{k}"
        run(out, k, name, settings, warm(tmp_path))  # a kill after k evaluations...
        run(out, budget, name, settings, warm(tmp_path))  # ...then the rerun resumes
        assert rows(out) == expected, f"{name}: resumed after {k} evaluations, the journal differs"
        assert json.loads((out / STATS).read_text())["computed"] == 0  # every score from the cache


@needs("nasbench201_cifar10.json")
def test_other_warm_start_settings_are_another_run(tmp_path):
    run(tmp_path / "run", 5, warm_start=warm(tmp_path))
    with pytest.raises(LmnasError, match="differ: warm_start.top"):
        run(tmp_path / "run", 8, warm_start=warm(tmp_path, top=3))
    with pytest.raises(LmnasError, match="differ: warm_start"):
        run(tmp_path / "run", 8)
    # where the cache lives is not part of the identity
    run(tmp_path / "run", 8, warm_start=warm(tmp_path, cache_dir=str(tmp_path / "elsewhere")))


@pytest.mark.parametrize("section,match", [
    ({"pool": 10}, "missing 'proxy'"),
    ({"proxy": "synflow", "pool": 5, "top": 6}, "1 <= top <= pool"),
    ({"proxy": "synflow", "colour": "red"}, r"unknown settings \['colour'\]"),
    ({"proxy": "nope"}, "unknown proxy 'nope'"),
])
def test_bad_warm_start_settings_are_clear_errors(section, match):
    with pytest.raises(LmnasError, match=match):
        WarmStart.from_dict(section).spec()


def test_schema_holds_the_warm_start_defaults():
    spec = schema()["properties"]["search"]["properties"]["warm_start"]
    ours = {name: sub["default"] for name, sub in spec["properties"].items() if "default" in sub}
    library = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
               for f in dataclasses.fields(WarmStart) if f.name not in ("proxy", "data")}
    assert ours == library
    section = {"space": "nas-bench-201", "strategy": "random", "evaluator": "table", "budget": {"evaluations": 10},
               "warm_start": {"proxy": "naswot"}}
    validate_search_section(section, "test")
    assert section["warm_start"] == {"proxy": "naswot", **library}
    plain = {"space": "nas-bench-201", "strategy": "random", "evaluator": "table", "budget": {"evaluations": 10}}
    validate_search_section(plain, "test")
    assert plain["warm_start"] is None
    with pytest.raises(LmnasError, match="search.warm_start"):
        validate_search_section({**plain, "warm_start": {"proxy": "naswot", "pool": 0}}, "test")


@needs("nasbench201_cifar10.json")
def test_the_workflow_config_section_reaches_the_warm_start(tmp_path):
    from lmnas.search.from_config import search_from_config

    section = {"space": "nas-bench-201", "strategy": "regularized-evolution", "evaluator": "table",
               "budget": {"evaluations": 6}, "warm_start": warm(tmp_path, top=3),
               "options": {"regularized-evolution": {"population": 4, "sample_size": 2}}}
    search_from_config(section, data_dir=None, archgpt_dir=None, out_dir=tmp_path / "run", seed=1,
                       benchmarks_dir=BENCH, progress=False)
    stats = json.loads((tmp_path / "run" / STATS).read_text())
    assert keys(tmp_path / "run")[:3] == [t["key"] for t in stats["top"]] and stats["seed"] == 1
