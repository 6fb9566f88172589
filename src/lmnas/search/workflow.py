"""The search stage as the workflow runs it: config section + prepared data → SearchRequest."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from lmnas.config import resolve_device
from lmnas.errors import LmnasError
from lmnas.io import read_json
from lmnas.search.api import SearchRequest, search
from lmnas.search.runner import Budget
from lmnas.spaces import SPACES, SearchSpace, create_space


def chosen(search_cfg: dict[str, Any], what: str) -> dict[str, Any]:
    """`{"name": <chosen>, **search.options[<chosen>]}` for what = space | strategy | evaluator."""
    name = search_cfg[what]
    return {**search_cfg.get("options", {}).get(name, {}), "name": name}


def search_from_config(
    search_cfg: dict[str, Any],
    *,
    data_dir: Path | None,
    archgpt_dir: Path | None,
    out_dir: Path,
    seed: int,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    device = resolve_device(device)
    space = chosen(search_cfg, "space")
    accepts = inspect.signature(SPACES.get(space["name"])).parameters
    if data_dir is not None and "input_shape" in accepts:
        # Spaces built for the data (not fixed by a benchmark) take its shape and classes.
        from lmnas.data import read_manifest

        manifest = read_manifest(data_dir)
        space.setdefault("input_shape", manifest["image_shape"])
        space.setdefault("num_classes", manifest["num_classes"])
    strategy = chosen(search_cfg, "strategy")
    if strategy["name"] == "ga-gpt":
        if archgpt_dir is None:
            raise LmnasError("search.strategy ga-gpt needs a trained architecture GPT (archgpt_dir)")
        strategy.setdefault("archgpt_dir", str(archgpt_dir))
        strategy.setdefault("device", device)
    evaluator = chosen(search_cfg, "evaluator")
    if evaluator["name"] == "proxy":
        if data_dir is None:
            raise LmnasError("search.evaluator proxy needs a prepared dataset (search.dataset, or --data)")
        evaluator.update(prepared_dir=str(data_dir), device=device)
    budget = Budget(**search_cfg.get("budget", {"evaluations": 100}))
    request = SearchRequest(space=space, strategy=strategy, evaluator=evaluator, budget=budget, seed=seed,
                            out_dir=out_dir, workers=search_cfg.get("workers", 1), progress=progress,
                            executor=search_cfg.get("executor", "local"),
                            executor_settings=search_cfg.get("executor_settings", {}))
    return search(request)


def load_best(best_json: Path) -> tuple[SearchSpace, Any, dict[str, Any]]:
    """The space (rebuilt from its saved settings) and the best genotype of a search."""
    best = read_json(best_json)
    settings = dict(best["space"])
    space = create_space(settings.pop("name"), **settings)
    return space, space.parse(best["genotype"]), best
