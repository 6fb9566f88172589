"""The search runner: budgets, dedup, the journal, resume, progress, parallel evaluation.

Resume by replay: strategies are deterministic given their seed and the results they are
told, so a restarted run asks the strategy again from the start and answers every genotype
already in the journal from the journal. The strategy walks the same path and the run goes
on exactly where it was killed; no evaluation is repeated or lost.

The strategy's `lineage` of each genotype (parent and re-generated blocks, for weight
inheritance) is passed to the evaluator and kept in the journal row as "lineage".

Replayed asks are not duplicates: a batch counts towards the "converged" stop only when every
genotype in it was already told to the strategy in this process, which is exactly when, in the
uninterrupted run, every one of them was already in the journal. So a resumed run takes the
same path and stops at the same point as the uninterrupted one, at any kill point and size.

Each batch from `ask()` is evaluated (in parallel when workers > 1, journaled as each
finishes), then told to the strategy in the order it was asked, so the search path does not
depend on which worker finished first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lmnas.errors import LmnasError
from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.search.journal import Journal
from lmnas.search.executors import make_executor
from lmnas.spaces.base import SearchSpace
from lmnas.strategies.base import Strategy

# A strategy that proposes only known genotypes this many times in a row has converged.
MAX_DUPLICATE_ASKS = 200


@dataclass
class Budget:
    evaluations: int
    wall_time_s: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.evaluations, bool) or not isinstance(self.evaluations, int) or self.evaluations < 1:
            raise LmnasError(f"search.budget.evaluations: expected a whole number >= 1, got {self.evaluations!r}")
        if self.wall_time_s is not None and not (isinstance(self.wall_time_s, (int, float)) and self.wall_time_s > 0):
            raise LmnasError(f"search.budget.wall_time_s: expected seconds > 0 or null, got {self.wall_time_s!r}")


@dataclass
class SearchOutcome:
    journal: Journal
    stopped_because: str
    resumed_from: int  # evaluations found in the journal at start


def result_from_row(row: dict[str, Any]) -> EvalResult:
    return EvalResult(metrics=row["metrics"], cost_s=row["cost_s"], params=row.get("params"), flops=row.get("flops"))


def run_search(
    space: SearchSpace,
    strategy: Strategy,
    evaluator: Evaluator,
    journal_path: Path | None,
    budget: Budget,
    *,
    seed: int,
    workers: int = 1,
    threads: int = 1,
    progress: bool = True,
    executor: str = "local",
    executor_settings: dict[str, Any] | None = None,
) -> SearchOutcome:
    """`threads`: torch threads per evaluation, the same serial or in workers (results depend on it)."""
    journal = Journal(journal_path)
    resumed_from = len(journal)
    start = time.perf_counter()
    candidates = make_executor(executor, space, evaluator, workers, executor_settings,
                               journal.path.parent if journal.path else None, threads=threads)
    evaluate = candidates.evaluate
    told: set[str] = set()  # keys told to the strategy in this process (replay included)
    bar = tqdm(total=budget.evaluations, initial=min(len(journal), budget.evaluations),
               desc=f"search {strategy.name}", unit="eval", disable=not progress)
    stopped, duplicate_asks = "strategy finished", 0
    best = max((r["metrics"]["accuracy"] for r in journal.rows), default=float("-inf"))
    try:
        while True:
            if len(journal) >= budget.evaluations:
                stopped = "evaluation budget spent"
                break
            if budget.wall_time_s is not None and time.perf_counter() - start > budget.wall_time_s:
                stopped = "wall-time budget spent"
                break
            batch = [space.validate(g) for g in strategy.ask()]
            if not batch:
                break
            keys = list(dict.fromkeys(space.key(g) for g in batch))  # distinct, in asked order
            todo = [k for k in keys if k not in journal.by_key][: budget.evaluations - len(journal)]
            lineages = batch_lineages(space, strategy, batch)
            generation = strategy.generation
            for key, result in evaluate(todo, seed, lineages):
                row = {
                    "step": len(journal) + 1,
                    "key": key,
                    "generation": generation,
                    "strategy": strategy.name,
                    "space": space.name,
                    "seed": seed,
                    "metrics": result.metrics,
                    "cost_s": result.cost_s,
                    "params": result.params,
                    "flops": result.flops,
                    "finished_at": time.time(),
                }
                if key in lineages:
                    row["lineage"] = lineages[key]
                journal.append(row)
                best = max(best, result.accuracy)  # running best: no rescan of the journal per evaluation
                bar.update(1)
                bar.set_postfix(best=f"{best:.2f}")
            if any(k not in journal.by_key for k in keys):
                stopped = "evaluation budget spent"  # the batch was cut by the budget
                break
            stale = all(k in told for k in keys)  # every proposal already known before this ask
            for genotype in batch:
                strategy.tell(genotype, result_from_row(journal.by_key[space.key(genotype)]))
            told.update(keys)
            duplicate_asks = duplicate_asks + 1 if stale else 0
            if duplicate_asks >= MAX_DUPLICATE_ASKS:
                stopped = f"strategy proposed only evaluated genotypes {MAX_DUPLICATE_ASKS} times in a row"
                break
    finally:
        bar.close()
        candidates.close()
    return SearchOutcome(journal=journal, stopped_because=stopped, resumed_from=resumed_from)


def batch_lineages(space: SearchSpace, strategy: Strategy, batch: list[Any]) -> dict[str, dict[str, Any]]:
    """key -> the strategy's lineage of that genotype (first occurrence; genotypes without one left out)."""
    lineages: dict[str, dict[str, Any]] = {}
    for genotype in batch:
        key = space.key(genotype)
        if key not in lineages:
            lineage = strategy.lineage(genotype)
            if lineage is not None:
                lineages[key] = lineage
    return lineages


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest searched-on accuracy; the earliest step wins ties."""
    return max(rows, key=lambda r: (r["metrics"]["accuracy"], -r["step"]))
