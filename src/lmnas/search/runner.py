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
from collections.abc import Callable, Iterable
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

# The executor's evaluate: (keys, seed, lineages by key) → (key, result) as each evaluation ends.
EvaluateFn = Callable[[list[str], int, dict[str, dict[str, Any]]], Iterable[tuple[str, EvalResult]]]

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
    journal = Journal(journal_path)  # resume: the rows of a killed run answer the replayed asks
    resumed_from = len(journal)
    start = time.perf_counter()
    candidates = make_executor(executor, space, evaluator, workers, executor_settings,
                               journal.path.parent if journal.path else None, threads=threads)
    bar = tqdm(total=budget.evaluations, initial=min(len(journal), budget.evaluations),
               desc=f"search {strategy.name}", unit="eval", disable=not progress)
    loop = _SearchLoop(space, strategy, journal, candidates.evaluate, seed, bar, budget, start)
    try:
        stopped = loop.run()
    finally:
        bar.close()
        candidates.close()
    return SearchOutcome(journal=journal, stopped_because=stopped, resumed_from=resumed_from)


class _SearchLoop:
    """One search's ask → evaluate → tell rounds until a budget, the strategy or convergence stops it."""

    def __init__(self, space: SearchSpace, strategy: Strategy, journal: Journal, evaluate: EvaluateFn, seed: int,
                 bar: tqdm, budget: Budget, start: float) -> None:
        self.space, self.strategy, self.journal, self.evaluate = space, strategy, journal, evaluate
        self.seed, self.bar, self.budget, self.start = seed, bar, budget, start
        self.told: set[str] = set()  # keys told to the strategy in this process (replay included)
        self.duplicate_asks = 0  # asks in a row whose every proposal was told already
        self.best = max((r["metrics"]["accuracy"] for r in journal.rows), default=float("-inf"))

    def run(self) -> str:
        """Why the search stopped."""
        while True:
            spent = self.budget_spent()
            if spent is not None:
                return spent
            batch = [self.space.validate(g) for g in self.strategy.ask()]
            if not batch:
                return "strategy finished"
            keys = list(dict.fromkeys(self.space.key(g) for g in batch))  # distinct, in asked order
            self.evaluate_new(batch, keys)
            if any(k not in self.journal.by_key for k in keys):
                return "evaluation budget spent"  # the batch was cut by the budget
            self.tell(batch, keys)
            if self.duplicate_asks >= MAX_DUPLICATE_ASKS:
                return f"strategy proposed only evaluated genotypes {MAX_DUPLICATE_ASKS} times in a row"

    def budget_spent(self) -> str | None:
        if len(self.journal) >= self.budget.evaluations:
            return "evaluation budget spent"
        if self.budget.wall_time_s is not None and time.perf_counter() - self.start > self.budget.wall_time_s:
            return "wall-time budget spent"
        return None

    def evaluate_new(self, batch: list[Any], keys: list[str]) -> None:
        """Evaluate the batch's keys not in the journal (as many as the budget leaves), journaling each as it ends."""
        todo = [k for k in keys if k not in self.journal.by_key][: self.budget.evaluations - len(self.journal)]
        lineages = batch_lineages(self.space, self.strategy, batch)
        generation = self.strategy.generation
        for key, result in self.evaluate(todo, self.seed, lineages):
            self.record(key, result, generation, lineages.get(key))

    def record(self, key: str, result: EvalResult, generation: int, lineage: dict[str, Any] | None) -> None:
        row = {
            "step": len(self.journal) + 1,
            "key": key,
            "generation": generation,
            "strategy": self.strategy.name,
            "space": self.space.name,
            "seed": self.seed,
            "metrics": result.metrics,
            "cost_s": result.cost_s,
            "params": result.params,
            "flops": result.flops,
            "finished_at": time.time(),
        }
        if lineage is not None:
            row["lineage"] = lineage
        self.journal.append(row)
        self.best = max(self.best, result.accuracy)  # running best: no rescan of the journal per evaluation
        self.bar.update(1)
        self.bar.set_postfix(best=f"{self.best:.2f}")

    def tell(self, batch: list[Any], keys: list[str]) -> None:
        """Every genotype's journaled result, in the order asked; counts the asks that brought nothing new."""
        stale = all(k in self.told for k in keys)  # every proposal already known before this ask
        for genotype in batch:
            self.strategy.tell(genotype, result_from_row(self.journal.by_key[self.space.key(genotype)]))
        self.told.update(keys)
        self.duplicate_asks = self.duplicate_asks + 1 if stale else 0


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
