"""GENIUS + regularized evolution: the LLM proposes, an aging population keeps and mutates the best.

The rule (ask number n = 1, 2, …):
- n <= population: the LLM proposes (GENIUS). These proposals replace regularized evolution's
  random initial population: RE's own random draw for that slot is made and discarded, so RE's
  state advances exactly as if it had sampled.
- afterwards: every `llm_every`-th ask goes to the LLM, the others to regularized evolution
  (tournament of `sample_size` in the last `population` results, mutate the winner), re-drawn
  while the mutant breaks the space's constraints (at most 100 times).
- every result is told to both, so the LLM's history holds the mutants' results and the
  population holds the LLM's proposals. When the LLM stops (a refusal with on_refusal=stop,
  or on_exhausted=stop), evolution carries on alone.
Both parts are reused by composition; every GENIUS setting passes through unchanged (the
constructor's signature lists GeniusSettings' fields, so the registry checks them like any other setting).
"""

from __future__ import annotations

import inspect
from typing import Any

from lmnas.errors import LmnasError
from lmnas.evaluation.base import EvalResult
from lmnas.spaces.base import Genotype, SearchSpace
from lmnas.strategies import STRATEGIES
from lmnas.strategies.base import Strategy
from lmnas.strategies.genius import GeniusSettings, GeniusStrategy
from lmnas.strategies.regularized_evolution import RegularizedEvolution

MUTANT_TRIES = 100


def with_genius_settings(init: Any) -> Any:
    """Advertise GeniusStrategy's keyword settings in the signature of an `__init__(..., **genius)`."""
    own = [p for p in inspect.signature(init).parameters.values() if p.kind != p.VAR_KEYWORD]
    init.__signature__ = inspect.Signature(own + GeniusSettings.parameters())
    return init


@STRATEGIES.register("genius-hybrid")
class GeniusHybrid(Strategy):
    name = "genius-hybrid"

    @with_genius_settings
    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        population: int = 10,
        sample_size: int = 3,
        llm_every: int = 2,
        **genius: Any,
    ) -> None:
        super().__init__(space, seed)
        if population < 1 or sample_size < 1 or llm_every < 1:
            raise LmnasError(f"search.strategy: need population, sample_size, llm_every >= 1; got "
                             f"{population}, {sample_size}, {llm_every}")
        self.llm = GeniusStrategy(space, seed, GeniusSettings(**genius))
        self.evolution = RegularizedEvolution(space, seed + 1, population=population, sample_size=sample_size)
        self.llm_every = llm_every
        self.asks = 0
        self.llm_done = False
        self.sources: dict[str, int] = {"llm": 0, "evolution": 0}
        self.seen: set[str] = set()  # keys told: mutants are re-drawn rather than wasted on the journal

    def ask(self) -> list[Genotype]:
        self.asks += 1
        warmup = self.asks <= self.evolution.population_size
        if not self.llm_done and (warmup or self.asks % self.llm_every == 0):
            batch = self.llm.ask()
            if batch:
                if warmup:
                    self.evolution.ask()  # RE's random initial draw, replaced by the LLM's proposal
                self.sources["llm"] += 1
                self.generation = self.llm.generation
                return batch
            self.llm_done = True
        self.sources["evolution"] += 1
        return [self._mutant()]

    def _mutant(self) -> Genotype:
        """RE's next child, re-drawn while it was evaluated already or breaks a constraint."""
        genotype = self.evolution.ask()[0]
        for _ in range(MUTANT_TRIES):
            if self.space.key(genotype) not in self.seen and not self.space.check_constraints(genotype):
                break
            genotype = self.evolution.ask()[0]
        return genotype

    def tell(self, genotype: Genotype, result: EvalResult) -> None:
        self.seen.add(self.space.key(genotype))
        self.llm.tell(genotype, result)
        self.evolution.tell(genotype, result)

    def stats(self) -> dict[str, Any]:
        return {**self.llm.stats(), "asks_by_source": dict(self.sources)}

    def settings(self) -> dict[str, Any]:
        return {**self.llm.settings(), "name": self.name, "population": self.evolution.population_size,
                "sample_size": self.evolution.sample_size, "llm_every": self.llm_every}
