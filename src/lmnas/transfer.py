"""Transfer: load retrained weights, swap the classifier for the target's classes, fine-tune, test.

GPT-NAS and GENIUS transfer ImageNet-trained networks to CIFAR-10/100; `input_size`
resizes the target images on the device to the size the network was trained at.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from lmnas.errors import LmnasError
from lmnas.io import read_json, write_json
from lmnas.retrain import TIMING_KEYS, aside_name, train_and_report
from lmnas.training import TrainRecipe


def transfer(
    model: nn.Module,
    weights: Path,
    prepared_dir: Path,
    out_dir: Path,
    recipe: TrainRecipe,
    *,
    seed: int,
    device: str,
    input_size: int | None = None,
    baseline_from_scratch: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune `model` (same architecture as `weights`) on `prepared_dir`; write out_dir/metrics.json.

    With `baseline_from_scratch`, the same network re-initialised (new seeded init,
    same recipe) is also trained in out_dir/scratch, and its test accuracy reported.
    """
    from lmnas.data import read_manifest
    from lmnas.identity import sha256_file

    weights, out_dir = Path(weights), Path(out_dir)
    num_classes = read_manifest(prepared_dir)["num_classes"]
    if baseline_from_scratch:
        scratch_model = copy.deepcopy(model)
    load_weights(model, weights)
    head_name = replace_classifier(model, num_classes, seed=seed)
    identity = {"stage": "transfer", "source_weights": str(weights), "source_sha256": sha256_file(weights),
                "classifier": head_name}
    metrics = train_and_report(
        model, prepared_dir, out_dir, recipe, seed=seed, device=device, progress=progress,
        input_size=input_size, identity=identity,
    )
    if baseline_from_scratch:
        reinitialise(scratch_model, seed=seed)
        replace_classifier(scratch_model, num_classes, seed=seed)
        # The baseline is this network on this data: a finished baseline of another architecture
        # (the search found a new best) or dataset must not be reported as this one's.
        scratch_identity = {"stage": "transfer-scratch",
                            "architecture_sha256": hashlib.sha256(repr(scratch_model).encode()).hexdigest(),
                            "data_manifest_sha256": sha256_file(Path(prepared_dir) / "manifest.json")}
        set_aside_foreign_baseline(out_dir / "scratch", recipe, seed, {**scratch_identity, "input_size": input_size})
        scratch = train_and_report(
            scratch_model, prepared_dir, out_dir / "scratch", recipe, seed=seed, device=device, progress=progress,
            input_size=input_size, identity=scratch_identity,
        )
        merged = {**metrics, "scratch_test_acc": scratch["test_acc"], "scratch_val_acc": scratch["val_acc"],
                  "gain_over_scratch": metrics["test_acc"] - scratch["test_acc"]}
        if merged != metrics:  # timings stay in timings.json (lmnas.retrain.TIMING_KEYS)
            write_json(out_dir / "metrics.json", {k: v for k, v in merged.items() if k not in TIMING_KEYS})
        metrics = merged
    return metrics


def set_aside_foreign_baseline(folder: Path, recipe: TrainRecipe, seed: int, identity: dict[str, Any]) -> None:
    """A finished from-scratch baseline made with other settings is moved aside (never deleted, never
    reported): the transfer stage reruns it with its own, as Snakemake/DVC expect of a rerun stage."""
    metrics_path = folder / "metrics.json"
    if not metrics_path.exists():
        return
    try:
        stored = read_json(metrics_path)
    except LmnasError:
        stored = {}
    same = (stored.get("recipe") == recipe.to_dict() and stored.get("seed") == seed
            and all(stored.get(k) == v for k, v in identity.items()))
    if not same:
        aside = aside_name(folder)
        folder.rename(aside)
        print(f"lmnas: {folder}: a baseline made with other settings; moved to {aside}, training afresh",
              file=sys.stderr)


def load_weights(model: nn.Module, weights: Path) -> None:
    """Load a safetensors state dict, naming the file and the mismatching keys on failure."""
    if not Path(weights).is_file():
        raise LmnasError(f"{weights}: source weights not found (expected a retrain model.safetensors)")
    state = load_file(str(weights))
    missing, unexpected = _key_mismatch(model, state)
    if missing or unexpected:
        raise LmnasError(
            f"{weights} does not fit this architecture: missing {missing[:5]}, unexpected {unexpected[:5]} "
            f"({len(missing)}/{len(unexpected)} keys); build the same genotype the weights were trained for"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # same keys, different shapes
        raise LmnasError(f"{weights} does not fit this architecture: {exc}") from exc


def find_classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last nn.Linear in module order: the classifier of every network we build."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise LmnasError(f"{type(model).__name__} has no nn.Linear classifier to replace for transfer")
    return found[-1]


def replace_classifier(model: nn.Module, num_classes: int, *, seed: int) -> str:
    """Swap the last nn.Linear for a fresh one with `num_classes` outputs (seeded init); return its name."""
    name, old = find_classifier(model)
    with _seeded_cpu_rng(seed):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, new)
    return name


def reinitialise(model: nn.Module, *, seed: int) -> None:
    """A seeded fresh init (the from-scratch baseline): the network's own `init_weights` where it has
    one (GENIUS's timm init), else every module that defines reset_parameters."""
    with _seeded_cpu_rng(seed):
        if callable(getattr(model, "init_weights", None)):
            model.init_weights()
            return
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()


@contextmanager
def _seeded_cpu_rng(seed: int) -> Iterator[None]:
    """Seed the CPU default generator (module inits draw from it) and restore the caller's state after."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def _key_mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)


def transfer_best(
    best_json: Path, weights: Path, prepared_dir: Path, out_dir: Path, recipe: dict[str, Any], *, seed: int,
    device: str = "auto", input_size: int | None = None, baseline_from_scratch: bool = False, progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune the retrained best genotype of a search on another task."""
    from lmnas.device import resolve_device
    from lmnas.search.outputs import load_best

    space, genotype, _ = load_best(best_json)
    model = space.build(genotype)
    return transfer(
        model, weights, prepared_dir, out_dir, TrainRecipe.from_dict(recipe, where="transfer.recipe"), seed=seed,
        device=resolve_device(device), input_size=input_size, baseline_from_scratch=baseline_from_scratch,
        progress=progress,
    )
