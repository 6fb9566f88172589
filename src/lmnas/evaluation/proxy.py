"""Proxy training: a candidate trained for a few epochs; its validation accuracy is its fitness."""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any

import torch

from lmnas.evaluation import EVALUATORS
from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.models import measure
from lmnas.spaces.base import Genotype, SearchSpace


def genotype_seed(seed: int, key: str) -> int:
    """Init seed of one candidate: fixed by (run seed, genotype), independent of evaluation order,
    so a resumed or reordered run trains every candidate exactly as before."""
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % 2**31


@EVALUATORS.register("proxy")
class ProxyTrainingEvaluator(Evaluator):
    name = "proxy"

    def __init__(
        self,
        prepared_dir: str | Path,
        recipe: dict[str, Any],
        device: str = "cpu",
        train_subset: int | None = None,
        progress: bool = False,
    ) -> None:
        from lmnas.data import load_split, read_manifest
        from lmnas.training import TrainRecipe

        self.prepared_dir = Path(prepared_dir)
        self.manifest = read_manifest(self.prepared_dir)
        self.recipe = TrainRecipe.from_dict(recipe, where="search.evaluator.recipe")
        self.device = device
        self.progress = progress
        self.train_subset = train_subset
        x, y = load_split(self.prepared_dir, "train")
        if train_subset is not None:
            x, y = x[:train_subset], y[:train_subset]
        # Resident on the device once for all candidates (no per-candidate data loading).
        self.train = (x.to(device), y.to(device))
        xv, yv = load_split(self.prepared_dir, "val")
        self.val = (xv.to(device), yv.to(device))

    def evaluate(self, space: SearchSpace, genotype: Genotype, *, seed: int) -> EvalResult:
        from lmnas.training import train_model

        key = space.key(genotype)
        torch.manual_seed(genotype_seed(seed, key))
        model = space.build(genotype)
        sizes = measure(model, space.input_shape)
        start = time.perf_counter()
        result = train_model(
            model.to(self.device),
            self.train,
            self.val,
            self.recipe,
            mean=self.manifest["mean"],
            std=self.manifest["std"],
            device=self.device,
            seed=genotype_seed(seed, key),
            progress=self.progress,
        )
        last = result.history[-1]
        return EvalResult(
            metrics={
                "accuracy": 100.0 * float(last["val_acc"]),
                "val_loss": float(last["val_loss"]),
                "train_accuracy": 100.0 * float(last["train_acc"]),
            },
            cost_s=time.perf_counter() - start,
            params=sizes["params"],
            flops=sizes["flops"],
        )

    def settings(self) -> dict[str, Any]:
        # Enough to rebuild this evaluator in a worker process.
        return {"name": self.name, "prepared_dir": str(self.prepared_dir), "recipe": self.recipe.to_dict(),
                "train_subset": self.train_subset, "device": self.device}
