"""Genetic algorithm with GPT-NAS's settings: tournament selection, one-point crossover,
mutation, and (mu + lambda) survival of the fittest distinct genotypes.

GPT-NAS (CIFAR-10): population 30, 20 generations, crossover 0.7, mutation 0.5.
`regenerate` is the hook GA+GPT overrides to rebuild masked blocks with the architecture GPT.
"""

from __future__ import annotations

from typing import Any

from lmnas.evaluation.base import EvalResult
from lmnas.spaces.base import Genotype, SearchSpace
from lmnas.strategies import STRATEGIES
from lmnas.strategies.base import Strategy


@STRATEGIES.register("ga")
class GeneticAlgorithm(Strategy):
    name = "ga"
    warm_startable = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        population: int = 30,
        generations: int = 20,
        crossover_rate: float = 0.7,
        mutation_rate: float = 0.5,
        tournament_size: int = 2,
    ) -> None:
        super().__init__(space, seed)
        self.population_size = population
        self.generations = generations
        self.crossover_rate = crossover_rate
        self.mutation_rate = mutation_rate
        self.tournament_size = tournament_size
        self.population: list[tuple[Genotype, float]] = []
        self.pending: dict[str, Genotype] = {}
        self.results: dict[str, tuple[Genotype, float]] = {}

    # The generation being proposed: 0 is the random initial population.
    def ask(self) -> list[Genotype]:
        if self.pending:
            raise RuntimeError("ask() called before every genotype of the last batch was told")
        if self.generation > self.generations:
            return []
        if self.generation == 0:
            batch = self.initial()
        else:
            batch = self.offspring()
        # Distinct genotypes only: a twin would be told twice and close the generation early.
        self.pending = {self.space.key(g): g for g in batch}
        self.results = {}
        return list(self.pending.values())

    def initial(self) -> list[Genotype]:
        """Generation 0: `population` random architectures (a warm start's ranked ones first)."""
        return self.initial_candidates(self.population_size)

    def offspring(self) -> list[Genotype]:
        children: list[Genotype] = []
        while len(children) < self.population_size:
            a, b = self.select(), self.select()
            if self.rng.random() < self.crossover_rate:
                a, b = self.space.crossover(a, b, self.rng)
            for child in (a, b):
                if self.rng.random() < self.mutation_rate:
                    child = self.space.mutate(child, self.rng)
                children.append(self.regenerate(child))
        return children[: self.population_size]

    def regenerate(self, child: Genotype) -> Genotype:
        return child

    def select(self) -> Genotype:
        """Tournament selection: the fittest of `tournament_size` random members."""
        entrants = [self.rng.choice(self.population) for _ in range(self.tournament_size)]
        return max(entrants, key=lambda e: e[1])[0]

    def tell(self, genotype: Genotype, result: EvalResult) -> None:
        key = self.space.key(genotype)
        self.pending.pop(key, None)
        self.results[key] = (genotype, result.accuracy)
        if not self.pending:
            self.survive()

    def survive(self) -> None:
        """(mu + lambda): keep the best distinct genotypes of parents and offspring."""
        pool = {self.space.key(g): (g, acc) for g, acc in self.population}
        pool.update(self.results)
        ranked = sorted(pool.items(), key=lambda kv: (-kv[1][1], kv[0]))  # key breaks ties stably
        self.population = [entry for _, entry in ranked[: self.population_size]]
        self.generation += 1

    def settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "population": self.population_size,
            "generations": self.generations,
            "crossover_rate": self.crossover_rate,
            "mutation_rate": self.mutation_rate,
            "tournament_size": self.tournament_size,
        }
