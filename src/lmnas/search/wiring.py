"""What the chosen space, strategy and evaluator need from the workflow, asked of their registered
factories (the settings they accept, the files they read), never of their names: a new strategy or
evaluator that takes `archgpt_dir` or `prepared_dir` is wired like the ones there are. The
settings come from lmnas.catalog, which answers without importing the registries (and torch). The CLI, the
search stage, the config check and the Snakemake rules (workflow/rules/common.smk) all ask here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmnas.catalog import catalog


def needs_archgpt(strategy: str) -> bool:
    """The strategy takes a trained architecture GPT (the train_archgpt stage's folder)."""
    return "archgpt_dir" in catalog("strategy").accepted_settings(strategy)


def writes_transcript(strategy: str) -> bool:
    """The strategy takes the run folder for its LLM transcript (lmnas.search.request passes it)."""
    return "out_dir" in catalog("strategy").accepted_settings(strategy)


def reads_data(evaluator: str) -> bool:
    """The evaluator trains on a prepared dataset (table lookups read benchmark tables instead)."""
    return "prepared_dir" in catalog("evaluator").accepted_settings(evaluator)


def takes_data_shape(space: str) -> bool:
    """The space is built for the data (input shape, classes), not fixed by a benchmark."""
    return "input_shape" in catalog("space").accepted_settings(space)


def chosen(search_cfg: dict[str, Any], what: str) -> dict[str, Any]:
    """`{"name": <chosen>, **search.options[<chosen>]}` for what = space | strategy | evaluator."""
    name = search_cfg[what]
    return {**search_cfg.get("options", {}).get(name, {}), "name": name}


def evaluator_input_files(search_cfg: dict[str, Any], benchmarks_dir: Path) -> list[Path]:
    """The files (benchmark tables) the chosen evaluator reads for the chosen space, under
    `benchmarks_dir` as written (not symlink-resolved, so the paths stay stable for dvc.yaml).
    An evaluator that reads prepared data is not built here (its data is the search's input)."""
    settings = chosen(search_cfg, "evaluator")
    name = settings.pop("name")
    if reads_data(name):
        return []
    from lmnas.evaluation import EVALUATORS  # builds the evaluator: the registries (and torch) load here only

    if "benchmarks_dir" in EVALUATORS.accepted_settings(name):
        settings.setdefault("benchmarks_dir", str(benchmarks_dir))
    evaluator = EVALUATORS.create(name, **settings)
    files = evaluator.input_files_for(search_cfg["space"]).values()
    resolved = Path(benchmarks_dir).expanduser().resolve()
    return [Path(benchmarks_dir) / f.relative_to(resolved) if f.is_relative_to(resolved) else f for f in files]
