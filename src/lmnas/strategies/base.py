"""The ask/tell contract: `ask()` proposes genotypes, `tell()` receives their results.

Strategies draw every random number in `ask()` from their own seeded generator and never
depend on wall time, so replaying the same results reproduces the same proposals: that is
how the runner resumes a killed search from its journal.

`initial_candidates(n)` is the one seam for a strategy's random start (random samples, an
initial population): it hands out a warm start's proxy-ranked candidates first
(`set_warm_start`, lmnas.proxies.warm_start), then samples of the space. Without a warm start
it is exactly `n` draws of `space.sample(self.rng)`. A strategy that draws its start through it
sets `warm_startable = True`; a warm start given to any other is refused, never ignored.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any

from lmnas.evaluation.base import EvalResult
from lmnas.spaces.base import Genotype, SearchSpace


class Strategy(ABC):
    name: str = ""
    warm_startable: bool = False  # draws its random start through initial_candidates()

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self.generation = 0  # recorded in the journal; strategies without generations keep 0
        self.warm_start: list[Genotype] = []  # proxy-ranked candidates not handed out yet

    def set_warm_start(self, candidates: list[Genotype]) -> None:
        """The candidates `initial_candidates` spends first, best first (before the first ask)."""
        from lmnas.errors import LmnasError

        if not self.warm_startable:
            raise LmnasError(f"search.warm_start: strategy {self.name!r} does not take a warm start "
                             "(its start is not random samples)")
        self.warm_start = list(candidates)

    def initial_candidates(self, n: int) -> list[Genotype]:
        """`n` genotypes for the random start: the warm start's first (each once), then random samples."""
        taken, self.warm_start = self.warm_start[:n], self.warm_start[n:]
        return taken + [self.space.sample(self.rng) for _ in range(n - len(taken))]

    @abstractmethod
    def ask(self) -> list[Genotype]:
        """Next genotypes to evaluate; an empty list means the strategy has finished."""

    @abstractmethod
    def tell(self, genotype: Genotype, result: EvalResult) -> None: ...

    def lineage(self, genotype: Genotype) -> dict[str, Any] | None:
        """Where a proposed genotype came from, for evaluators that inherit weights; None: unknown.

        Called by the runner after `ask()` for each genotype of the batch; strategies that derive
        children from evaluated parents return `{"parent": <parent key>, "regenerated": [block
        indices that cannot inherit the parent's weights]}` (see GA+GPT)."""
        return None

    def settings(self) -> dict[str, Any]:
        return {"name": self.name}
