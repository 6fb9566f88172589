"""The search-space contract every space implements (NASLib-style separation).

A genotype is an immutable, hashable value; `key` is its canonical string (the journal,
dedup and cache key, written as the benchmark tables write it) and `parse` inverts it.

Model-based strategies (bananas, optuna-tpe) also need a *categorical view* of the space:
`categorical()` names a fixed list of categorical decisions, `to_categorical` writes a genotype as one
value per decision, and `from_categorical` turns any combination back into a valid genotype (the
nearest valid one where a combination is not an architecture, e.g. a NAS-Bench-101 matrix with
no input→output path). `features` is the numeric encoding a predictor learns from: by default
the one-hot of the categorical view; cell spaces add their path encoding (BANANAS). A space
without a categorical view raises `LmnasError` saying which strategies need one.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from lmnas.errors import LmnasError

Genotype = Hashable


@dataclass(frozen=True)
class Choice:
    """One categorical decision of a space: its name and options (str/int, so JSON and Optuna keep them)."""

    name: str
    options: tuple[Any, ...]


REGENERATES_BLOCKS = "blocks"
REGENERATES_VERTEX_OPS = "vertex-ops"


class SearchSpace(ABC):
    name: str = ""
    input_shape: tuple[int, int, int] = (3, 32, 32)  # (C, H, W) the networks are built for
    num_classes: int = 10
    # How `key` rewrites a genotype given another way (told to a user who sees the rewrite).
    canonical_form: str = "the same architecture, written as the space keys it"
    # What an architecture GPT re-generates when a GPT strategy (ga-gpt, random-gpt) reconstructs a
    # genotype: REGENERATES_BLOCKS (whole blocks, left to right), REGENERATES_VERTEX_OPS (the ops of a
    # cell's interior vertices; the non-GPT reconstructors pick ops too), or None: no GPT strategy
    # can search the space. The strategies switch on this, never on the space's class.
    regenerates: str | None = None
    # Whether a child can take its parent's weights block by block (weight inheritance in the proxy
    # evaluator): the space then implements `new_blocks(child, parent)` and `block_specs`.
    inherits_weights: bool = False

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

    # -- categorical view and features (model-based strategies) --------------------------------
    def categorical(self) -> tuple[Choice, ...]:
        raise self._no_categorical_view()

    def to_categorical(self, genotype: Genotype) -> dict[str, Any]:
        """One value per `categorical()` entry; `from_categorical(to_categorical(g)) == validate(g)`."""
        raise self._no_categorical_view()

    def from_categorical(self, values: Mapping[str, Any], rng: random.Random) -> Genotype:
        """The valid genotype `values` write, or the nearest valid one (ties broken with `rng`)."""
        raise self._no_categorical_view()

    def _no_categorical_view(self) -> LmnasError:
        return LmnasError(f"search space {self.name!r} has no categorical view (categorical / to_categorical / "
                          "from_categorical): the model-based strategies (bananas, optuna-tpe) cannot search it")

    def features(self, genotype: Genotype) -> np.ndarray:
        """A fixed-length float32 vector for predictors: the one-hot of the categorical view."""
        return one_hot(self.categorical(), self.to_categorical(genotype))


def one_hot(choices: tuple[Choice, ...], values: Mapping[str, Any]) -> np.ndarray:
    """Concatenated one-hot vectors of `values`, one block of len(options) per choice."""
    out = np.zeros(sum(len(c.options) for c in choices), dtype=np.float32)
    offset = 0
    for c in choices:
        out[offset + c.options.index(values[c.name])] = 1.0
        offset += len(c.options)
    return out
