"""The training loop: device-resident uint8 data, batch-wide GPU-side augmentation, no per-step host syncs.

On CUDA it adds bf16 autocast, channels_last and fused SGD; on CPU the same steps
run in float32 and are bit-for-bit deterministic for a given seed, including across
a kill and resume (per-epoch generators are derived from (seed, epoch), so a
checkpoint needs only weights, optimiser state and history).
"""

from __future__ import annotations

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
) -> TrainResult:
    """Train `model` in place with SGD on `train`, evaluating on `val` after every epoch.

    The model is moved to `device` (channels_last on CUDA) and stays there; the data
    is moved once and stays resident. The caller seeds the model's init; `seed` fixes
    shuffling, augmentation and dropout of every epoch.

    `trainable(name, param)` and `bn_only` select the parameters that train (both
    must accept); the rest keep their values bit for bit (BatchNorm running
    statistics still update). `input_size` resizes batches on the device after
    normalisation (transfer at a larger input size). With `checkpoint_dir`, every
    epoch is checkpointed and a call resumes from the newest checkpoint there.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    train_x, train_y = _to_device(train, device, "train")
    val_data = _to_device(val, device, "val") if val is not None else None
    n_train = train_x.shape[0]
    steps_per_epoch = math.ceil(n_train / recipe.batch_size)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)

    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats(device)
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    step_model = torch.compile(model) if recipe.compile else model
    # Dropout and other global-RNG users are re-seeded per epoch inside a fork, so the
    # caller's RNG state is left untouched and resuming needs no RNG state.
    fork_devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with _only_training(model, trainable, bn_only) as params, torch.random.fork_rng(devices=fork_devices):
        optimizer = _make_optimizer(params, recipe, cuda)
        history: list[dict[str, Any]] = []
        start_epoch = 0
        checkpoint = load_latest(checkpoint_dir) if checkpoint_dir is not None else None
        if checkpoint is not None:
            _check_compatible(checkpoint.state, recipe, seed, checkpoint_dir)
            model.load_state_dict(checkpoint.weights)
            optimizer.load_state_dict(checkpoint.state["optimizer"])
            history = list(checkpoint.state["history"])
            start_epoch = checkpoint.epoch

        for epoch in range(start_epoch, recipe.epochs):
            _seed_global_rng(_derive_seed(seed, epoch, 1), device)
            generator = torch.Generator(device=device).manual_seed(_derive_seed(seed, epoch, 0))
            started = time.perf_counter()
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            order = torch.randperm(n_train, generator=generator, device=device)
            # Near-equal batches (sizes differ by at most one): every image is used and
            # no tiny trailing batch trips BatchNorm.
            batches = torch.tensor_split(order, steps_per_epoch)
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not progress, leave=False)
            for i, index in enumerate(bar):
                lr = lr_at(recipe, epoch * steps_per_epoch + i, steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images = augment_batch(train_x[index], generator, recipe.crop_padding, recipe.flip)
                inputs = _prepare_inputs(images, mean_t, std_t, input_size, cuda)
                labels = train_y[index]
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
                    logits = step_model(inputs)
                loss = criterion(logits.float(), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * labels.shape[0]
                correct += (logits.detach().argmax(1) == labels).sum()
            bar.close()
            train_loss, train_correct = float(loss_sum), int(correct)  # the one host sync per epoch
            train_seconds = time.perf_counter() - started
            val_loss, val_acc = (None, None)
            if val_data is not None:
                val_loss, val_acc = evaluate(
                    step_model, val_data, mean=mean, std=std, device=device,
                    batch_size=recipe.eval_batch_size, input_size=input_size,
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
            history.append(entry)
            if progress:
                tqdm.write(_describe(entry, recipe.epochs))
            if checkpoint_dir is not None:
                state = {
                    "optimizer": optimizer.state_dict(),
                    "step": (epoch + 1) * steps_per_epoch,
                    "history": history,
                    "seed": seed,
                    "recipe": recipe.to_dict(),
                    "torch": str(torch.__version__),
                }
                save_checkpoint(checkpoint_dir, epoch + 1, model, state)
            if on_epoch is not None:
                on_epoch(dict(entry))

    last = history[-1]
    return TrainResult(
        history=history,
        val_loss=last["val_loss"],
        val_acc=last["val_acc"],
        seconds=sum(e["seconds"] for e in history),
        images_seen=n_train * len(history),
        peak_memory_bytes=torch.cuda.max_memory_allocated(device) if cuda else None,
        resumed_from_epoch=start_epoch,
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
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on `data` (uint8 images, int64 labels)."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    images, labels = _to_device(data, device, "eval")
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, images.shape[0], batch_size):
        inputs = _prepare_inputs(images[start : start + batch_size], mean_t, std_t, input_size, cuda)
        target = labels[start : start + batch_size]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(inputs)
        loss_sum += F.cross_entropy(logits.float(), target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    model.train(was_training)
    n = images.shape[0]
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


def _make_optimizer(params: list[nn.Parameter], recipe: TrainRecipe, cuda: bool) -> torch.optim.SGD:
    kwargs: dict[str, Any] = dict(
        lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=recipe.nesterov
    )
    if cuda:
        kwargs["fused"] = True  # one kernel for the whole update
    return torch.optim.SGD(params, **kwargs)


def _prepare_inputs(images: Tensor, mean: Tensor, std: Tensor, input_size: int | None, cuda: bool) -> Tensor:
    inputs = normalize(images, mean, std)
    if input_size is not None and inputs.shape[-2:] != (input_size, input_size):
        inputs = F.interpolate(inputs, size=(input_size, input_size), mode="bilinear", antialias=True)
    if cuda:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def _to_device(data: Data, device: torch.device, split: str) -> Data:
    images, labels = data
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise LmnasError(f"{split} images: expected uint8 [N,C,H,W], got {images.dtype} {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise LmnasError(f"{split} labels: expected shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if images.shape[0] == 0:
        raise LmnasError(f"{split} split is empty")
    return images.to(device), labels.to(device=device, dtype=torch.int64)


def _derive_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent 63-bit seed per (seed, epoch, stream): 0 = shuffle/augment, 1 = global RNG."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _seed_global_rng(seed: int, device: torch.device) -> None:
    """Seed the default generators the model may draw from (dropout): CPU, and the one CUDA device."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


def _check_compatible(state: dict[str, Any], recipe: TrainRecipe, seed: int, checkpoint_dir: Path) -> None:
    if state.get("recipe") != recipe.to_dict() or state.get("seed") != seed:
        raise LmnasError(
            f"{checkpoint_dir}: checkpoint was made with seed={state.get('seed')} and recipe {state.get('recipe')}, "
            f"not seed={seed} and {recipe.to_dict()}; delete the folder or use another output folder"
        )


def _describe(entry: dict[str, Any], epochs: int) -> str:
    val = "" if entry["val_acc"] is None else f" val_loss {entry['val_loss']:.4f} val_acc {entry['val_acc']:.4f}"
    return (
        f"epoch {entry['epoch']}/{epochs} lr {entry['lr']:.5f} train_loss {entry['train_loss']:.4f} "
        f"train_acc {entry['train_acc']:.4f}{val} {entry['seconds']:.1f}s {entry['images_per_s']:.0f} img/s"
    )
