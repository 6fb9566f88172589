"""The training loop: device-resident uint8 data, batch-wide GPU-side augmentation, no per-step host syncs.

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm.auto import tqdm

from lmnas.errors import LmnasError
from lmnas.training import distributed, timm_path
from lmnas.training.augment import augment_batch, normalize
from lmnas.training.checkpoint import load_latest, save_checkpoint
from lmnas.training.recipe import TrainRecipe, lr_at

Data = tuple[Tensor, Tensor]  # (uint8 images [N,C,H,W], int64 labels [N])


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
    train: Data,
    val: Data | None,
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

    The model is moved to `device` (channels_last on CUDA) and stays there; the data
    is moved once and stays resident. The caller seeds the model's init; `seed` fixes
    shuffling, augmentation and dropout of every epoch.

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
    # The timm path augments on the CPU: its images stay in host memory (only labels move).
    train_x, train_y = _to_device(train, torch.device("cpu") if recipe.uses_timm else device, "train")
    train_y = train_y.to(device)
    val_data = _to_device(val, device, "val") if val is not None else None
    n_train = train_x.shape[0]
    steps_per_epoch = math.ceil(n_train / recipe.batch_size)
    if stop_after_epoch is not None and stop_after_epoch < 1:
        raise LmnasError(f"stop_after_epoch={stop_after_epoch} (expected >= 1 or None)")
    ddp = distributed.is_distributed()
    world, rank, main = distributed.world_size(), distributed.rank(), distributed.is_main()
    if ddp:
        distributed.per_rank_batch(recipe.batch_size, world)
        if n_train < world:
            raise LmnasError(f"train split has {n_train} images, fewer than the {world} data-parallel ranks")
        if sync_bn and not cuda:
            raise LmnasError("sync_bn: SyncBatchNorm needs CUDA devices; leave it off for CPU data-parallel runs")
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)

    if ddp and sync_bn:
        # Converts child modules in place (same parameters and buffers) and returns `model`.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(device)
    # recipe.uses_timm: timm's per-image transforms, loss and EMA (lmnas.training.timm_path)
    timm_transform = timm_path.train_transform(recipe, train_x.shape[-1], mean, std) if recipe.uses_timm else None
    criterion = timm_path.criterion(recipe) if recipe.uses_timm else nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    ema = timm_path.make_ema(model, recipe)
    step_model = eval_model = torch.compile(model) if recipe.compile else model
    # Dropout and other global-RNG users are re-seeded per epoch inside a fork, so the
    # caller's RNG state is left untouched and resuming needs no RNG state.
    fork_devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with _only_training(model, trainable, bn_only) as params, torch.random.fork_rng(devices=fork_devices):
        optimizer = _make_optimizer(timm_path.param_groups(params, model, recipe), recipe, cuda)
        history: list[dict[str, Any]] = []
        start_epoch = 0
        checkpoint = load_latest(checkpoint_dir) if checkpoint_dir is not None else None
        if checkpoint is not None:
            _check_compatible(checkpoint.state, recipe, seed, checkpoint_dir, identity)
            model.load_state_dict(checkpoint.weights)
            optimizer.load_state_dict(checkpoint.state["optimizer"])
            history = list(checkpoint.state["history"])
            start_epoch = checkpoint.epoch
            if ema is not None:
                ema.module.load_state_dict(checkpoint.state["ema"])
        if ddp:
            # After loading: DDP broadcasts rank 0's parameters here, and we its buffers
            # (older torch skips them with broadcast_buffers=False). Buffers are not
            # re-broadcast every forward but once per epoch below, which leaves the same
            # rank-0 running statistics at the end of an epoch without a per-step collective.
            wrapped = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if cuda else None, **_no_forward_buffer_sync()
            )
            distributed.broadcast_buffers(model)
            step_model = torch.compile(wrapped) if recipe.compile else wrapped
        end_epoch = recipe.epochs if stop_after_epoch is None else min(recipe.epochs, stop_after_epoch)

        for epoch in range(start_epoch, end_epoch):
            _seed_global_rng(_derive_seed(seed, epoch, 1, rank if ddp else None), device)
            started = time.perf_counter()
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            if ddp:
                # The same permutation on every rank, drawn on the CPU so that it cannot
                # depend on the device; augmentation from this rank's own stream.
                shuffle = torch.Generator().manual_seed(_derive_seed(seed, epoch, 0))
                order = torch.randperm(n_train, generator=shuffle).to(device)
                generator = torch.Generator(device=device).manual_seed(_derive_seed(seed, epoch, 2, rank))
            else:
                generator = torch.Generator(device=device).manual_seed(_derive_seed(seed, epoch, 0))
                order = torch.randperm(n_train, generator=generator, device=device)
            # Near-equal batches (sizes differ by at most one): every image is used and
            # no tiny trailing batch trips BatchNorm.
            batches = torch.tensor_split(order, steps_per_epoch)
            if timm_transform is not None:  # this rank's share of every batch, augmented on the CPU
                shares = [(b[rank::world] if ddp else b).cpu() for b in batches]
                seeds = [_derive_seed(seed, epoch, 3 + i, rank if ddp else None) for i in range(len(batches))]
                augmented = timm_path.epoch_batches(train_x, shares, seeds, timm_transform, recipe.augment_workers)
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not (progress and main), leave=False)
            for i, index in enumerate(bar):
                lr = lr_at(recipe, epoch * steps_per_epoch + i, steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                global_batch = index.shape[0]
                if ddp:
                    index = index[rank::world]  # this rank's share: global_batch/W images (±1)
                if timm_transform is not None:
                    inputs = next(augmented)
                    inputs = inputs.pin_memory().to(device, non_blocking=True) if cuda else inputs
                    inputs = _resize(inputs, input_size, cuda)
                else:
                    images = augment_batch(train_x[index], generator, recipe.crop_padding, recipe.flip)
                    inputs = _prepare_inputs(images, mean_t, std_t, input_size, cuda)
                labels = train_y[index]
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
                    logits = step_model(inputs)
                loss = criterion(logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                if ddp:
                    # DDP averages gradients over ranks; weighting each rank's mean by
                    # W·b_rank/b_global makes that average the global-batch mean (1.0 when
                    # the shares are equal).
                    (loss * (world * labels.shape[0] / global_batch)).backward()
                else:
                    loss.backward()
                optimizer.step()
                if ema is not None:
                    step = epoch * steps_per_epoch + i
                    if step < round(recipe.warmup_epochs * steps_per_epoch):
                        ema.set(model)  # during warm-up the EMA copies the weights (as GENIUS resets it)
                    elif step % recipe.ema_steps == 0:
                        ema.update(model)
                loss_sum += loss.detach() * labels.shape[0]
                correct += (logits.detach().argmax(1) == labels).sum()
            bar.close()
            if ddp:
                totals = distributed.all_reduce_sum(torch.stack([loss_sum.double(), correct.double()]))
                train_loss, train_correct = totals[0].item(), round(totals[1].item())  # one sync per epoch
                distributed.broadcast_buffers(model)
            else:
                train_loss, train_correct = float(loss_sum), int(correct)  # the one host sync per epoch
            train_seconds = time.perf_counter() - started
            val_loss, val_acc = (None, None)
            if val_data is not None:
                val_loss, val_acc = evaluate(
                    eval_model, val_data, mean=mean, std=std, device=device,
                    batch_size=recipe.eval_batch_size, input_size=input_size, shard=True,
                )
            ema_loss, ema_acc = (None, None)
            if ema is not None and val_data is not None:
                ema_loss, ema_acc = evaluate(
                    ema.module, val_data, mean=mean, std=std, device=device,
                    batch_size=recipe.eval_batch_size, input_size=input_size, shard=True,
                )
            entry = {
                "epoch": epoch + 1,
                "lr": lr,  # of the epoch's last step
                "train_loss": train_loss / n_train,
                "train_acc": train_correct / n_train,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "seconds": time.perf_counter() - started,
                "images_per_s": n_train / train_seconds,
            }
            if ema is not None:
                entry.update(val_loss_ema=ema_loss, val_acc_ema=ema_acc)
            history.append(entry)
            if progress and main:
                tqdm.write(_describe(entry, recipe.epochs))
            if checkpoint_dir is not None and main:
                state = {
                    "optimizer": optimizer.state_dict(),
                    "step": (epoch + 1) * steps_per_epoch,
                    "history": history,
                    "seed": seed,
                    "recipe": recipe.to_dict(),
                    "identity": identity,  # what is trained (genotype, data…): resume only the same
                    "torch": str(torch.__version__),
                    "world_size": world,
                }
                if ema is not None:
                    state["ema"] = {k: v.detach().cpu() for k, v in ema.module.state_dict().items()}
                save_checkpoint(checkpoint_dir, epoch + 1, model, state)
            if ddp:
                distributed.barrier()  # no rank starts epoch k+1 before checkpoint k is complete
            if on_epoch is not None and main:
                on_epoch(dict(entry))

    last = history[-1]
    if ema is not None:  # the EMA weights are the trained network (GENIUS reports the EMA model)
        model.load_state_dict(ema.module.state_dict())
        last = {**last, "val_loss": last.get("val_loss_ema"), "val_acc": last.get("val_acc_ema")}
    return TrainResult(
        history=history,
        val_loss=last["val_loss"],
        val_acc=last["val_acc"],
        seconds=sum(e["seconds"] for e in history),
        images_seen=n_train * len(history),
        peak_memory_bytes=torch.cuda.max_memory_allocated(device) if cuda else None,
        resumed_from_epoch=start_epoch,
        world_size=world,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Data,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device,
    batch_size: int,
    input_size: int | None = None,
    shard: bool = False,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on `data` (uint8 images, int64 labels).

    With `shard` under a process group of W > 1 ranks, every rank (all must call it,
    with the same model) evaluates a contiguous 1/W of `data` and the sums are
    all-reduced; every rank returns the result for the whole of `data`.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    images, labels = _to_device(data, device, "eval")
    n = images.shape[0]
    begin, end = 0, n
    ddp = shard and distributed.is_distributed()
    if ddp:
        world, rank = distributed.world_size(), distributed.rank()
        begin, end = n * rank // world, n * (rank + 1) // world
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(begin, end, batch_size):
        stop = min(start + batch_size, end)
        inputs = _prepare_inputs(images[start:stop], mean_t, std_t, input_size, cuda)
        target = labels[start:stop]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(inputs)
        loss_sum += F.cross_entropy(logits.float(), target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    model.train(was_training)
    if ddp:
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


def _prepare_inputs(images: Tensor, mean: Tensor, std: Tensor, input_size: int | None, cuda: bool) -> Tensor:
    inputs = normalize(images, mean, std)
    if input_size is not None and inputs.shape[-2:] != (input_size, input_size):
        inputs = F.interpolate(inputs, size=(input_size, input_size), mode="bilinear", antialias=True)
    if cuda:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def _resize(inputs: Tensor, input_size: int | None, cuda: bool) -> Tensor:
    if input_size is not None and inputs.shape[-2:] != (input_size, input_size):
        inputs = F.interpolate(inputs, size=(input_size, input_size), mode="bilinear", antialias=True)
    return inputs.contiguous(memory_format=torch.channels_last) if cuda else inputs


def _to_device(data: Data, device: torch.device, split: str) -> Data:
    images, labels = data
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise LmnasError(f"{split} images: expected uint8 [N,C,H,W], got {images.dtype} {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise LmnasError(f"{split} labels: expected shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if images.shape[0] == 0:
        raise LmnasError(f"{split} split is empty")
    return images.to(device), labels.to(device=device, dtype=torch.int64)


def _derive_seed(seed: int, epoch: int, stream: int, rank: int | None = None) -> int:
    """Independent 63-bit seed per (seed, epoch, stream[, rank]).

    Streams: 0 = shuffle (and augmentation, single-process), 1 = global RNG (dropout),
    2 = augmentation of one data-parallel rank. `rank` is given only in data-parallel runs.
    """
    entropy = [seed, epoch, stream] if rank is None else [seed, epoch, stream, rank]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


def _seed_global_rng(seed: int, device: torch.device) -> None:
    """Seed the default generators the model may draw from (dropout): CPU, and the one CUDA device."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


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
