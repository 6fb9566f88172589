"""Proxy training: a candidate trained for a few epochs; its validation accuracy is its fitness.

With `weights_dir`, every trained candidate's weights are kept there (by genotype key). With
`inherit` too, a candidate whose strategy gives a lineage (GA+GPT's offspring) starts from its
parent's weights and trains only its re-generated blocks and the classifier, or only the
BatchNorm affine parameters when nothing was re-generated (GPT-NAS; see `inheritance`);
metrics then say `inherited` (False: no parent weights, trained from scratch) and `trained_blocks`.
"""

from __future__ import annotations

import logging
import time
import zlib
from pathlib import Path
from typing import Any

import torch

from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.evaluation.inheritance import Inheritance, WeightStore, inherit_weights
from lmnas.models import measure
from lmnas.spaces.base import Genotype, SearchSpace

log = logging.getLogger(__name__)


def genotype_seed(seed: int, key: str) -> int:
    """Init seed of one candidate: fixed by (run seed, genotype), independent of evaluation order,
    so a resumed or reordered run trains every candidate exactly as before."""
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % 2**31


# Without a recipe (lmnas search --data … alone): the embedded default's short cosine proxy.
DEFAULT_RECIPE = {"epochs": 3, "batch_size": 64, "lr": 0.05, "warmup_epochs": 0.5, "schedule": "cosine",
                  "crop_padding": 1, "flip": False}


@EVALUATORS.register("proxy")
class ProxyTrainingEvaluator(Evaluator):
    name = "proxy"

    def __init__(
        self,
        prepared_dir: str | Path,
        recipe: dict[str, Any] | None = None,
        device: str = "cpu",
        train_subset: int | None = None,
        progress: bool = False,
        inherit: bool = False,
        weights_dir: str | Path | None = None,
    ) -> None:
        from lmnas.data import read_manifest
        from lmnas.training import TrainRecipe
        from lmnas.training.stream import EncodedSplit, training_split

        self.prepared_dir = Path(prepared_dir)
        self.manifest = read_manifest(self.prepared_dir)
        self.recipe = TrainRecipe.from_dict(recipe or DEFAULT_RECIPE, where="search.evaluator.recipe")
        self.device = device
        self.progress = progress
        self.train_subset = train_subset
        if inherit and weights_dir is None:
            raise LmnasError("search.evaluator.inherit: weight inheritance needs a weights_dir "
                             "to keep the parents' weights in")
        self.inherit = inherit
        self.store = WeightStore(weights_dir) if weights_dir is not None else None
        # Resident on the device once for all candidates (no per-candidate data loading), unless the
        # split is encoded and larger than recipe.resident_max_mb: then every candidate streams it.
        splits = [training_split(self.prepared_dir, split, self.recipe, rows=rows)
                  for split, rows in (("train", train_subset), ("val", None))]
        self.train, self.val = ((s if isinstance(s, EncodedSplit) else (s[0].to(device), s[1].to(device)))
                                for s in splits)

    def evaluate(
        self, space: SearchSpace, genotype: Genotype, *, seed: int, lineage: dict[str, Any] | None = None
    ) -> EvalResult:
        from lmnas.training import train_model

        if self.inherit and not space.inherits_weights:
            raise LmnasError(f"search.evaluator.inherit: weight inheritance needs the gptnas-blocks space, "
                             f"not {space.name!r}")
        key = space.key(genotype)
        torch.manual_seed(genotype_seed(seed, key))
        model = space.build(genotype)
        sizes = measure(model, space.input_shape)
        inheritance: Inheritance | None = None
        if self.inherit and lineage is not None:
            inheritance = inherit_weights(model, space, genotype, lineage, self.store)
            if not inheritance.inherited:
                log.warning("%s: no weights of parent %r in %s; training from scratch",
                            key, inheritance.parent, self.store.root)
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
            trainable=inheritance.trainable() if inheritance else None,
            bn_only=inheritance.bn_only if inheritance else False,
            progress=self.progress,
        )
        cost_s = time.perf_counter() - start
        if self.store is not None:
            self.store.save(key, model)
        last = result.history[-1]
        metrics: dict[str, Any] = {
            "accuracy": 100.0 * float(last["val_acc"]),
            "val_loss": float(last["val_loss"]),
            "train_accuracy": 100.0 * float(last["train_acc"]),
        }
        if self.inherit:  # candidates without a lineage (the initial population) train from scratch
            scratch = {"inherited": False, "trained_blocks": len(genotype)}
            metrics.update(inheritance.to_metrics() if inheritance else scratch)
        return EvalResult(metrics=metrics, cost_s=cost_s, params=sizes["params"], flops=sizes["flops"])

    def settings(self) -> dict[str, Any]:
        # Enough to rebuild this evaluator in a worker process.
        return {"name": self.name, "prepared_dir": str(self.prepared_dir), "recipe": self.recipe.to_dict(),
                "train_subset": self.train_subset, "device": self.device, "inherit": self.inherit,
                "weights_dir": str(self.store.root) if self.store else None}
