"""Where the loop's batches come from: one iterator per epoch, whatever holds the data.

`train_batches` picks the path: resident tensors (uint8 on the device, GPU-side crop + flip; or the
timm path, per-image augmentation on the CPU) or an `EncodedSplit` streamed through DataLoader workers
(`lmnas.training.stream`). Every path yields `Batch`es of normalised inputs on the device, this rank's
share, with the loss scale that makes DDP's gradient average the mean over the global batch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from lmnas.errors import LmnasError
from lmnas.training import stream, timm_path
from lmnas.training.augment import augment_batch, normalize
from lmnas.training.recipe import TrainRecipe
from lmnas.training.seeds import ERASING_CHILD, Stream, derive_seed
from lmnas.training.stream import Data, EncodedSplit


class Batch(NamedTuple):
    inputs: Tensor  # normalised float [b,C,H,W] on the device (channels_last on CUDA)
    labels: Tensor  # int64 [b] on the device
    loss_scale: float  # W · b_rank / b_global (1.0 single-process or with equal shares)


class _Place:
    """The device, normalisation and input size every path shares."""

    def __init__(self, device: torch.device, mean: Sequence[float], std: Sequence[float], input_size: int | None):
        self.device, self.cuda, self.input_size = device, device.type == "cuda", input_size
        self.mean_values, self.std_values = mean, std
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device)

    def inputs(self, images: Tensor) -> Tensor:
        """uint8 on the device → normalised, resized to input_size, channels_last on CUDA."""
        return resize(normalize(images, self.mean, self.std), self.input_size, self.cuda)

    def upload(self, tensor: Tensor) -> Tensor:
        return tensor.to(self.device, non_blocking=self.cuda)


def resize(inputs: Tensor, input_size: int | None, cuda: bool) -> Tensor:
    if input_size is not None and inputs.shape[-2:] != (input_size, input_size):
        inputs = F.interpolate(inputs, size=(input_size, input_size), mode="bilinear", antialias=True)
    return inputs.contiguous(memory_format=torch.channels_last) if cuda else inputs


def check_data(data: Data, split: str) -> None:
    images, labels = data
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise LmnasError(f"{split} images: expected uint8 [N,C,H,W], got {images.dtype} {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise LmnasError(f"{split} labels: expected shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if images.shape[0] == 0:
        raise LmnasError(f"{split} split is empty")


def to_device(data: Data, device: torch.device, split: str) -> Data:
    check_data(data, split)
    images, labels = data
    return images.to(device), labels.to(device=device, dtype=torch.int64)


class ResidentBatches:
    """The whole split in memory: on the device (plain path) or the host (timm path, CPU augmentation)."""

    def __init__(self, train: Data, recipe: TrainRecipe, place: _Place, *, seed: int, world: int, rank: int):
        self.recipe, self.place, self.seed, self.world, self.rank = recipe, place, seed, world, rank
        self.rank_key = rank if world > 1 else None  # a single process draws what it drew before DDP existed
        # The timm path augments on the CPU: its images stay in host memory (only labels move).
        self.images, labels = to_device(train, torch.device("cpu") if recipe.uses_timm else place.device, "train")
        self.labels = labels.to(place.device)
        self.images_per_epoch = self.images.shape[0]
        self.steps_per_epoch = -(-self.images_per_epoch // recipe.batch_size)
        size = self.images.shape[-1]
        self.transform = timm_path.train_transform(recipe, size, place.mean_values, place.std_values) \
            if recipe.uses_timm else None

    def _order(self, epoch: int) -> tuple[Tensor, torch.Generator]:
        """The epoch's permutation (the same on every rank) and this rank's GPU-side augmentation generator."""
        device = self.place.device
        if self.world == 1:  # one device generator shuffles and augments (the layout results were recorded with)
            generator = torch.Generator(device=device).manual_seed(derive_seed(self.seed, epoch, Stream.SHUFFLE))
            return torch.randperm(self.images_per_epoch, generator=generator, device=device), generator
        # Drawn on the CPU so that it cannot depend on the device; augmentation from this rank's own stream.
        shuffle = torch.Generator().manual_seed(derive_seed(self.seed, epoch, Stream.SHUFFLE))
        order = torch.randperm(self.images_per_epoch, generator=shuffle).to(device)
        return order, torch.Generator(device=device).manual_seed(
            derive_seed(self.seed, epoch, Stream.RANK_AUGMENT, self.rank))

    def epoch(self, epoch: int) -> Iterator[Batch]:
        order, generator = self._order(epoch)
        # Near-equal batches (sizes differ by at most one): every image is used and no tiny
        # trailing batch trips BatchNorm. Each rank trains on its strided share of every batch.
        batches = torch.tensor_split(order, self.steps_per_epoch)
        if self.transform is not None:
            shares = [b[self.rank :: self.world].cpu() for b in batches]
            seeds = [derive_seed(self.seed, epoch, Stream.BATCH + i, self.rank_key) for i in range(len(batches))]
            augmented = timm_path.epoch_batches(self.images, shares, seeds, self.transform, self.recipe.augment_workers)
        for index in batches:
            global_batch = index.shape[0]
            index = index[self.rank :: self.world]  # global_batch/W images (±1)
            if self.transform is not None:
                inputs = next(augmented)
                inputs = inputs.pin_memory().to(self.place.device, non_blocking=True) if self.place.cuda else inputs
                inputs = resize(inputs, self.place.input_size, self.place.cuda)
            else:
                images = augment_batch(self.images[index], generator, self.recipe.crop_padding, self.recipe.flip)
                inputs = self.place.inputs(images)
            labels = self.labels[index]
            yield Batch(inputs, labels, self.world * labels.shape[0] / global_batch)

    def close(self) -> None:
        pass


class StreamedBatches:
    """An encoded split through persistent DataLoader workers; uint8 batches normalised (and erased) on the device."""

    def __init__(self, train: EncodedSplit, recipe: TrainRecipe, place: _Place, *, seed: int, world: int, rank: int):
        self.recipe, self.place, self.seed = recipe, place, seed
        self.rank_key = rank if world > 1 else None
        size = place.input_size or train.size  # crop the original straight to the network's input
        groups = [n for _, _, n in train.group_rows()]
        self.sampler = stream.EpochSampler(groups, batch_size=recipe.batch_size, seed=seed, world=world, rank=rank,
                                           window=recipe.shuffle_window)
        dataset = stream.StreamedImages(train, stream.train_transform(recipe, size),
                                        stream.cache_groups(train, recipe.shuffle_window))
        self.loader = stream.loader(dataset, self.sampler, recipe.augment_workers, pin=place.cuda)
        self.images_per_epoch = self.sampler.share * world  # padded by wrapping to equal shares
        self.steps_per_epoch = len(self.sampler)
        self.erasing = None
        if recipe.random_erasing:
            from timm.data.random_erasing import RandomErasing

            self.erasing = RandomErasing(recipe.random_erasing, mode="pixel", max_count=1, device=place.device)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        self.sampler.set_epoch(epoch)
        for i, (images, labels) in enumerate(self.loader):
            inputs = normalize(self.place.upload(images), self.place.mean, self.place.std)
            if self.erasing is not None:  # timm erases normalised tensors; boxes from Python's `random`
                state = random.getstate()
                random.seed(derive_seed(self.seed, epoch, Stream.BATCH + i, self.rank_key, ERASING_CHILD))
                inputs = self.erasing(inputs)
                random.setstate(state)
            yield Batch(resize(inputs, None, self.place.cuda), self.place.upload(labels), 1.0)

    def close(self) -> None:
        del self.loader  # persistent workers end with their loader


def train_batches(train: Data | EncodedSplit, recipe: TrainRecipe, *, device: torch.device, mean: Sequence[float],
                  std: Sequence[float], input_size: int | None, seed: int, world: int,
                  rank: int) -> ResidentBatches | StreamedBatches:
    place = _Place(device, mean, std, input_size)
    kind = StreamedBatches if isinstance(train, EncodedSplit) else ResidentBatches
    return kind(train, recipe, place, seed=seed, world=world, rank=rank)


class EvalBatches:
    """A split for evaluation, this rank's contiguous share when `world` > 1: uint8 batches on the device."""

    def __init__(self, data: Data | EncodedSplit, *, device: torch.device, batch_size: int, world: int, rank: int,
                 input_size: int | None = None, recipe: TrainRecipe | None = None, split: str = "eval") -> None:
        self.rows, self.world, self.device = stream.rows_of(data), world, device
        self.batch_size, self.sampler = batch_size, stream.EvalSampler(self.rows, batch_size=batch_size,
                                                                       world=world, rank=rank)
        self.loader = None
        if isinstance(data, EncodedSplit):
            if recipe is None:
                raise LmnasError(f"{split}: evaluating encoded (streamed) data needs the recipe (crop_fraction, workers)")
            transform = stream.eval_transform(input_size or data.size, recipe.crop_fraction)
            dataset = stream.StreamedImages(data, transform, cache_groups=2)
            self.loader = stream.loader(dataset, self.sampler, recipe.augment_workers, pin=device.type == "cuda")
        else:
            self.images, self.labels = to_device(data, device, split)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self.loader is None:
            for start in range(self.sampler.begin, self.sampler.end, self.batch_size):
                stop = min(start + self.batch_size, self.sampler.end)
                yield self.images[start:stop], self.labels[start:stop]
            return
        cuda = self.device.type == "cuda"
        for images, labels in self.loader:
            yield images.to(self.device, non_blocking=cuda), labels.to(self.device, non_blocking=cuda)

    def close(self) -> None:
        self.loader = None
