"""Trials side by side: N seeds of the method and of baselines at the same budget.

GENIUS reports, per table benchmark, several trials of GPT-4 next to random search and
regularized evolution at the same number of queries (its Tables 1-3: the accuracy and rank of
the architecture proposed at every iteration, and the best over the trials as mean ± std).
`run_trials` runs every (strategy, seed) as a normal search (`lmnas.search.request`, so each folder
has its own journal, fingerprint and resume) under `out_dir/<strategy>-seed<seed>/`, and
`summarise` turns the journals into `trials.json`: per run, the accuracy (searched-on), test
accuracy and rank of the architecture evaluated at each step and of the best so far. Rank: the
position of the architecture's reported (test) accuracy among every architecture of the
benchmark table, 1 = best (None when the evaluator is not a table).

A baseline may also be a named variant of a strategy (`variants: {genius-named: {strategy: genius,
name_benchmark: true}}`), e.g. to compare hidden against named benchmarks at the same budget.
"""

from __future__ import annotations

import bisect
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.io import write_json
from lmnas.search.from_config import search_from_config
from lmnas.search.wiring import chosen
from lmnas.spaces import create_space

SUMMARY = "trials.json"


@dataclass(frozen=True)
class TrialsSettings:
    seeds: tuple[int, ...]
    strategies: tuple[str, ...]  # labels: the method first, then the baselines
    options: dict[str, dict[str, Any]]  # per-label settings over search.options[<strategy>]
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> {strategy, **settings}

    @classmethod
    def from_config(cls, section: dict[str, Any], method: str) -> TrialsSettings:
        seeds = tuple(int(s) for s in section.get("seeds", [0, 1, 2]))
        if not seeds or len(set(seeds)) != len(seeds):
            raise LmnasError(f"trials.seeds: expected distinct seeds, got {list(seeds)}")
        baselines = [s for s in section.get("baselines", ["random", "regularized-evolution"]) if s != method]
        variants = dict(section.get("variants", {}))
        for label, variant in variants.items():
            if "strategy" not in variant:
                raise LmnasError(f"trials.variants.{label}: missing 'strategy' (the strategy it varies)")
        return cls(seeds, (method, *baselines), dict(section.get("options", {})), variants)

    def strategy_of(self, label: str) -> tuple[str, dict[str, Any]]:
        """The strategy a label runs and the settings it adds over search.options[<strategy>]."""
        variant = dict(self.variants.get(label, {}))
        strategy = variant.pop("strategy", label)
        return strategy, {**variant, **self.options.get(label, {})}


def trial_folder(out_dir: Path, strategy: str, seed: int) -> Path:
    return Path(out_dir) / f"{strategy}-seed{seed}"


def run_trials(
    search_cfg: dict[str, Any],
    settings: TrialsSettings,
    *,
    out_dir: Path,
    data_dir: Path | None = None,
    archgpt_dir: Path | None = None,
    device: str = "auto",
    progress: bool = True,
    search_run: tuple[int, Path] | None = None,
    policy: str = "refuse",
) -> dict[str, Any]:
    """Every strategy × seed at `search_cfg`'s budget; returns (and writes) the summary.

    `search_run` = (seed, folder) of the search stage's own run of the method: that trial is
    read from there instead of being run (and paid for, with an LLM) a second time. `policy`: what
    a trial folder holding another run gets (lmnas.search.run_folder)."""
    reused = {(settings.strategies[0], search_run[0]): Path(search_run[1])} if search_run else {}
    runs = [(s, seed) for s in settings.strategies for seed in settings.seeds if (s, seed) not in reused]
    for label, seed in tqdm(runs, desc="trials", disable=not progress):
        strategy, extra = settings.strategy_of(label)
        cfg = copy.deepcopy(search_cfg)
        cfg["strategy"] = strategy
        options = cfg.setdefault("options", {})
        options[strategy] = {**options.get(strategy, {}), **extra}
        search_from_config(cfg, data_dir=data_dir, archgpt_dir=archgpt_dir, out_dir=trial_folder(out_dir, label, seed),
                           seed=seed, device=device, progress=False, policy=policy)
    summary = summarise(search_cfg, settings, out_dir, reused)
    write_json(Path(out_dir) / SUMMARY, summary)
    return summary


def table_ranker(search_cfg: dict[str, Any]) -> tuple[Callable[[str], int] | None, str | None]:
    """rank(key) among every architecture of the benchmark table, and the column ranked by."""
    evaluator_cfg = chosen(search_cfg, "evaluator")
    if evaluator_cfg["name"] != "table":
        return None, None
    space_cfg = chosen(search_cfg, "space")
    space = create_space(space_cfg.pop("name"), **space_cfg)
    evaluator = EVALUATORS.create(evaluator_cfg.pop("name"), **evaluator_cfg)
    column = "test_accuracy" if evaluator.spec(space).test_metric else "accuracy"
    values = {k: evaluator.evaluate(space, space.parse(k), seed=0).metrics[column] for k in evaluator.keys(space)}
    ordered = sorted(values.values())

    def rank(key: str) -> int:
        # 1 + how many architectures are strictly better: ties share the better rank
        return len(ordered) - bisect.bisect_right(ordered, values[key]) + 1

    return rank, column


def summarise(search_cfg: dict[str, Any], settings: TrialsSettings, out_dir: Path,
              reused: dict[tuple[str, int], Path] | None = None) -> dict[str, Any]:
    rank, column = table_ranker(search_cfg)
    reused = reused or {}
    runs = []
    for strategy in settings.strategies:
        for seed in settings.seeds:
            folder = reused.get((strategy, seed)) or trial_folder(out_dir, strategy, seed)
            journal = folder / "journal.parquet"
            if not journal.is_file():
                raise LmnasError(f"trial {strategy} seed {seed}: {journal} is missing (the search did not finish)")
            rows = sorted(pq.read_table(journal).to_pylist(), key=lambda r: r["step"])
            steps, best = [], None
            for row in rows:
                entry = {"step": row["step"], "key": row["key"], "accuracy": row["metric_accuracy"],
                         "test_accuracy": row.get("metric_test_accuracy"),
                         "rank": rank(row["key"]) if rank else None}
                if best is None or entry["accuracy"] > best["accuracy"]:
                    best = entry
                steps.append({**entry, "best_accuracy": best["accuracy"], "best_test_accuracy": best["test_accuracy"],
                              "best_rank": best["rank"]})
            runs.append({"strategy": strategy, "seed": seed, "folder": str(folder), "steps": steps,
                         "best": {k: best[k] for k in ("step", "key", "accuracy", "test_accuracy", "rank")} if best else None})
    return {"strategies": list(settings.strategies), "seeds": list(settings.seeds),
            "budget": search_cfg.get("budget", {}), "space": search_cfg["space"], "evaluator": search_cfg["evaluator"],
            "rank_by": column, "runs": runs}
