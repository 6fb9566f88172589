"""One entry point for the Snakemake rule and the CLI: build the pieces by name and search."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.io import write_json
from lmnas.search.outputs import best_summary, timings, write_search_outputs
from lmnas.search.run_folder import mark_finished, prepare_run_folder, search_fingerprint
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
    threads: int = 1  # torch threads per evaluation (serial or in each worker)
    progress: bool = True
    policy: str = "refuse"  # a folder holding another run: refuse | restart | workflow (run_folder.py)
    executor: str = "local"  # where candidates are evaluated: local | slurm (lmnas.search.executors)
    executor_settings: dict[str, Any] = field(default_factory=dict)
    warm_start: dict[str, Any] | None = None  # search.warm_start (lmnas.proxies.warm_start); None: off
    config: dict[str, Any] = field(default_factory=dict)  # saved beside the results


def _split(section: dict[str, Any], what: str) -> tuple[str, dict[str, Any]]:
    if "name" not in section:
        raise LmnasError(f"search.{what}: missing 'name'")
    settings = dict(section)
    return settings.pop("name"), settings


def search(request: SearchRequest) -> dict[str, Any]:
    out = Path(request.out_dir)
    if request.threads < 1 or request.workers < 1:
        raise LmnasError(f"search: need workers >= 1 and threads_per_evaluation >= 1, "
                         f"got {request.workers} and {request.threads}")
    space_name, space_settings = _split(request.space, "space")
    space = create_space(space_name, **space_settings)
    strategy_name, strategy_settings = _split(request.strategy, "strategy")
    evaluator_name, evaluator_settings = _split(request.evaluator, "evaluator")
    if evaluator_settings.get("inherit"):  # GPT-NAS weight inheritance: trained weights kept per run
        evaluator_settings.setdefault("weights_dir", str(out / "weights"))
    evaluator = EVALUATORS.create(evaluator_name, **evaluator_settings)  # reads nothing from `out`
    warm = None
    if request.warm_start is not None:
        from lmnas.proxies.warm_start import WarmStart

        # Proxy searches score on their own data; table searches (no data) on seeded noise.
        warm = WarmStart.from_dict(request.warm_start, data=evaluator_settings.get("prepared_dir"))
    # Decide what the folder holds before anything (an LLM transcript, inherited weights) is read from it.
    fingerprint = search_fingerprint(
        space=request.space, strategy=request.strategy, evaluator=request.evaluator, seed=request.seed,
        threads_per_evaluation=request.threads, inputs=evaluator.input_files(space),
        warm_start=None if warm is None else warm.identity())
    opened = prepare_run_folder(out, fingerprint, request.budget.evaluations, request.policy)
    if opened != "fresh":  # resume, restart, or afresh in a folder with no evaluation
        print(f"lmnas: search {out}: {opened}", file=sys.stderr)
    if "out_dir" in STRATEGIES.accepted_settings(strategy_name):
        strategy_settings.setdefault("out_dir", str(out))  # LLM transcripts live beside the journal
    strategy = create_strategy(strategy_name, space=space, seed=request.seed, **strategy_settings)
    if warm is not None:  # before the first ask; recomputed (or read from the cache) on resume: same ranking
        from lmnas.proxies.warm_start import warm_start_strategy

        warm_start_strategy(strategy, space, warm, request.seed, out, progress=request.progress)
    write_json(out / "config.json", request.config or {
        "space": space.settings(), "strategy": strategy.settings(), "evaluator": evaluator.settings(),
        "budget": vars(request.budget), "seed": request.seed})
    start = time.perf_counter()
    outcome = run_search(space, strategy, evaluator, out / "journal.jsonl", request.budget,
                         seed=request.seed, workers=request.workers, threads=request.threads,
                         progress=request.progress, executor=request.executor,
                         executor_settings=request.executor_settings)
    if not outcome.journal.rows:
        raise LmnasError(f"search stopped before any evaluation: {outcome.stopped_because}")
    mark_finished(out, request.budget.evaluations, outcome.stopped_because, len(outcome.journal))
    summary = best_summary(
        outcome.journal.rows,
        seed=request.seed,
        space=space.settings(),
        strategy=strategy.settings(),
        evaluator=evaluator.settings(),
        stopped_because=outcome.stopped_because,
        threads_per_evaluation=request.threads,
    )
    run_timings = timings(outcome.journal.rows, wall_s=time.perf_counter() - start,
                          resumed_from=outcome.resumed_from)
    write_search_outputs(out, outcome.journal, summary, run_timings, f"{strategy.name} on {space.name}")
    # The caller gets both: what was found (best.json) and how the run went (timings.json, less per step).
    return {**summary, **{k: v for k, v in run_timings.items() if k != "steps"}}
