"""Retrain a found architecture on a prepared dataset and report its test accuracy.

Artefacts in `out_dir`: `model.safetensors` (final weights), `metrics.json` (written
last: its presence means the run is complete), `log.csv` (one row per epoch) and
`checkpoints/` (per-epoch, so a killed run resumes where it stopped). Wall-clock figures (seconds,
images/s, the epoch a resumed run started from) go to `timings.json`, not to the files the next
stages read: a rerun to the same weights leaves metrics.json and log.csv byte-identical.

Data parallel: `retrain_best(..., nproc=N)` launches N ranks with torchrun, each
running `python -m lmnas.retrain` (`main` below) inside the process group; every rank
trains and evaluates its share, rank 0 alone writes the artefacts.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmnas.errors import LmnasError
from lmnas.identity import sha256_file
from lmnas.io import read_json, write_json, write_text
from lmnas.training import TrainRecipe, TrainResult, evaluate, save_weights, train_model
from lmnas.training import distributed

LOG_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc")
TIMING_KEYS = ("seconds", "train_images_per_s", "resumed_from_epoch")  # timings.json, not metrics.json
EPOCH_TIMINGS = ("seconds", "images_per_s")


def retrain(
    model: nn.Module,
    prepared_dir: Path,
    out_dir: Path,
    recipe: TrainRecipe,
    *,
    seed: int,
    device: str,
    progress: bool = True,
) -> dict[str, Any]:
    """Train `model` (initialised by the caller) on the train split; evaluate on val and test."""
    return train_and_report(
        model, prepared_dir, out_dir, recipe, seed=seed, device=device, progress=progress, identity={"stage": "retrain"}
    )


def train_and_report(
    model: nn.Module,
    prepared_dir: Path,
    out_dir: Path,
    recipe: TrainRecipe,
    *,
    seed: int,
    device: str,
    progress: bool = True,
    input_size: int | None = None,
    identity: dict[str, Any] | None = None,
    sync_bn: bool = False,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """The shared body of retrain and transfer: train, test, write the artefacts, return the metrics.

    `identity` (stage, source weights…) goes into metrics.json; a complete run in
    `out_dir` is returned as is when recipe, seed and identity match, refused otherwise.
    With `stop_after_epoch` short of the recipe's epochs, the call trains that far,
    writes log.csv and the checkpoint, and returns {"complete": False, "epochs": k}
    (no model or metrics yet). Under a process group every rank calls this; rank 0
    writes, and every rank returns the same metrics.
    """
    from lmnas.data import read_manifest
    from lmnas.training.stream import training_split

    out_dir, prepared_dir = Path(out_dir), Path(prepared_dir)
    identity = {**(identity or {}), "input_size": input_size}
    metrics_path = out_dir / "metrics.json"
    if metrics_path.exists():
        return _finished(metrics_path, recipe, seed, identity)

    manifest = read_manifest(prepared_dir)
    check_num_classes(model, manifest["num_classes"], prepared_dir)
    # Resident tensors for raw or small data, an EncodedSplit (streamed by DataLoader workers) for large encoded data.
    train, val, test = (training_split(prepared_dir, split, recipe) for split in ("train", "val", "test"))
    stats = dict(mean=manifest["mean"], std=manifest["std"], device=device)
    result = _train_logged(
        model, train, val, prepared_dir, out_dir, recipe, seed=seed, stats=stats, identity=identity,
        progress=progress, input_size=input_size, sync_bn=sync_bn, stop_after_epoch=stop_after_epoch,
    )
    if len(result.history) < recipe.epochs:
        distributed.barrier()
        return {**identity, "complete": False, "epochs": len(result.history),
                "resumed_from_epoch": result.resumed_from_epoch}
    test_loss, test_acc = evaluate(
        model, test, batch_size=recipe.eval_batch_size, input_size=input_size, shard=True, recipe=recipe, **stats
    )
    metrics = {
        **identity,
        "test_acc": test_acc,
        "test_loss": test_loss,
        **_training_metrics(model, result, sync_bn),
        "dataset": {"prepared_dir": str(prepared_dir), "source": manifest.get("source"),
                    "num_classes": manifest["num_classes"], "image_shape": manifest.get("image_shape")},
        **_provenance(recipe, seed, device),
    }
    if distributed.is_main():
        save_weights(out_dir / "model.safetensors", model, metadata={"seed": str(seed)})
        write_json(out_dir / "timings.json", _timings(result))
        write_json(metrics_path, metrics)
    distributed.barrier()  # every rank reads the files rank 0 wrote
    return read_metrics(out_dir)  # the same plain-JSON values a later call returns


def _train_logged(
    model: nn.Module,
    train: Any,
    val: Any,
    prepared_dir: Path,
    out_dir: Path,
    recipe: TrainRecipe,
    *,
    seed: int,
    stats: dict[str, Any],
    identity: dict[str, Any],
    progress: bool,
    input_size: int | None,
    sync_bn: bool,
    stop_after_epoch: int | None,
) -> TrainResult:
    """train_model with out_dir's log.csv (one row per epoch, rank 0) and checkpoints/ (this run's only)."""
    from lmnas.training.stream import rows_of

    log_path = out_dir / "log.csv"
    logged: list[dict[str, Any]] = read_log(log_path)

    def log_epoch(entry: dict[str, Any]) -> None:  # called on rank 0 only
        logged[:] = [row for row in logged if int(row["epoch"]) < entry["epoch"]] + [entry]
        write_log(log_path, logged)

    checkpoint_identity = {**identity, "data_manifest_sha256": sha256_file(prepared_dir / "manifest.json")}
    set_aside_foreign_checkpoints(out_dir / "checkpoints", recipe, seed, checkpoint_identity)
    result = train_model(
        model, train, val if rows_of(val) else None, recipe, seed=seed, **stats,
        checkpoint_dir=out_dir / "checkpoints", on_epoch=log_epoch, progress=progress, input_size=input_size,
        sync_bn=sync_bn, stop_after_epoch=stop_after_epoch, identity=checkpoint_identity,
    )
    if distributed.is_main():
        write_log(log_path, result.history)  # complete even when the run resumed with nothing left to train
    return result


def _training_metrics(model: nn.Module, result: TrainResult, sync_bn: bool) -> dict[str, Any]:
    """What the training reached (last epoch, images, memory, world): no wall-clock figure."""
    last = result.history[-1]
    return {
        "val_acc": result.val_acc,
        "val_loss": result.val_loss,
        "train_acc": last["train_acc"],
        "train_loss": last["train_loss"],
        "epochs": len(result.history),
        "images_seen": result.images_seen,
        "peak_memory_bytes": result.peak_memory_bytes,  # rank 0's, under data parallelism
        "world_size": result.world_size,
        "sync_bn": sync_bn and result.world_size > 1,
        "params": sum(p.numel() for p in model.parameters()),
    }


def _provenance(recipe: TrainRecipe, seed: int, device: str) -> dict[str, Any]:
    return {
        "recipe": recipe.to_dict(),
        "seed": seed,
        "device": str(device),
        "device_name": _device_name(device),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
    }


def _timings(result: TrainResult) -> dict[str, Any]:
    """timings.json: the wall-clock figures kept out of metrics.json."""
    return {
        "seconds": result.seconds,
        # Median over epochs of training throughput: robust to the first epoch's warm-up/compile.
        "train_images_per_s": statistics.median(e["images_per_s"] for e in result.history),
        "resumed_from_epoch": result.resumed_from_epoch,
        "epochs": [{"epoch": e["epoch"], **{k: e.get(k) for k in EPOCH_TIMINGS}} for e in result.history],
    }


def read_metrics(out_dir: Path) -> dict[str, Any]:
    """metrics.json with the run's TIMING_KEYS from timings.json (where there is one) beside them."""
    metrics = read_json(Path(out_dir) / "metrics.json")
    timings_path = Path(out_dir) / "timings.json"
    if timings_path.exists():
        timings = read_json(timings_path)
        metrics.update({k: timings[k] for k in TIMING_KEYS if k in timings})
    return metrics


def check_num_classes(model: nn.Module, num_classes: int, prepared_dir: Path) -> None:
    """The last nn.Linear (the classifier, when the network has one) must emit num_classes logits."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if linears and linears[-1].out_features != num_classes:
        raise LmnasError(
            f"model's classifier has {linears[-1].out_features} outputs but {prepared_dir}/manifest.json "
            f"has num_classes={num_classes}; build the model for this dataset"
        )


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_log(path: Path, history: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in history)
    write_text(path, buffer.getvalue())


def set_aside_foreign_checkpoints(checkpoint_dir: Path, recipe: TrainRecipe, seed: int,
                                  identity: dict[str, Any]) -> None:
    """Checkpoints of another genotype, dataset, seed or recipe are moved aside (never resumed, never
    deleted): a rerun after the search found a new best trains it afresh."""
    from lmnas.training.checkpoint import load_latest
    from lmnas.training.loop import checkpoint_matches

    if not distributed.is_main():
        distributed.barrier()  # rank 0 decides and moves; the others then see the result
        return
    checkpoint = load_latest(checkpoint_dir)
    if checkpoint is not None and not checkpoint_matches(checkpoint.state, recipe, seed, identity):
        aside = aside_name(checkpoint_dir)
        checkpoint_dir.rename(aside)
        print(f"lmnas: {checkpoint_dir}: made for another run ({checkpoint.state.get('identity')}); moved to {aside}, "
              "training afresh", file=sys.stderr)
    distributed.barrier()


def aside_name(path: Path) -> Path:
    """`<name>.old-<time>`, numbered when two runs set folders aside within the same second."""
    stamp, n = time.strftime("%Y%m%dT%H%M%S"), 1
    aside = path.with_name(f"{path.name}.old-{stamp}")
    while aside.exists():
        aside, n = path.with_name(f"{path.name}.old-{stamp}-{n}"), n + 1
    return aside


def _finished(metrics_path: Path, recipe: TrainRecipe, seed: int, identity: dict[str, Any]) -> dict[str, Any]:
    metrics = read_metrics(metrics_path.parent)
    stored = {key: metrics.get(key) for key in identity}
    if metrics.get("recipe") != recipe.to_dict() or metrics.get("seed") != seed or stored != identity:
        raise LmnasError(
            f"{metrics_path}: a finished run with another setting is here (seed={metrics.get('seed')}, "
            f"recipe {metrics.get('recipe')}, {stored}); use another output folder or delete this one"
        )
    return metrics


def _device_name(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine()


def retrain_best(
    best_json: Path, prepared_dir: Path, out_dir: Path, recipe: dict[str, Any], *, seed: int, device: str = "auto",
    progress: bool = True, nproc: int | distributed.Topology = 1, sync_bn: bool = False,
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Retrain the best genotype of a search (its space rebuilt from best.json).

    `nproc` > 1 trains data-parallel in that many torchrun ranks on this node (one per
    GPU for device "cuda"; gloo processes for "cpu"); a `Topology` of several nodes
    starts them through srun inside a SLURM job (`distributed.launch`).
    `recipe["batch_size"]` is the global batch; the metrics are read back from the
    run's metrics.json.
    """
    from lmnas.device import resolve_device
    from lmnas.search.outputs import load_best

    train_recipe = TrainRecipe.from_dict(recipe, where="retrain.recipe")
    device = resolve_device(device)
    topology = nproc if isinstance(nproc, distributed.Topology) else distributed.Topology(ranks_per_node=nproc)
    if topology.world_size > 1:
        distributed.per_rank_batch(train_recipe.batch_size, topology.world_size, where="retrain.recipe.batch_size")
        args = retrain_args(best_json, prepared_dir, out_dir, recipe, seed=seed, device=device.split(":")[0],
                            progress=progress, sync_bn=sync_bn, stop_after_epoch=stop_after_epoch)
        distributed.launch("lmnas.retrain", args, topology)
        metrics_path = Path(out_dir) / "metrics.json"
        if metrics_path.exists():
            return read_metrics(Path(out_dir))
        return {"stage": "retrain", "complete": False, "epochs": len(read_log(Path(out_dir) / "log.csv"))}

    space, genotype, best = load_best(best_json)
    torch.manual_seed(seed)  # the same init on every rank (DDP also broadcasts rank 0's)
    model = space.build(genotype)
    return train_and_report(
        model, prepared_dir, out_dir, train_recipe, seed=seed, device=device, progress=progress,
        identity={"stage": "retrain", "genotype": best["genotype"], "space": space.name},
        sync_bn=sync_bn, stop_after_epoch=stop_after_epoch,
    )


def retrain_args(
    best_json: Path, prepared_dir: Path, out_dir: Path, recipe: dict[str, Any], *, seed: int, device: str,
    progress: bool = True, sync_bn: bool = False, stop_after_epoch: int | None = None,
) -> list[str]:
    """The command-line arguments of `python -m lmnas.retrain` for these settings."""
    args = [
        "--best", str(best_json), "--data", str(prepared_dir), "--out", str(out_dir),
        "--recipe-json", json.dumps(recipe), "--seed", str(seed), "--device", device,
    ]
    if not progress:
        args.append("--no-progress")
    if sync_bn:
        args.append("--sync-bn")
    if stop_after_epoch is not None:
        args += ["--stop-after-epoch", str(stop_after_epoch)]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m lmnas.retrain ...`: retrain best.json, one rank of a torchrun launch or a single process."""
    parser = argparse.ArgumentParser(prog="python -m lmnas.retrain", description=main.__doc__)
    parser.add_argument("--best", type=Path, required=True, help="search/best.json")
    parser.add_argument("--data", type=Path, required=True, help="prepared dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (resumes from its checkpoints)")
    parser.add_argument("--recipe-json", required=True, help="the training recipe as a JSON object")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (each rank takes cuda:LOCAL_RANK)")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across ranks (CUDA)")
    parser.add_argument("--stop-after-epoch", type=int, default=None, help="return after this many epochs")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    args = parser.parse_args(argv)
    try:
        from lmnas.device import resolve_device

        recipe = json.loads(args.recipe_json)
        if not isinstance(recipe, dict):
            raise LmnasError(f"--recipe-json: expected a JSON object, got {args.recipe_json!r}")
        with distributed.process_group(resolve_device(args.device)) as device:
            retrain_best(args.best, args.data, args.out, recipe, seed=args.seed, device=device,
                         progress=args.progress, sync_bn=args.sync_bn, stop_after_epoch=args.stop_after_epoch)
    except json.JSONDecodeError as error:
        print(f"lmnas: retrain: --recipe-json is not valid JSON ({error})", file=sys.stderr)
        sys.exit(1)
    except LmnasError as error:
        env = distributed.launch_env()
        where = f" (rank {env.rank} of {env.world_size})" if env is not None else ""
        print(f"lmnas: retrain{where}: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
