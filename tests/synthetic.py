"""A cheap, deterministic evaluator for runner/strategy tests: fitness from the key alone."""

import random
import time
import zlib

import torch

from lmnas.evaluation.base import EvalResult, Evaluator

WEIGHTS = {"conv": 1.0, "basic": 3.0, "bottleneck": 2.0, "shuffle": 0.5, "mbconv": 2.5, "regnet": 1.5, "inception": 0.0}


class SyntheticEvaluator(Evaluator):
    name = "synthetic"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[str] = []

    def evaluate(self, space, genotype, *, seed, lineage=None):
        key = space.key(genotype)
        self.calls.append(key)
        if self.delay_s:
            time.sleep(self.delay_s)
        score = sum(WEIGHTS[b] for b in genotype) / len(genotype)
        noise = (zlib.crc32(f"{seed}:{key}".encode()) % 1000) / 1000
        return EvalResult(metrics={"accuracy": 50 + 10 * score + noise}, cost_s=self.delay_s)


def reseed_globals(seed: int) -> None:
    """Put Python's and torch's global generators in another state: a run that is deterministic
    per its own seed gives the same result whatever this was."""
    random.seed(seed)
    torch.manual_seed(seed)
