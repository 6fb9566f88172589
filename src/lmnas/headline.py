"""Headline metrics: a few figures per stage, kept where `dvc metrics diff` sees them.

Each stage writes its full metrics (per-epoch histories, timings, settings) under
`results/<run>/<stage>/`, which git ignores and DVC caches. The handful of numbers people compare
across commits go to `metrics/<run>/<stage>.json`, a small file git tracks (a DVC metric with
`cache: false`), so `dvc metrics diff HEAD~1` shows them without any cache or checkout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.io import read_json, write_json

METRICS_DIR = "metrics"

# stage → headline name → dotted path in the stage's detail file (absent paths are left out:
# e.g. a proxy search has no test_accuracy, transfer without a baseline has no gain).
HEADLINES: dict[str, dict[str, str]] = {
    "encode_corpus": {"pretrain_archs": "pretrain_archs", "finetune_archs": "finetune_archs", "vocab_size": "vocab_size"},
    "train_archgpt": {
        "pretrain_val_loss": "pretrain.final.val_loss",
        "finetune_val_loss": "finetune.final.val_loss",
        "finetune_val_top1": "finetune.final.val_top1",
    },
    "search": {"accuracy": "accuracy", "test_accuracy": "test_accuracy", "evaluations": "evaluations",
               "search_cost_s": "search_cost_s"},
    "retrain": {"test_acc": "test_acc", "val_acc": "val_acc", "epochs": "epochs"},
    "transfer": {"test_acc": "test_acc", "scratch_test_acc": "scratch_test_acc", "gain_over_scratch": "gain_over_scratch"},
}


# stage → the names of its Snakemake outputs holding the detail metrics (merged in this order).
DETAIL_OUTPUT = {"encode_corpus": ("summary",), "train_archgpt": ("metrics",), "search": ("best", "timings"),
                 "retrain": ("metrics",), "transfer": ("metrics",)}


def headline_path(run_name: str, stage: str) -> str:
    return f"{METRICS_DIR}/{run_name}/{stage}.json"


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def headline(stage: str, detail: dict[str, Any]) -> dict[str, Any]:
    if stage not in HEADLINES:
        raise LmnasError(f"headline metrics: no headline figures defined for stage {stage!r}; known: {sorted(HEADLINES)}")
    picked = {name: _get(detail, path) for name, path in HEADLINES[stage].items()}
    return {name: value for name, value in picked.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}


def write_headline(stage: str, detail_paths: list[str | os.PathLike[str]],
                   out_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the stage's detail metrics, write its headline figures (one flat JSON object)."""
    detail: dict[str, Any] = {}
    for path in detail_paths:
        detail.update(read_json(path))
    figures = headline(stage, detail)
    write_json(Path(out_path), figures)
    return figures
