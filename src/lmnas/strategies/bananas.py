"""BANANAS (White, Neiswanger & Savani, AAAI 2021): predictor-guided evolution.

After `initial` architectures (random, or a warm start's through `initial_candidates`), every round
trains an ensemble of small MLPs (`strategies.ensemble`) on the space's features of everything
evaluated (the path encoding for cells), makes `candidates` unevaluated architectures by mutating
the best `parents` evaluated ones (1..max_mutations mutations each; a `random_candidates` share
drawn from the space instead), and proposes the `batch_size` best by the acquisition function:
independent Thompson sampling (one Gaussian draw per candidate from the ensemble's mean and
spread, as BANANAS), an upper confidence bound, or the plain mean. The ensemble is retrained after
max(retrain_every, retrain_growth x its training rows) new evaluations (speed at large budgets).

Deterministic and resumable by replay: every draw comes from `self.rng` (mutations) or from a
numpy generator seeded with (seed, evaluations told), so replaying the journal retrains the
same ensembles on the same rows and proposes the same architectures.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from lmnas.config import option_defaults
from lmnas.errors import LmnasError
from lmnas.evaluation.base import EvalResult
from lmnas.spaces.base import Genotype, SearchSpace
from lmnas.strategies import STRATEGIES
from lmnas.strategies.base import Strategy
from lmnas.strategies.ensemble import EnsembleSettings, MLPEnsemble

D = option_defaults("bananas")
ACQUISITIONS = ("its", "ucb", "mean")
RANDOM_TRIES = 100  # fresh samples tried when every mutation is already evaluated


@STRATEGIES.register("bananas")
class Bananas(Strategy):
    name = "bananas"
    warm_startable = True  # its `initial` start goes through initial_candidates

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        initial: int = D["initial"],
        batch_size: int = D["batch_size"],
        candidates: int = D["candidates"],
        parents: int = D["parents"],
        max_mutations: int = D["max_mutations"],
        random_candidates: float = D["random_candidates"],
        acquisition: str = D["acquisition"],
        ucb_beta: float = D["ucb_beta"],
        members: int = D["members"],
        hidden: list[int] = D["hidden"],
        epochs: int = D["epochs"],
        lr: float = D["lr"],
        weight_decay: float = D["weight_decay"],
        retrain_every: int = D["retrain_every"],
        retrain_growth: float = D["retrain_growth"],
    ) -> None:
        super().__init__(space, seed)
        if acquisition not in ACQUISITIONS:
            raise LmnasError(f"search.options.bananas.acquisition: {acquisition!r}; expected one of {list(ACQUISITIONS)}")
        space.features(space.sample(random.Random(0)))  # a space without features says so now
        self.initial, self.batch_size, self.num_candidates = initial, batch_size, candidates
        self.parents, self.max_mutations, self.random_candidates = parents, max_mutations, random_candidates
        self.acquisition, self.ucb_beta = acquisition, ucb_beta
        self.retrain_every, self.retrain_growth = retrain_every, retrain_growth
        self.ensemble_settings = EnsembleSettings(members, tuple(hidden), epochs, lr, weight_decay)
        self.start: list[Genotype] | None = None
        self.asked_initial = 0
        self.evaluated: dict[str, tuple[Genotype, float]] = {}  # key -> (genotype, accuracy), in told order
        self.features: dict[str, np.ndarray] = {}
        self.model: MLPEnsemble | None = None
        self.trained_on = 0  # evaluations the current model was trained on

    def ask(self) -> list[Genotype]:
        if self.start is None:
            self.start = self.initial_candidates(self.initial)
        if self.asked_initial < len(self.start):
            self.asked_initial += 1
            return [self.start[self.asked_initial - 1]]
        if self.model is None or len(self.evaluated) - self.trained_on >= self.retrain_gap():
            self.train()
        pool = self.candidate_pool()
        x = np.stack([self.encode(g) for g in pool])
        predictions = self.model.predict(x)  # (members, candidates)
        mean, std = predictions.mean(axis=0), predictions.std(axis=0)
        if self.acquisition == "its":
            score = self.draws().normal(mean, std)
        elif self.acquisition == "ucb":
            score = mean + self.ucb_beta * std
        else:
            score = mean
        order = np.argsort(-score, kind="stable")
        return [pool[i] for i in order[: self.batch_size]]

    def retrain_gap(self) -> int:
        """New evaluations before the ensemble is retrained: retrain_every, or a share of what it
        was trained on (retrain_growth), whichever is more; between fits the last one scores."""
        return max(self.retrain_every, math.ceil(self.retrain_growth * self.trained_on))

    def draws(self) -> np.random.Generator:
        """numpy draws of this round: a function of the seed and of how much was told."""
        return np.random.default_rng([self.seed, len(self.evaluated)])

    def train(self) -> None:
        keys = list(self.evaluated)
        x = np.stack([self.features[k] for k in keys])
        y = np.array([self.evaluated[k][1] for k in keys])
        self.model = MLPEnsemble(self.ensemble_settings).fit(x, y, np.random.default_rng([self.seed, len(keys), 1]))
        self.trained_on = len(keys)

    def encode(self, genotype: Genotype) -> np.ndarray:
        key = self.space.key(genotype)
        vector = self.features.get(key)
        if vector is None:
            vector = self.features[key] = self.space.features(genotype)
        return vector

    def candidate_pool(self) -> list[Genotype]:
        """Distinct unevaluated mutants of the best evaluated architectures (and random samples)."""
        ranked = sorted(self.evaluated.values(), key=lambda e: -e[1])[: self.parents]  # stable: earlier first
        pool: dict[str, Genotype] = {}
        num_random = round(self.random_candidates * self.num_candidates)
        for n in range(self.num_candidates - num_random):
            child = ranked[n % len(ranked)][0]
            for _ in range(self.rng.randint(1, self.max_mutations)):
                child = self.space.mutate(child, self.rng)
            self._add(pool, child)
        for _ in range(num_random):
            self._add(pool, self.space.sample(self.rng))
        for _ in range(RANDOM_TRIES):
            if len(pool) >= self.batch_size:
                break
            self._add(pool, self.space.sample(self.rng))
        if not pool:  # everything near and far already evaluated: let the runner's convergence stop decide
            pool[""] = self.space.mutate(ranked[0][0], self.rng)
        return list(pool.values())

    def _add(self, pool: dict[str, Genotype], genotype: Genotype) -> None:
        key = self.space.key(genotype)
        if key not in self.evaluated:
            pool.setdefault(key, genotype)

    def tell(self, genotype: Genotype, result: EvalResult) -> None:
        key = self.space.key(genotype)
        if key not in self.evaluated:  # a re-proposed architecture is answered from the journal: no new data
            self.evaluated[key] = (genotype, result.accuracy)
            self.encode(genotype)

    def settings(self) -> dict[str, Any]:
        s = self.ensemble_settings
        return {"name": self.name, "initial": self.initial, "batch_size": self.batch_size,
                "candidates": self.num_candidates, "parents": self.parents, "max_mutations": self.max_mutations,
                "random_candidates": self.random_candidates, "acquisition": self.acquisition,
                "ucb_beta": self.ucb_beta, "members": s.members, "hidden": list(s.hidden), "epochs": s.epochs,
                "lr": s.lr, "weight_decay": s.weight_decay, "retrain_every": self.retrain_every,
                "retrain_growth": self.retrain_growth}
