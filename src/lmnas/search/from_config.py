"""The search stage as the workflow runs it: config section + prepared data → SearchRequest."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmnas.device import resolve_device
from lmnas.config import validate_search_section
from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.search.request import SearchRequest, search
from lmnas.search.runner import Budget
from lmnas.search.wiring import chosen, needs_archgpt, reads_data, takes_data_shape
from lmnas.spaces import SPACES
from lmnas.strategies import STRATEGIES

__all__ = ["search_from_config"]


def search_from_config(
    search_cfg: dict[str, Any],
    *,
    data_dir: Path | None,
    archgpt_dir: Path | None,
    out_dir: Path,
    seed: int,
    device: str = "auto",
    benchmarks_dir: Path | None = None,
    progress: bool = True,
    policy: str = "refuse",
    source: str = "search",
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """`policy`: what to do with a folder that holds another run (see lmnas.search.run_folder).
    The section is validated here, the one place: unset keys of `search_cfg` take the config schema's
    defaults (workers, threads, executor, budget...); `source` names where the section came from in a
    validation error (a config file, the command line). `check`, if given, sees the validated section
    before any data, GPT or table is read: a caller's own refusals (the CLI names its flags) go there."""
    search_cfg = copy.deepcopy(search_cfg)
    validate_search_section(search_cfg, source)
    if check is not None:
        check(search_cfg)
    device = resolve_device(device)
    space = chosen(search_cfg, "space")
    if data_dir is not None and takes_data_shape(space["name"]):
        from lmnas.data import read_manifest

        manifest = read_manifest(data_dir)
        space.setdefault("input_shape", manifest["image_shape"])
        space.setdefault("num_classes", manifest["num_classes"])
    strategy = chosen(search_cfg, "strategy")
    if needs_archgpt(strategy["name"]):
        if archgpt_dir is None:
            raise LmnasError(f"search.strategy {strategy['name']} needs a trained architecture GPT (archgpt_dir)")
        strategy.setdefault("archgpt_dir", str(archgpt_dir))
        strategy.setdefault("device", device)
    evaluator = chosen(search_cfg, "evaluator")
    if benchmarks_dir is not None:  # the config's benchmarks_dir reaches whatever reads tables
        for part, registry in ((space, SPACES), (strategy, STRATEGIES), (evaluator, EVALUATORS)):
            if "benchmarks_dir" in registry.accepted_settings(part["name"]):
                part.setdefault("benchmarks_dir", str(benchmarks_dir))
    if reads_data(evaluator["name"]):
        if data_dir is None:
            raise LmnasError(f"search.evaluator {evaluator['name']} needs a prepared dataset (search.dataset, or --data)")
        evaluator.update(prepared_dir=str(data_dir), device=device)
    budget = Budget(**search_cfg["budget"])
    request = SearchRequest(space=space, strategy=strategy, evaluator=evaluator, budget=budget, seed=seed,
                            out_dir=out_dir, workers=search_cfg["workers"],
                            threads=search_cfg["threads_per_evaluation"], progress=progress, policy=policy,
                            executor=search_cfg["executor"], executor_settings=search_cfg["executor_settings"],
                            warm_start=search_cfg.get("warm_start"))
    return search(request)

