"""The training loop: uint8 batches normalised on the device, no per-step host syncs.

`train_model` reads in phases: the batch source (`lmnas.training.batches`: resident data with
GPU-side augmentation, the timm path, or encoded shards streamed by `lmnas.training.stream`),
place the model, resume, wrap for DDP, then per epoch: train (`_train_epoch`), validate, record,
checkpoint. A single process is world 1, rank 0; random streams are named in `lmnas.training.seeds`.

On CUDA it adds bf16 autocast, channels_last and fused SGD; on CPU the same steps
run in float32 and are bit-for-bit deterministic for a given seed, including across
a kill and resume (per-epoch generators are derived from (seed, epoch), so a
checkpoint needs only weights, optimiser state and history).

Data parallel (a process group of W > 1 ranks is initialised, see
`lmnas.training.distributed`): the model is wrapped in DistributedDataParallel; every
rank draws the same per-epoch permutation and global batches as a single process
would, and trains on its strided share of each (batch_size / W images), with its
own augmentation and dropout stream from (seed, epoch, rank). The loss is scaled so
that DDP's gradient average is the mean over the whole global batch. BatchNorm
keeps per-rank batch statistics unless `sync_bn`; running statistics are rank 0's
(broadcast at the end of every epoch, so all ranks hold the model rank 0 saves).
Train sums are all-reduced once per epoch; evaluation is sharded over the ranks and
all-reduced. Rank 0 alone writes checkpoints, calls `on_epoch` and shows progress.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm.auto import tqdm

from lmnas.errors import LmnasError
from lmnas.training import batches, distributed, timm_path
from lmnas.training.augment import normalize
from lmnas.training.checkpoint import load_latest, save_checkpoint
from lmnas.training.recipe import TrainRecipe, lr_at
from lmnas.training.seeds import Stream, derive_seed, seed_global_rng
from lmnas.training.stream import Data, EncodedSplit


@dataclass
class TrainResult:
    history: list[dict[str, Any]]  # one dict per finished epoch, resumed ones included
    val_loss: float | None
    val_acc: float | None
    seconds: float  # wall time of all epochs, over every call that contributed
    images_seen: int  # training images processed (epochs × N)
    peak_memory_bytes: int | None  # CUDA only, this call
    resumed_from_epoch: int = 0  # epochs loaded from a checkpoint rather than run by this call
    world_size: int = 1  # data-parallel ranks that trained (this call)


def train_model(
    model: nn.Module,
    train: Data | EncodedSplit,
    val: Data | EncodedSplit | None,
    recipe: TrainRecipe,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device,
    seed: int,
    trainable: Callable[[str, nn.Parameter], bool] | None = None,
    bn_only: bool = False,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
    input_size: int | None = None,
    sync_bn: bool = False,
    stop_after_epoch: int | None = None,
    identity: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `model` in place with SGD on `train`, evaluating on `val` after every epoch.

    The model is moved to `device` (channels_last on CUDA) and stays there. Resident data (uint8
    tensors) is moved once and stays resident; an `EncodedSplit` streams through DataLoader workers
    (`lmnas.training.stream`). The caller seeds the model's init; `seed` fixes shuffling,
    augmentation and dropout of every epoch (`lmnas.training.seeds`).

    `trainable(name, param)` and `bn_only` select the parameters that train (both
    must accept); the rest keep their values bit for bit (BatchNorm running
    statistics still update). `input_size` resizes batches on the device after
    normalisation (transfer at a larger input size). With `checkpoint_dir`, every
    epoch is checkpointed and a call resumes from the newest checkpoint there;
    `stop_after_epoch` ends the call once that many epochs are done (a time-sliced
    job; the next call resumes), so `history` may be shorter than `recipe.epochs`.

    Under a process group of W > 1 ranks (module docstring), every rank calls this
    with the same arguments; `recipe.batch_size` is the global batch and must be a
    multiple of W. `sync_bn` converts BatchNorm layers of `model` in place to
    SyncBatchNorm (CUDA only; same state-dict keys; without a group it changes nothing).
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    world, rank = distributed.world_size(), distributed.rank()  # 1 and 0 without a process group
    with ExitStack() as stack:
        data = batches.train_batches(train, recipe, device=device, mean=mean, std=std, input_size=input_size,
                                     seed=seed, world=world, rank=rank)
        stack.callback(data.close)
        val_batches = None
        if val is not None:
            val_batches = batches.EvalBatches(val, device=device, batch_size=recipe.eval_batch_size, world=world,
                                              rank=rank, input_size=input_size, recipe=recipe, split="val")
            stack.callback(val_batches.close)
        _check_run(data.images_per_epoch, recipe, world, sync_bn, cuda, stop_after_epoch)
        model = _place(model, device, sync_bn and world > 1)
        criterion = timm_path.criterion(recipe) if recipe.uses_timm else nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        ema = timm_path.make_ema(model, recipe)  # recipe.uses_timm: timm's loss and EMA (lmnas.training.timm_path)
        eval_model = torch.compile(model) if recipe.compile else model
        # Dropout and other global-RNG users are re-seeded per epoch inside a fork, so the
        # caller's RNG state is left untouched and resuming needs no RNG state.
        fork_devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
        with _only_training(model, trainable, bn_only) as params, torch.random.fork_rng(devices=fork_devices):
            optimizer = _make_optimizer(timm_path.param_groups(params, model, recipe), recipe, cuda)
            history = _resume(checkpoint_dir, model, optimizer, ema, recipe, seed, identity, world)
            start_epoch = len(history)
            step_model = _wrap_for_ddp(model, recipe, device, world) or eval_model
            end_epoch = recipe.epochs if stop_after_epoch is None else min(recipe.epochs, stop_after_epoch)
            rank_key = rank if world > 1 else None  # a single process keeps the seeds of its recorded results
            for epoch in range(start_epoch, end_epoch):
                seed_global_rng(derive_seed(seed, epoch, Stream.GLOBAL_RNG, rank_key), device)
                started = time.perf_counter()
                trained = _train_epoch(step_model, model, data, epoch, optimizer, criterion, ema, recipe, device,
                                       progress and rank == 0)
                scores = _validate(eval_model, ema, val_batches, mean, std, input_size, device)
                history.append(_record(epoch, trained, scores, started, ema is not None))
                _end_epoch(history, model, optimizer, ema, data.steps_per_epoch, checkpoint_dir, on_epoch, recipe,
                           seed, identity, world, rank, progress)
    return _result(model, ema, history, data.images_per_epoch, device, start_epoch, world)


def _check_run(images: int, recipe: TrainRecipe, world: int, sync_bn: bool, cuda: bool,
               stop_after_epoch: int | None) -> None:
    if stop_after_epoch is not None and stop_after_epoch < 1:
        raise LmnasError(f"stop_after_epoch={stop_after_epoch} (expected >= 1 or None)")
    distributed.per_rank_batch(recipe.batch_size, world)
    if images < world:
        raise LmnasError(f"train split has {images} images, fewer than the {world} data-parallel ranks")
    if sync_bn and world > 1 and not cuda:
        raise LmnasError("sync_bn: SyncBatchNorm needs CUDA devices; leave it off for CPU data-parallel runs")


def _place(model: nn.Module, device: torch.device, sync_bn: bool) -> nn.Module:
    """The model on its device (channels_last on CUDA); SyncBatchNorm layers when asked (converted in place)."""
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same parameters and buffers, returns `model`
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(device)
    return model


def _resume(checkpoint_dir: Path | None, model: nn.Module, optimizer: torch.optim.Optimizer, ema: nn.Module | None,
            recipe: TrainRecipe, seed: int, identity: dict[str, Any] | None, world: int) -> list[dict[str, Any]]:
    """Load the newest checkpoint of `checkpoint_dir` (when it is this run's); return its history (finished epochs)."""
    checkpoint = load_latest(checkpoint_dir) if checkpoint_dir is not None else None
    if checkpoint is None:
        return []
    _check_compatible(checkpoint.state, recipe, seed, checkpoint_dir, identity)
    # Per-rank seed streams and batch shares depend on the world size: another one would not continue this run.
    saved_world = checkpoint.state.get("world_size", 1)  # checkpoints before data parallelism: one process
    if saved_world != world:
        raise LmnasError(
            f"{checkpoint_dir / f'epoch-{checkpoint.epoch:04d}.pt'}: checkpoint was made by {saved_world} "
            f"data-parallel rank(s), this run has {world}; resume it with {saved_world}, or delete the folder "
            "to start afresh"
        )
    model.load_state_dict(checkpoint.weights)
    optimizer.load_state_dict(checkpoint.state["optimizer"])
    if ema is not None:
        ema.module.load_state_dict(checkpoint.state["ema"])
    return list(checkpoint.state["history"])


def _wrap_for_ddp(model: nn.Module, recipe: TrainRecipe, device: torch.device, world: int) -> nn.Module | None:
    """DistributedDataParallel around `model` under a process group of W > 1 ranks (None otherwise).

    After loading: DDP broadcasts rank 0's parameters here, and we its buffers (older torch skips
    them with broadcast_buffers=False). Buffers are not re-broadcast every forward but once per
    epoch, which leaves the same rank-0 running statistics at the end of an epoch without a
    per-step collective.
    """
    if world == 1:
        return None
    wrapped = nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, **_no_forward_buffer_sync()
    )
    distributed.broadcast_buffers(model)
    return torch.compile(wrapped) if recipe.compile else wrapped


def _train_epoch(step_model: nn.Module, model: nn.Module, data: batches.ResidentBatches | batches.StreamedBatches,
                 epoch: int, optimizer: torch.optim.Optimizer, criterion: nn.Module, ema: nn.Module | None,
                 recipe: TrainRecipe, device: torch.device, show: bool) -> dict[str, Any]:
    """One pass over this rank's batches; the sums are all-reduced once at the end (the one host sync)."""
    started = time.perf_counter()
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    steps = data.steps_per_epoch
    bar = tqdm(data.epoch(epoch), total=steps, desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not show,
               leave=False)
    for i, batch in enumerate(bar):
        step = epoch * steps + i
        lr = lr_at(recipe, step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = step_model(batch.inputs)
        loss = criterion(logits.float(), batch.labels)
        optimizer.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks; the scale makes that the global-batch mean (exactly 1.0 alone).
        (loss * batch.loss_scale).backward()
        optimizer.step()
        if ema is not None:
            if step < round(recipe.warmup_epochs * steps):
                ema.set(model)  # during warm-up the EMA copies the weights (as GENIUS resets it)
            elif step % recipe.ema_steps == 0:
                ema.update(model)
        loss_sum += loss.detach() * batch.labels.shape[0]
        correct += (logits.detach().argmax(1) == batch.labels).sum()
    bar.close()
    totals = distributed.all_reduce_sum(torch.stack([loss_sum.double(), correct.double()]))
    distributed.broadcast_buffers(model)  # rank 0's running statistics everywhere (no-op alone)
    train_seconds = time.perf_counter() - started
    images = data.images_per_epoch
    return {"lr": lr,  # of the epoch's last step
            "train_loss": totals[0].item() / images, "train_acc": round(totals[1].item()) / images,
            "images_per_s": images / train_seconds}


def _validate(eval_model: nn.Module, ema: nn.Module | None, val: batches.EvalBatches | None, mean: Sequence[float],
              std: Sequence[float], input_size: int | None, device: torch.device) -> dict[str, Any]:
    """Validation loss and accuracy of the model (and of its EMA); None without a val split."""
    if val is None:
        return {}
    stats = dict(mean=mean, std=std, device=device, input_size=input_size)
    val_loss, val_acc = _evaluate(eval_model, val, **stats)
    scores: dict[str, Any] = {"val_loss": val_loss, "val_acc": val_acc}
    if ema is not None:
        scores["val_loss_ema"], scores["val_acc_ema"] = _evaluate(ema.module, val, **stats)
    return scores


def _record(epoch: int, trained: dict[str, Any], scores: dict[str, Any], started: float, ema: bool) -> dict[str, Any]:
    """One epoch's history entry (the keys of log.csv, then the EMA's validation scores)."""
    entry = {"epoch": epoch + 1, "lr": trained["lr"], "train_loss": trained["train_loss"],
             "train_acc": trained["train_acc"], "val_loss": scores.get("val_loss"), "val_acc": scores.get("val_acc"),
             "seconds": time.perf_counter() - started, "images_per_s": trained["images_per_s"]}
    if ema:
        entry.update(val_loss_ema=scores.get("val_loss_ema"), val_acc_ema=scores.get("val_acc_ema"))
    return entry


def _end_epoch(history: list[dict[str, Any]], model: nn.Module, optimizer: torch.optim.Optimizer,
               ema: nn.Module | None, steps_per_epoch: int, checkpoint_dir: Path | None,
               on_epoch: Callable[[dict[str, Any]], None] | None, recipe: TrainRecipe, seed: int,
               identity: dict[str, Any] | None, world: int, rank: int, progress: bool) -> None:
    """After the record: the progress line, the checkpoint (rank 0), the barrier, the callback."""
    record = history[-1]
    main = rank == 0
    if progress and main:
        tqdm.write(_describe(record, recipe.epochs))
    if checkpoint_dir is not None and main:
        state = {
            "optimizer": optimizer.state_dict(),
            "step": record["epoch"] * steps_per_epoch,
            "history": history,
            "seed": seed,
            "recipe": recipe.to_dict(),
            "identity": identity,  # what is trained (genotype, data…): resume only the same
            "torch": str(torch.__version__),
            "world_size": world,
        }
        if ema is not None:
            state["ema"] = {k: v.detach().cpu() for k, v in ema.module.state_dict().items()}
        save_checkpoint(checkpoint_dir, record["epoch"], model, state)
    distributed.barrier()  # no rank starts epoch k+1 before checkpoint k is complete (no-op alone)
    if on_epoch is not None and main:
        on_epoch(dict(record))


def _result(model: nn.Module, ema: nn.Module | None, history: list[dict[str, Any]], images_per_epoch: int,
            device: torch.device, start_epoch: int, world: int) -> TrainResult:
    last = history[-1]
    if ema is not None:  # the EMA weights are the trained network (GENIUS reports the EMA model)
        model.load_state_dict(ema.module.state_dict())
        last = {**last, "val_loss": last.get("val_loss_ema"), "val_acc": last.get("val_acc_ema")}
    return TrainResult(
        history=history,
        val_loss=last["val_loss"],
        val_acc=last["val_acc"],
        seconds=sum(e["seconds"] for e in history),
        images_seen=images_per_epoch * len(history),
        peak_memory_bytes=torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        resumed_from_epoch=start_epoch,
        world_size=world,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Data | EncodedSplit,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device,
    batch_size: int,
    input_size: int | None = None,
    shard: bool = False,
    recipe: TrainRecipe | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on `data` (uint8 images and int64 labels, or an EncodedSplit).

    With `shard` under a process group of W > 1 ranks, every rank (all must call it,
    with the same model) evaluates a contiguous 1/W of `data` and the sums are
    all-reduced; every rank returns the result for the whole of `data`. Encoded data needs
    `recipe` (its eval crop_fraction and workers).
    """
    device = torch.device(device)
    world, rank = (distributed.world_size(), distributed.rank()) if shard else (1, 0)
    source = batches.EvalBatches(data, device=device, batch_size=batch_size, world=world, rank=rank,
                                 input_size=input_size, recipe=recipe)
    try:
        return _evaluate(model, source, mean=mean, std=std, device=device, input_size=input_size)
    finally:
        source.close()


@torch.no_grad()
def _evaluate(model: nn.Module, source: batches.EvalBatches, *, mean: Sequence[float], std: Sequence[float],
              device: torch.device, input_size: int | None) -> tuple[float, float]:
    cuda = device.type == "cuda"
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for images, target in source:
        inputs = batches.resize(normalize(images, mean_t, std_t), input_size, cuda)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(inputs)
        loss_sum += F.cross_entropy(logits.float(), target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    model.train(was_training)
    n = source.rows
    if source.world > 1:
        totals = distributed.all_reduce_sum(torch.stack([loss_sum.double(), correct.double()]))
        return totals[0].item() / n, round(totals[1].item()) / n
    return float(loss_sum) / n, int(correct) / n


@contextmanager
def _only_training(
    model: nn.Module, trainable: Callable[[str, nn.Parameter], bool] | None, bn_only: bool
) -> Iterator[list[nn.Parameter]]:
    """Freeze the parameters the filters reject; yield the rest; put every requires_grad flag back."""
    bn_params = {id(p) for m in model.modules() if isinstance(m, _BatchNorm) for p in m.parameters(recurse=False)}
    original = [(param, param.requires_grad) for param in model.parameters()]
    selected = []
    for name, param in model.named_parameters():
        keep = param.requires_grad and (trainable is None or trainable(name, param))
        keep = keep and (not bn_only or id(param) in bn_params)
        param.requires_grad_(keep)
        if keep:
            selected.append(param)
    try:
        if not selected:
            what = "bn_only=True" if bn_only else "the `trainable` filter"
            raise LmnasError(f"no parameter left to train: {what} rejected all {len(original)} parameters")
        yield selected
    finally:
        for param, flag in original:
            param.requires_grad_(flag)


def _make_optimizer(params: list[dict[str, Any]], recipe: TrainRecipe, cuda: bool) -> torch.optim.SGD:
    kwargs: dict[str, Any] = dict(
        lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=recipe.nesterov
    )
    if cuda:
        kwargs["fused"] = True  # one kernel for the whole update
    return torch.optim.SGD(params, **kwargs)


def _no_forward_buffer_sync() -> dict[str, bool]:
    """DDP keyword that stops the per-forward buffer broadcast (still synced once at init).

    torch 2.11 spells it broadcast_buffers=False; later versions deprecate that for
    forward_sync_buffers=False.
    """
    parameters = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in parameters else {"broadcast_buffers": False}


def checkpoint_matches(state: dict[str, Any], recipe: TrainRecipe, seed: int, identity: dict[str, Any] | None) -> bool:
    return (state.get("recipe") == recipe.to_dict() and state.get("seed") == seed
            and state.get("identity") == identity)


def _check_compatible(state: dict[str, Any], recipe: TrainRecipe, seed: int, checkpoint_dir: Path,
                      identity: dict[str, Any] | None) -> None:
    if not checkpoint_matches(state, recipe, seed, identity):
        raise LmnasError(
            f"{checkpoint_dir}: checkpoint was made with seed={state.get('seed')}, recipe {state.get('recipe')} and "
            f"{state.get('identity')}, not seed={seed}, {recipe.to_dict()} and {identity}; delete the folder or use "
            "another output folder"
        )


def _describe(entry: dict[str, Any], epochs: int) -> str:
    val = "" if entry["val_acc"] is None else f" val_loss {entry['val_loss']:.4f} val_acc {entry['val_acc']:.4f}"
    return (
        f"epoch {entry['epoch']}/{epochs} lr {entry['lr']:.5f} train_loss {entry['train_loss']:.4f} "
        f"train_acc {entry['train_acc']:.4f}{val} {entry['seconds']:.1f}s {entry['images_per_s']:.0f} img/s"
    )
