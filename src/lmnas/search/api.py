"""One entry point for the Snakemake rule and the CLI: build the pieces by name and search."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.io import write_json
from lmnas.search.outputs import best_summary, write_search_outputs
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import STRATEGIES, create_strategy


@dataclass
class SearchRequest:
    space: dict[str, Any]  # {"name": ..., **settings}
    strategy: dict[str, Any]
    evaluator: dict[str, Any]
    budget: Budget
    seed: int
    out_dir: Path
    workers: int = 1
    progress: bool = True
    executor: str = "local"  # where candidates are evaluated: local | slurm (lmnas.search.executors)
    executor_settings: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # saved beside the results


def _split(section: dict[str, Any], what: str) -> tuple[str, dict[str, Any]]:
    if "name" not in section:
        raise LmnasError(f"search.{what}: missing 'name'")
    settings = dict(section)
    return settings.pop("name"), settings


def search(request: SearchRequest) -> dict[str, Any]:
    out = Path(request.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    space_name, space_settings = _split(request.space, "space")
    space = create_space(space_name, **space_settings)
    strategy_name, strategy_settings = _split(request.strategy, "strategy")
    if "out_dir" in STRATEGIES.accepted_settings(strategy_name):
        strategy_settings.setdefault("out_dir", str(out))  # LLM transcripts live beside the journal
    strategy = create_strategy(strategy_name, space=space, seed=request.seed, **strategy_settings)
    evaluator_name, evaluator_settings = _split(request.evaluator, "evaluator")
    if evaluator_settings.get("inherit"):  # GPT-NAS weight inheritance: trained weights kept per run
        evaluator_settings.setdefault("weights_dir", str(out / "weights"))
    evaluator = EVALUATORS.create(evaluator_name, **evaluator_settings)
    write_json(out / "config.json", request.config or {
        "space": space.settings(), "strategy": strategy.settings(), "evaluator": evaluator.settings(),
        "budget": vars(request.budget), "seed": request.seed})
    start = time.perf_counter()
    outcome = run_search(space, strategy, evaluator, out / "journal.jsonl", request.budget,
                         seed=request.seed, workers=request.workers, progress=request.progress,
                         executor=request.executor, executor_settings=request.executor_settings)
    if not outcome.journal.rows:
        raise LmnasError(f"search stopped before any evaluation: {outcome.stopped_because}")
    summary = best_summary(
        outcome.journal.rows,
        seed=request.seed,
        space=space.settings(),
        strategy=strategy.settings(),
        evaluator=evaluator.settings(),
        stopped_because=outcome.stopped_because,
        resumed_from=outcome.resumed_from,
        wall_s=time.perf_counter() - start,
    )
    write_search_outputs(out, outcome.journal, summary, f"{strategy.name} on {space.name}")
    return summary
