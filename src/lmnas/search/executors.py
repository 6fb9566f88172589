"""Where a batch of candidates is evaluated: a registry of executors, `local` by default.

Every executor offers `evaluate(keys, seed, lineages) -> Iterator[(key, EvalResult)]`, yielding
each result as soon as it is known (the runner journals it at once), and `close()`.

- local: the process pool of parallel.py (workers > 1) or in-process serial evaluation.
- slurm: each candidate (or a chunk of them) one SLURM job, submitted through submitit
  (slurm_executor.py); resumable after a kill of the search (jobs are re-attached, not resubmitted).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from lmnas.errors import LmnasError
from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.registry import Registry
from lmnas.search.parallel import WorkerPool, serial
from lmnas.spaces.base import SearchSpace


class CandidateExecutor(Protocol):
    def evaluate(
        self, keys: list[str], seed: int, lineages: dict[str, dict[str, Any]] | None = None
    ) -> Iterator[tuple[str, EvalResult]]: ...

    def close(self) -> None: ...


EXECUTORS: Registry[CandidateExecutor] = Registry("executor")


class LocalExecutor:
    """The process pool when workers > 1, else evaluation in this process."""

    def __init__(self, space: SearchSpace, evaluator: Evaluator, workers: int, threads: int) -> None:
        self.pool = WorkerPool(space, evaluator, workers, threads) if workers > 1 else None
        self.evaluate = self.pool.evaluate if self.pool else serial(space, evaluator, threads)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


@EXECUTORS.register("local")
def local(space: SearchSpace, evaluator: Evaluator, *, workers: int = 1, settings: dict[str, Any],
          out_dir: Path | None, threads: int = 1) -> CandidateExecutor:
    if settings:
        raise LmnasError(f"executor 'local' takes no settings (got {sorted(settings)}); use --workers")
    return LocalExecutor(space, evaluator, workers, threads)


@EXECUTORS.register("slurm")
def slurm(space: SearchSpace, evaluator: Evaluator, *, workers: int = 1, settings: dict[str, Any],
          out_dir: Path | None, threads: int = 1) -> CandidateExecutor:
    from lmnas.search.slurm_executor import SlurmExecutor, SlurmSettings

    if out_dir is None:
        raise LmnasError("executor 'slurm' needs a run folder (its jobs and their results live there)")
    return SlurmExecutor(space, evaluator, Path(out_dir), SlurmSettings.from_dict(settings), threads)


def make_executor(name: str, space: SearchSpace, evaluator: Evaluator, workers: int = 1,
                  settings: dict[str, Any] | None = None, out_dir: Path | None = None,
                  threads: int = 1) -> CandidateExecutor:
    """`out_dir`: the run folder (the journal's); executors that submit jobs keep their records there.
    `threads`: torch threads per evaluation, the same wherever it runs (results depend on it)."""
    return EXECUTORS.get(name)(space, evaluator, workers=workers, settings=dict(settings or {}), out_dir=out_dir,
                               threads=threads)
