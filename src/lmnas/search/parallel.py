"""Evaluate a batch of genotypes in N worker processes (one per GPU when several are visible).

Workers rebuild the space and evaluator from their saved settings (nothing heavy is pickled;
each worker loads its data once; weights an evaluator inherits are read from its store on
disk, so workers need no shared memory). Processes rather than threads because candidate training
seeds torch's global generator, which threads would share.
"""

from __future__ import annotations

import inspect
import multiprocessing as mp
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.spaces.base import Genotype, SearchSpace

_WORKER: dict[str, Any] = {}


def _init_worker(space_settings: dict[str, Any], evaluator_settings: dict[str, Any], slots: Any) -> None:
    import torch

    from lmnas.evaluation import EVALUATORS
    from lmnas.spaces import SPACES

    index = slots.get()
    evaluator_settings = dict(evaluator_settings)
    if str(evaluator_settings.get("device", "")).startswith("cuda") and torch.cuda.device_count() > 1:
        evaluator_settings["device"] = f"cuda:{index % torch.cuda.device_count()}"
    torch.set_num_threads(1)  # N workers share the cores
    space_settings = dict(space_settings)
    _WORKER["space"] = SPACES.create(space_settings.pop("name"), **space_settings)
    evaluator_settings = dict(evaluator_settings)
    _WORKER["evaluator"] = EVALUATORS.create(evaluator_settings.pop("name"), **evaluator_settings)


def accepts_lineage(evaluator: Evaluator) -> bool:
    """Whether `evaluate` takes `lineage` (evaluators written before the hook do not)."""
    parameters = inspect.signature(evaluator.evaluate).parameters.values()
    return any(p.name == "lineage" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def evaluate_one(
    space: SearchSpace, evaluator: Evaluator, key: str, seed: int, lineage: dict[str, Any] | None
) -> EvalResult:
    # `lineage` only when there is one and the evaluator takes it; without, behaviour is as before the hook.
    extra = {"lineage": lineage} if lineage is not None and accepts_lineage(evaluator) else {}
    return evaluator.evaluate(space, space.parse(key), seed=seed, **extra)


def _evaluate(key: str, seed: int, lineage: dict[str, Any] | None) -> tuple[str, EvalResult]:
    return key, evaluate_one(_WORKER["space"], _WORKER["evaluator"], key, seed, lineage)


class WorkerPool:
    def __init__(self, space: SearchSpace, evaluator: Evaluator, workers: int) -> None:
        ctx = mp.get_context("spawn")
        slots = ctx.Manager().Queue()
        for i in range(workers):
            slots.put(i)
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker,
            initargs=(space.settings(), evaluator.settings(), slots),
        )

    def evaluate(
        self, keys: list[str], seed: int, lineages: dict[str, dict[str, Any]] | None = None
    ) -> Iterator[tuple[str, EvalResult]]:
        """Yield (key, result) as each finishes, so the journal records it at once."""
        lineages = lineages or {}
        pending = {self.executor.submit(_evaluate, key, seed, lineages.get(key)) for key in keys}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def close(self) -> None:
        self.executor.shutdown(cancel_futures=True)


def serial(space: SearchSpace, evaluator: Evaluator) -> Callable[..., Iterator[tuple[str, EvalResult]]]:
    def evaluate(
        keys: list[str], seed: int, lineages: dict[str, dict[str, Any]] | None = None
    ) -> Iterator[tuple[str, EvalResult]]:
        lineages = lineages or {}
        for key in keys:
            yield key, evaluate_one(space, evaluator, key, seed, lineages.get(key))

    return evaluate


__all__ = ["Genotype", "WorkerPool", "serial"]
