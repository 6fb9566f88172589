"""The ask/tell contract: `ask()` proposes genotypes, `tell()` receives their results.

Strategies draw every random number in `ask()` from their own seeded generator and never
depend on wall time, so replaying the same results reproduces the same proposals: that is
how the runner resumes a killed search from its journal.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any

from lmnas.evaluation.base import EvalResult
from lmnas.spaces.base import Genotype, SearchSpace


class Strategy(ABC):
    name: str = ""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.space = space
        self.seed = seed
        self.rng = random.Random(seed)
        self.generation = 0  # recorded in the journal; strategies without generations keep 0

    @abstractmethod
    def ask(self) -> list[Genotype]:
        """Next genotypes to evaluate; an empty list means the strategy has finished."""

    @abstractmethod
    def tell(self, genotype: Genotype, result: EvalResult) -> None: ...

    def initial_candidates(self, count: int) -> list[Genotype]:
        """The strategy's starting architectures, drawn before any result is known: `count` seeded
        samples. The one place a warm start (e.g. the best of many proxy-ranked samples) replaces
        them; strategies call it once, at their first ask, with their initial population size."""
        return [self.space.sample(self.rng) for _ in range(count)]

    def lineage(self, genotype: Genotype) -> dict[str, Any] | None:
        """Where a proposed genotype came from, for evaluators that inherit weights; None: unknown.

        Called by the runner after `ask()` for each genotype of the batch; strategies that derive
        children from evaluated parents return `{"parent": <parent key>, "regenerated": [block
        indices that cannot inherit the parent's weights]}` (see GA+GPT)."""
        return None

    def settings(self) -> dict[str, Any]:
        return {"name": self.name}
