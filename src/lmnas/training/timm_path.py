"""The timm path of the training loop: ImageNet recipes as GENIUS trained them (timm 0.6.12).

Per-image augmentation from `timm.data.create_transform` (RandomResizedCrop with random
interpolation or a padded crop, flip, RandAugment, normalisation, RandomErasing), timm's
LabelSmoothingCrossEntropy and ModelEmaV2. Images go through PIL on the CPU, a batch at a time,
in the training process or ahead of it in `augment_workers` DataLoader processes; every batch's Python, NumPy and torch RNGs are seeded from
(seed, epoch, batch), so a run is reproducible and resumes exactly like the plain path.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lmnas.training.recipe import TrainRecipe

Transform = Callable[[object], Tensor]


def train_transform(recipe: TrainRecipe, image_size: int, mean: Sequence[float], std: Sequence[float]) -> Transform:
    """timm's ImageNet training transform (PIL image → normalised float tensor [C,H,W])."""
    from timm.data import create_transform
    from torchvision import transforms

    transform = create_transform(
        input_size=image_size, is_training=True, auto_augment=recipe.rand_augment, interpolation="random",
        re_prob=recipe.random_erasing, re_mode="pixel", re_count=1, hflip=0.5 if recipe.flip else 0.0,
        mean=tuple(mean), std=tuple(std),
    )
    if not recipe.random_resized_crop:  # small images: a padded random crop, as GENIUS does below 32 px
        transform.transforms[0] = transforms.RandomCrop(image_size, padding=recipe.crop_padding or None)
    return transform


def augment(images: Tensor, transform: Transform, seed: int) -> Tensor:
    """uint8 [N,C,H,W] (any device) → float [N,C,H,W] on the CPU, each image through `transform`."""
    from torchvision.transforms.functional import to_pil_image

    state, np_state = random.getstate(), np.random.get_state()  # the caller's streams are left as they were
    random.seed(seed)  # timm's crops, RandAugment magnitudes and erasing draw from `random`
    np.random.seed(seed % 2**32)  # RandAugment picks its ops with np.random.choice
    torch.manual_seed(seed)  # torchvision's flip and erasing's pixel noise from torch (forked by the loop)
    try:
        return torch.stack([transform(to_pil_image(image)) for image in images.cpu()])
    finally:
        random.setstate(state)
        np.random.set_state(np_state)


class _Batches(torch.utils.data.Dataset):
    """Batch i of an epoch: images[indices[i]] through `transform`, seeded with seeds[i]."""

    def __init__(self, images: Tensor, indices: list[Tensor], seeds: list[int], transform: Transform) -> None:
        self.images, self.indices, self.seeds, self.transform = images, indices, seeds, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Tensor:
        return augment(self.images[self.indices[i]], self.transform, self.seeds[i])


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


def epoch_batches(images: Tensor, indices: list[Tensor], seeds: list[int], transform: Transform,
                  workers: int) -> Iterator[Tensor]:
    """The augmented batches of one epoch in order; with `workers` > 0 prepared ahead by that many
    DataLoader processes. Each batch depends only on its indices and seed, so the result is the
    same whatever the number of workers."""
    dataset = _Batches(images, indices, seeds, transform)
    if workers == 0:
        return (dataset[i] for i in range(len(dataset)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                         prefetch_factor=2, worker_init_fn=_one_thread)
    return iter(loader)


def criterion(recipe: TrainRecipe) -> nn.Module:
    from timm.loss import LabelSmoothingCrossEntropy

    return LabelSmoothingCrossEntropy(smoothing=recipe.label_smoothing) if recipe.label_smoothing else nn.CrossEntropyLoss()


def make_ema(model: nn.Module, recipe: TrainRecipe) -> nn.Module | None:
    """timm ModelEmaV2 of `model` (same device), or None without `ema_decay`."""
    if recipe.ema_decay is None:
        return None
    from timm.utils import ModelEmaV2

    return ModelEmaV2(model, decay=recipe.ema_decay)


def param_groups(params: list[nn.Parameter], model: nn.Module, recipe: TrainRecipe) -> list[dict]:
    """Normalisation weights and biases at `norm_weight_decay` (GENIUS: 0), the rest at weight_decay."""
    if recipe.norm_weight_decay is None:
        return [{"params": params}]
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    norm = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    groups = [{"params": [p for p in params if id(p) not in norm]},
              {"params": [p for p in params if id(p) in norm], "weight_decay": recipe.norm_weight_decay}]
    return [g for g in groups if g["params"]]
