"""The search-space contract every space implements (NASLib-style separation).

A genotype is an immutable, hashable value; `key` is its canonical string (the journal,
dedup and cache key, written as the benchmark tables write it) and `parse` inverts it.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import Any

from torch import nn

Genotype = Hashable


class SearchSpace(ABC):
    name: str = ""
    input_shape: tuple[int, int, int] = (3, 32, 32)  # (C, H, W) the networks are built for
    num_classes: int = 10
    # How `key` rewrites a genotype given another way (told to a user who sees the rewrite).
    canonical_form: str = "the same architecture, written as the space keys it"

    @abstractmethod
    def sample(self, rng: random.Random) -> Genotype: ...

    @abstractmethod
    def mutate(self, genotype: Genotype, rng: random.Random) -> Genotype: ...

    @abstractmethod
    def crossover(self, a: Genotype, b: Genotype, rng: random.Random) -> tuple[Genotype, Genotype]: ...

    @abstractmethod
    def validate(self, genotype: Any) -> Genotype:
        """Return the canonical genotype or raise LmnasError saying what is wrong."""

    @abstractmethod
    def key(self, genotype: Genotype) -> str: ...

    @abstractmethod
    def parse(self, key: str) -> Genotype: ...

    @abstractmethod
    def build(self, genotype: Genotype) -> nn.Module: ...

    @abstractmethod
    def describe(self) -> str:
        """The space in plain text (for LLM prompts and the report)."""

    def settings(self) -> dict[str, Any]:
        """What is needed to rebuild this space: saved beside the search results."""
        return {"name": self.name}

    # Optional features: every space answers; these defaults mean "the space has none".

    def check_constraints(self, genotype: Genotype) -> str | None:
        """Why `genotype` breaks the space's constraints (e.g. GENIUS's FLOPs limits), said as the LLM
        is told; None when it keeps them (a space without constraints: always)."""
        return None

    def flops(self, genotype: Genotype) -> int | None:
        """FLOPs of one image by the space's paper convention (GENIUS: thop at 224 px), or None when the
        space has none: then the measured multiply-adds (EvalResult.flops) stand for it."""
        return None
