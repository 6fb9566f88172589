"""Training recipes (optimiser + schedule + augmentation) and the per-step learning rate."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lmnas.errors import LmnasError
from lmnas.fields import check_keys

Schedule = Literal["step", "cosine", "constant", "linear-warmup"]
# linear-warmup: the lr rises linearly over the whole run and peaks at `lr` on the last step
# (GPT-NAS's proxy: "linearly incremented to 0.01" over its 6 epochs).
SCHEDULES: tuple[str, ...] = ("step", "cosine", "constant", "linear-warmup")


@dataclass(frozen=True)
class TrainRecipe:
    """SGD training settings. Epoch-valued fields count whole passes over the train split."""

    epochs: int
    batch_size: int
    lr: float  # peak learning rate, reached at the end of warm-up
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    warmup_epochs: float = 0.0  # linear per-step warm-up from lr/warmup_steps to lr
    schedule: Schedule = "step"
    step_size: int = 100  # "step": multiply by gamma every step_size epochs
    gamma: float = 0.1
    label_smoothing: float = 0.0
    crop_padding: int = 4  # pixels of zero padding for the random crop; 0 disables it
    flip: bool = True  # random horizontal flip
    compile: bool = False  # torch.compile the model
    eval_batch_size: int = 1024
    # The timm path (ImageNet recipes such as GENIUS's, timm 0.6.12 in its code), chosen when any
    # of these is set; the plain GPU-side path above stays the fast path for small recipes.
    rand_augment: str | None = None  # timm RandAugment policy, e.g. "rand-m9-mstd0.5"
    random_erasing: float = 0.0  # timm RandomErasing probability ("pixel" mode)
    random_resized_crop: bool = False  # timm RandomResizedCropAndInterpolation instead of the padded crop
    ema_decay: float | None = None  # timm ModelEmaV2: EMA of the weights, evaluated and kept at the end
    ema_steps: int = 1  # update the EMA every this many optimiser steps
    norm_weight_decay: float | None = None  # weight decay of normalisation layers (None: weight_decay)
    augment_workers: int = 0  # DataLoader processes preparing timm-path / streamed batches ahead (0: in the loop)
    # Encoded (large-image) data, lmnas.training.stream: eval resize → centre crop keeps this fraction
    # (timm's ImageNet default: 256 → 224); rows shuffled together within an epoch; an encoded split
    # whose decoded pixels exceed resident_max_mb streams through DataLoader workers instead of staying resident.
    crop_fraction: float = 0.875
    shuffle_window: int = 4096
    resident_max_mb: float = 2048.0

    @property
    def uses_timm(self) -> bool:
        return bool(self.rand_augment or self.random_erasing or self.random_resized_crop or self.ema_decay)

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs={self.epochs} (expected >= 1)")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            problems.append(f"batch_size={self.batch_size}, eval_batch_size={self.eval_batch_size} (expected >= 1)")
        if not self.lr > 0:
            problems.append(f"lr={self.lr} (expected > 0)")
        if not 0 <= self.momentum <= 1 or self.weight_decay < 0:
            problems.append(f"momentum={self.momentum}, weight_decay={self.weight_decay} (expected 0..1, >= 0)")
        if self.nesterov and self.momentum == 0:
            problems.append("nesterov=True needs momentum > 0")
        if not 0 <= self.warmup_epochs <= self.epochs:
            problems.append(f"warmup_epochs={self.warmup_epochs} (expected 0..epochs={self.epochs})")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule={self.schedule!r} (expected one of {', '.join(SCHEDULES)})")
        if self.schedule == "linear-warmup" and self.warmup_epochs not in (0, self.epochs):
            problems.append(f"schedule='linear-warmup' warms up over all {self.epochs} epochs; "
                            f"warmup_epochs={self.warmup_epochs} (expected 0 or {self.epochs})")
        if self.step_size < 1 or not 0 < self.gamma <= 1:
            problems.append(f"step_size={self.step_size}, gamma={self.gamma} (expected >= 1 and 0 < gamma <= 1)")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing={self.label_smoothing} (expected 0 <= x < 1)")
        if self.crop_padding < 0:
            problems.append(f"crop_padding={self.crop_padding} (expected >= 0)")
        if not 0 <= self.random_erasing <= 1:
            problems.append(f"random_erasing={self.random_erasing} (expected a probability 0..1)")
        if self.rand_augment is not None and not self.rand_augment.startswith("rand-"):
            problems.append(f"rand_augment={self.rand_augment!r} (expected a timm RandAugment name like 'rand-m9-mstd0.5')")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            problems.append(f"ema_decay={self.ema_decay} (expected 0 < decay < 1)")
        if self.augment_workers < 0:
            problems.append(f"augment_workers={self.augment_workers} (expected >= 0)")
        if not 0 < self.crop_fraction <= 1 or self.shuffle_window < 1 or self.resident_max_mb < 0:
            problems.append(f"crop_fraction={self.crop_fraction}, shuffle_window={self.shuffle_window}, "
                            f"resident_max_mb={self.resident_max_mb} (expected 0 < x <= 1, >= 1, >= 0)")
        if self.ema_steps < 1 or (self.norm_weight_decay is not None and self.norm_weight_decay < 0):
            problems.append(f"ema_steps={self.ema_steps}, norm_weight_decay={self.norm_weight_decay} (expected >= 1, >= 0)")
        if problems:
            raise LmnasError("invalid training recipe: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "recipe") -> TrainRecipe:
        """Build from a config mapping; `where` names the config field in error messages."""
        check_keys(cls, data, where, required=("batch_size", "epochs", "lr"))
        try:
            return cls(**data)
        except LmnasError as exc:
            raise LmnasError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Paper settings. GPT-NAS proxy: 6 epochs, batch 512, SGD with the lr "linearly incremented
# to 0.01" over the 6 epochs (linear-warmup). GPT-NAS retrain:
# 350 epochs, lr 0.01 divided by 10 every 100 epochs (batch 128 is our choice). ImageNet: 120 epochs, lr
# divided by 10 every 30 (the standard ResNet recipe: lr 0.1 at batch 256, wd 1e-4).
PRESETS: dict[str, TrainRecipe] = {
    "gptnas-proxy": TrainRecipe(epochs=6, batch_size=512, lr=0.01, schedule="linear-warmup"),
    "gptnas-retrain": TrainRecipe(epochs=350, batch_size=128, lr=0.01, schedule="step", step_size=100, gamma=0.1),
    "imagenet": TrainRecipe(
        epochs=120, batch_size=256, lr=0.1, weight_decay=1e-4, schedule="step", step_size=30, gamma=0.1,
        crop_padding=0, eval_batch_size=256,
    ),
}


def lr_at(recipe: TrainRecipe, step: int, steps_per_epoch: int) -> float:
    """Learning rate for optimiser step `step` (0-based, counted over the whole run)."""
    if steps_per_epoch < 1 or step < 0:
        raise LmnasError(f"lr_at: expected step >= 0 and steps_per_epoch >= 1, got {step}, {steps_per_epoch}")
    if recipe.schedule == "linear-warmup":  # lr/total on the first step ... lr on the last
        total = recipe.epochs * steps_per_epoch
        return recipe.lr * min(step + 1, total) / total
    warmup_steps = round(recipe.warmup_epochs * steps_per_epoch)
    if step < warmup_steps:
        return recipe.lr * (step + 1) / warmup_steps
    if recipe.schedule == "constant":
        return recipe.lr
    if recipe.schedule == "step":
        return recipe.lr * recipe.gamma ** (step // steps_per_epoch // recipe.step_size)
    # cosine from the end of warm-up to the last step of the run
    total = recipe.epochs * steps_per_epoch
    progress = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
    return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
