"""Regularized evolution (Real et al., 2019): aging evolution with tournament selection.

Keep a queue of the last `population` evaluated genotypes; each step, mutate the best of
`sample_size` random members, evaluate the child, and drop the oldest member.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from lmnas.evaluation.base import EvalResult
from lmnas.spaces.base import Genotype, SearchSpace
from lmnas.strategies import STRATEGIES
from lmnas.strategies.base import Strategy


@STRATEGIES.register("regularized-evolution")
class RegularizedEvolution(Strategy):
    name = "regularized-evolution"
    warm_startable = True

    def __init__(self, space: SearchSpace, seed: int, population: int = 20, sample_size: int = 5) -> None:
        super().__init__(space, seed)
        self.population_size = population
        self.sample_size = sample_size
        self.population: deque[tuple[Genotype, float]] = deque()
        self.asked = 0

    def ask(self) -> list[Genotype]:
        self.asked += 1
        if self.asked <= self.population_size:  # random initial population, one at a time
            return self.initial_candidates(1)
        sample = [self.rng.choice(self.population) for _ in range(self.sample_size)]
        parent = max(sample, key=lambda e: e[1])[0]
        return [self.space.mutate(parent, self.rng)]

    def tell(self, genotype: Genotype, result: EvalResult) -> None:
        self.population.append((genotype, result.accuracy))
        if len(self.population) > self.population_size:
            self.population.popleft()

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "population": self.population_size, "sample_size": self.sample_size}
