"""Optuna's Tree-structured Parzen Estimator (Bergstra et al. 2011; Optuna's TPESampler) over the
space's categorical view, through Optuna's ask/tell interface.

The first `initial` trials are the strategy's `initial_candidates` (random samples, or a warm
start), enqueued as fixed trials, so TPE models from them on (its n_startup_trials). Each
suggestion becomes a genotype through `space.from_categorical`, which maps combinations that are
no architecture (most NAS-Bench-101 matrices) to the nearest valid one, so no query is spent on an
invalid cell and no trial is wasted. A suggestion that lands on an architecture already evaluated
is told that result at once and TPE asked again (`max_repeats` times at most, then a random
unevaluated sample is proposed and added to the study as a finished trial): the runner's budget
counts only new architectures.

Deterministic and resumable by replay: the sampler is seeded with the strategy's seed and the
study lives in memory, so replaying the journal's results rebuilds the same study and the same
suggestions.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from lmnas.config import option_defaults
from lmnas.evaluation.base import EvalResult
from lmnas.spaces.base import Genotype, SearchSpace
from lmnas.strategies import STRATEGIES
from lmnas.strategies.base import Strategy

D = option_defaults("optuna-tpe")
RANDOM_TRIES = 100


@STRATEGIES.register("optuna-tpe")
class OptunaTPE(Strategy):
    name = "optuna-tpe"
    warm_startable = True  # its `initial` trials go through initial_candidates

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        initial: int = D["initial"],
        multivariate: bool = D["multivariate"],
        group: bool = D["group"],
        n_ei_candidates: int = D["n_ei_candidates"],
        max_repeats: int = D["max_repeats"],
    ) -> None:
        import optuna

        super().__init__(space, seed)
        # Optuna logs every finished trial at INFO; a search logs through its journal instead.
        logging.getLogger("optuna").setLevel(logging.WARNING)
        self.distributions = {c.name: optuna.distributions.CategoricalDistribution(c.options)
                              for c in space.categorical()}
        self.initial, self.multivariate, self.group = initial, multivariate, group
        self.n_ei_candidates = n_ei_candidates
        self.max_repeats = max_repeats
        with warnings.catch_warnings():  # multivariate / group are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=initial, multivariate=multivariate, group=group and multivariate,
                n_ei_candidates=n_ei_candidates)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.started = False
        self.pending: dict[str, Any] = {}  # key -> the trial that proposed it
        self.known: dict[str, float] = {}  # key -> accuracy told

    def ask(self) -> list[Genotype]:
        import optuna

        if not self.started:
            self.started = True
            for genotype in self.initial_candidates(self.initial):
                self.study.enqueue_trial(self.space.to_categorical(genotype))
        for _ in range(self.max_repeats):
            trial = self.study.ask(self.distributions)
            genotype = self.space.from_categorical(trial.params, self.rng)
            key = self.space.key(genotype)
            if key in self.known:
                self.study.tell(trial, self.known[key])
                continue
            if key in self.pending:  # asked again before its result came (batch of one: only after a kill)
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            self.pending[key] = trial
            return [genotype]
        for _ in range(RANDOM_TRIES):  # TPE keeps landing on known architectures: a fresh one
            genotype = self.space.sample(self.rng)
            if self.space.key(genotype) not in self.known:
                break
        return [genotype]

    def tell(self, genotype: Genotype, result: EvalResult) -> None:
        import optuna

        key = self.space.key(genotype)
        trial = self.pending.pop(key, None)
        if trial is not None:
            self.study.tell(trial, result.accuracy)
        elif key not in self.known:  # the random fallback: known to TPE as a finished trial
            self.study.add_trial(optuna.trial.create_trial(
                params=self.space.to_categorical(genotype), distributions=self.distributions, value=result.accuracy))
        self.known[key] = result.accuracy

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "initial": self.initial, "multivariate": self.multivariate, "group": self.group,
                "n_ei_candidates": self.n_ei_candidates, "max_repeats": self.max_repeats}
