"""The search runner: budgets, dedup, the journal, resume, progress.

Resume by replay: strategies are deterministic given their seed and the results they are
told, so a restarted run asks the strategy again from the start and answers every genotype
already in the journal from the journal. The strategy walks the same path and the run goes
on exactly where it was killed; no evaluation is repeated or lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.search.journal import Journal
from lmnas.spaces.base import SearchSpace
from lmnas.strategies.base import Strategy

# A strategy that proposes only known genotypes this many times in a row has converged.
MAX_DUPLICATE_ASKS = 200


@dataclass
class Budget:
    evaluations: int
    wall_time_s: float | None = None


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
    journal_path: Path,
    budget: Budget,
    *,
    seed: int,
    progress: bool = True,
    on_evaluation: Callable[[dict[str, Any]], None] | None = None,
) -> SearchOutcome:
    journal = Journal(journal_path)
    resumed_from = len(journal)
    start = time.perf_counter()
    duplicate_asks = 0
    bar = tqdm(total=budget.evaluations, initial=min(len(journal), budget.evaluations),
               desc=f"search {strategy.name}", unit="eval", disable=not progress)
    stopped = "strategy finished"
    try:
        while True:
            if len(journal) >= budget.evaluations:
                stopped = "evaluation budget spent"
                break
            if budget.wall_time_s is not None and time.perf_counter() - start > budget.wall_time_s:
                stopped = "wall-time budget spent"
                break
            batch = strategy.ask()
            if not batch:
                break
            fresh = False
            for genotype in batch:
                genotype = space.validate(genotype)
                key = space.key(genotype)
                row = journal.by_key.get(key)
                if row is None:
                    if len(journal) >= budget.evaluations:
                        break
                    result = evaluator.evaluate(space, genotype, seed=seed)
                    row = {
                        "step": len(journal) + 1,
                        "key": key,
                        "generation": strategy.generation,
                        "strategy": strategy.name,
                        "space": space.name,
                        "seed": seed,
                        "metrics": result.metrics,
                        "cost_s": result.cost_s,
                        "params": result.params,
                        "flops": result.flops,
                        "finished_at": time.time(),
                    }
                    journal.append(row)
                    fresh = True
                    bar.update(1)
                    bar.set_postfix(best=f"{best_row(journal.rows)['metrics']['accuracy']:.2f}")
                    if on_evaluation is not None:
                        on_evaluation(row)
                strategy.tell(genotype, result_from_row(row))
            duplicate_asks = 0 if fresh else duplicate_asks + 1
            if duplicate_asks >= MAX_DUPLICATE_ASKS:
                stopped = f"strategy proposed only evaluated genotypes {MAX_DUPLICATE_ASKS} times in a row"
                break
    finally:
        bar.close()
    return SearchOutcome(journal=journal, stopped_because=stopped, resumed_from=resumed_from)


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Highest searched-on accuracy; the earliest step wins ties."""
    return max(rows, key=lambda r: (r["metrics"]["accuracy"], -r["step"]))
