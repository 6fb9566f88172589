"""Random search: the baseline every strategy must beat at the same budget."""

from __future__ import annotations

from lmnas.evaluation.base import EvalResult
from lmnas.spaces.base import Genotype, SearchSpace
from lmnas.strategies import STRATEGIES
from lmnas.strategies.base import Strategy


@STRATEGIES.register("random")
class RandomSearch(Strategy):
    name = "random"
    warm_startable = True

    def __init__(self, space: SearchSpace, seed: int, batch_size: int = 1) -> None:
        super().__init__(space, seed)
        self.batch_size = batch_size

    def ask(self) -> list[Genotype]:
        return self.initial_candidates(self.batch_size)

    def tell(self, genotype: Genotype, result: EvalResult) -> None:
        pass  # random search ignores feedback
