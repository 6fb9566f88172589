"""Evaluate a batch of genotypes in N worker processes (one per GPU when several are visible).

Workers rebuild the space and evaluator from their saved settings (nothing heavy is pickled;
each worker loads its data once; weights an evaluator inherits are read from its store on
disk, so workers need no shared memory). Processes rather than threads because candidate training
seeds torch's global generator, which threads would share.

Every evaluation runs on the same number of torch threads (`threads`, recorded in the run's
fingerprint), serial or in a worker, so serial and parallel runs give identical numbers.
Workers die with their parent: a `kill -9` of the search leaves no process holding memory or a
GPU (Linux: the kernel's parent-death signal; elsewhere a watchdog thread polls the parent).
"""

from __future__ import annotations

import inspect
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.processes import die_with_parent
from lmnas.spaces.base import Genotype, SearchSpace

_WORKER: dict[str, Any] = {}


def set_threads(threads: int) -> None:
    torch = sys.modules.get("torch")  # an evaluator that never imported torch needs no threads set
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _init_worker(space_settings: dict[str, Any], evaluator_settings: dict[str, Any], slots: Any,
                 parent_pid: int, threads: int) -> None:
    die_with_parent(parent_pid)
    import torch

    from lmnas.evaluation import EVALUATORS
    from lmnas.spaces import SPACES

    index = slots.get()
    evaluator_settings = dict(evaluator_settings)
    if str(evaluator_settings.get("device", "")).startswith("cuda") and torch.cuda.device_count() > 1:
        evaluator_settings["device"] = f"cuda:{index % torch.cuda.device_count()}"
    _WORKER["threads"] = threads
    space_settings = dict(space_settings)
    _WORKER["space"] = SPACES.create(space_settings.pop("name"), **space_settings)
    evaluator_settings = dict(evaluator_settings)
    _WORKER["evaluator"] = EVALUATORS.create(evaluator_settings.pop("name"), **evaluator_settings)


def accepts_lineage(evaluator: Evaluator) -> bool:
    """Whether `evaluate` takes `lineage` (evaluators written before the hook do not)."""
    parameters = inspect.signature(evaluator.evaluate).parameters.values()
    return any(p.name == "lineage" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def evaluate_one(
    space: SearchSpace, evaluator: Evaluator, key: str, seed: int, lineage: dict[str, Any] | None,
    threads: int = 1,
) -> EvalResult:
    set_threads(threads)
    # `lineage` only when there is one and the evaluator takes it; without, behaviour is as before the hook.
    extra = {"lineage": lineage} if lineage is not None and accepts_lineage(evaluator) else {}
    return evaluator.evaluate(space, space.parse(key), seed=seed, **extra)


def _evaluate(key: str, seed: int, lineage: dict[str, Any] | None) -> tuple[str, EvalResult]:
    return key, evaluate_one(_WORKER["space"], _WORKER["evaluator"], key, seed, lineage, _WORKER["threads"])


class WorkerPool:
    def __init__(self, space: SearchSpace, evaluator: Evaluator, workers: int, threads: int = 1) -> None:
        ctx = mp.get_context("spawn")
        slots = ctx.Queue()  # worker index → GPU; a plain queue: no manager process to orphan
        for i in range(workers):
            slots.put(i)
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker,
            initargs=(space.settings(), evaluator.settings(), slots, os.getpid(), threads),
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


def serial(space: SearchSpace, evaluator: Evaluator, threads: int = 1) -> Callable[..., Iterator[tuple[str, EvalResult]]]:
    def evaluate(
        keys: list[str], seed: int, lineages: dict[str, dict[str, Any]] | None = None
    ) -> Iterator[tuple[str, EvalResult]]:
        lineages = lineages or {}
        for key in keys:
            yield key, evaluate_one(space, evaluator, key, seed, lineages.get(key), threads)

    return evaluate


__all__ = ["Genotype", "WorkerPool", "serial"]
