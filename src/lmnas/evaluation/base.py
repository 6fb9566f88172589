"""The evaluator contract: one call for every fidelity, returning metrics and the cost spent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmnas.spaces.base import Genotype, SearchSpace


@dataclass
class EvalResult:
    """`metrics["accuracy"]` (percent) is what the search maximises; other metrics are reported."""

    metrics: dict[str, float]
    cost_s: float  # seconds of compute spent (training time, or the table's recorded cost)
    params: int | None = None
    flops: int | None = None  # multiply-adds for one image
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        return self.metrics["accuracy"]


class Evaluator(ABC):
    name: str = ""

    @abstractmethod
    def evaluate(
        self, space: SearchSpace, genotype: Genotype, *, seed: int, lineage: dict[str, Any] | None = None
    ) -> EvalResult:
        """`lineage`: the strategy's `Strategy.lineage(genotype)` (parent key and re-generated
        blocks), passed only when the strategy gives one; evaluators that do not inherit weights
        ignore it."""

    def settings(self) -> dict[str, Any]:
        return {"name": self.name}

    def input_files(self, space: SearchSpace) -> dict[str, Path]:
        """Files this evaluator reads for `space` (benchmark tables…): their sha256 is part of a run's identity."""
        return self.input_files_for(space.name)

    def input_files_for(self, space_name: str) -> dict[str, Path]:
        """`input_files` by the space's registered name (the workflow asks before any space is built)."""
        return {}
