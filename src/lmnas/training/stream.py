"""The streamed input pipeline: encoded-image shards → DataLoader workers → uint8 batches (ImageNet scale).

Nothing holds a split in memory. `EncodedSplit` names the shards; `StreamedImages` (a map-style
Dataset) reads the rows a batch asks for from memory-mapped Parquet row groups (a few cached per
worker), decodes the original JPEG/PNG and applies the per-image transform, returning uint8 [b,C,H,W]
(normalisation happens on the device). `EpochSampler` is DistributedSampler-style: one global order per
epoch from (seed, epoch) — row groups permuted, rows shuffled within windows of `shuffle_window` — padded
to a multiple of the world size, each rank taking its contiguous share (so it reads only its row
groups). Each batch carries its own augmentation seed, so a batch is the same whatever the number of
workers, and a resumed epoch is the uninterrupted one. The DataLoader keeps its workers for the run.

Which path a split takes (`training_split`): raw shards stay resident (today's fast path); encoded
splits whose decoded pixels fit `recipe.resident_max_mb` are decoded once and kept resident; larger
ones stream. GPU JPEG decoding (torchvision.io.decode_jpeg on CUDA) is not implemented: decoding is PIL in the workers.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import Tensor

from lmnas.data.shards import ShardInfo, decode_image, open_encoded_split, read_manifest, resize_center_crop, storage
from lmnas.errors import LmnasError
from lmnas.training.recipe import TrainRecipe
from lmnas.training.seeds import Stream, derive_seed

Data = tuple[Tensor, Tensor]  # (uint8 images [N,C,H,W], int64 labels [N])
Transform = Callable[[Any], Tensor]  # PIL image → uint8 [C,H,W]


@dataclass(frozen=True)
class EncodedSplit:
    """One encoded split as training reads it: its shards, the rows used (a prefix) and the network's input size."""

    split: str
    shards: tuple[ShardInfo, ...]
    rows: int
    size: int  # the manifest's image_shape H (= W): training crops to this unless input_size says otherwise
    channels: int = 3

    @classmethod
    def open(cls, folder: str | Path, split: str, rows: int | None = None) -> EncodedSplit:
        manifest = read_manifest(folder)
        shards = tuple(open_encoded_split(folder, split))
        total = sum(s.rows for s in shards)
        channels, height, _ = manifest["image_shape"]
        return cls(split, shards, total if rows is None else min(rows, total), int(height), int(channels))

    def head(self, rows: int) -> EncodedSplit:
        return replace(self, rows=min(rows, self.rows))

    def __len__(self) -> int:
        return self.rows

    def group_rows(self) -> list[tuple[int, int, int]]:
        """(shard, row group, rows) of every Parquet row group, in row order, cut at `rows` (footers only)."""
        groups, left = [], self.rows
        for s, shard in enumerate(self.shards):
            metadata = pq.ParquetFile(shard.path).metadata
            for g in range(metadata.num_row_groups):
                if left <= 0:
                    return groups
                n = min(metadata.row_group(g).num_rows, left)
                groups.append((s, g, n))
                left -= n
        return groups


def rows_of(data: Data | EncodedSplit) -> int:
    return len(data) if isinstance(data, EncodedSplit) else int(data[1].shape[0])


def training_split(folder: str | Path, split: str, recipe: TrainRecipe, rows: int | None = None) -> Data | EncodedSplit:
    """The split as training takes it: resident tensors (raw, or encoded that fits the budget) or an EncodedSplit."""
    from lmnas.data.tensors import load_split

    if storage(read_manifest(folder)) == "raw":
        images, labels = load_split(folder, split)
        return (images, labels) if rows is None else (images[:rows], labels[:rows])
    encoded = EncodedSplit.open(folder, split, rows)
    decoded_mb = encoded.rows * encoded.channels * encoded.size**2 / 2**20
    return decode_resident(encoded) if decoded_mb <= recipe.resident_max_mb else encoded


def decode_resident(split: EncodedSplit) -> Data:
    """Decode every row once (shorter side → size, centre crop), as the resident path keeps it."""
    reader = _RowGroups(split, capacity=1)
    images = np.empty((split.rows, split.channels, split.size, split.size), dtype=np.uint8)
    labels = np.empty(split.rows, dtype=np.int64)
    for i in range(split.rows):
        data, labels[i] = reader.row(i)
        images[i] = np.asarray(resize_center_crop(decode_image(data), split.size)).transpose(2, 0, 1)
    return torch.from_numpy(images), torch.from_numpy(labels)


class _RowGroups:
    """Rows by global index from memory-mapped Parquet row groups; the last `capacity` groups are kept."""

    def __init__(self, split: EncodedSplit, capacity: int) -> None:
        self.split, self.capacity = split, capacity
        self.groups = split.group_rows()
        self.starts = np.cumsum([0] + [n for _, _, n in self.groups])
        self.cache: OrderedDict[int, tuple[Any, np.ndarray]] = OrderedDict()

    def row(self, index: int) -> tuple[bytes, int]:
        if not 0 <= index < self.split.rows:
            raise LmnasError(f"row {index} outside split {self.split.split!r} of {self.split.rows} rows")
        g = int(np.searchsorted(self.starts, index, side="right") - 1)
        if g not in self.cache:
            shard, group, _ = self.groups[g]
            path = self.split.shards[shard].path
            table = pq.ParquetFile(path, memory_map=True).read_row_group(group, columns=["image", "label"])
            self.cache[g] = (table.column("image").combine_chunks(), table.column("label").to_numpy())
            while len(self.cache) > self.capacity:
                self.cache.popitem(last=False)
        self.cache.move_to_end(g)
        images, labels = self.cache[g]
        offset = index - int(self.starts[g])
        return images[offset].as_py(), int(labels[offset])


class BatchRequest(NamedTuple):
    rows: np.ndarray  # global row indices of one batch
    seed: int  # seeds the batch's per-image augmentation


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's CPU RNGs (timm and torchvision draw from all three); restore after."""
    state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(state)
            np.random.set_state(np_state)


class StreamedImages(torch.utils.data.Dataset):
    """Batch `request` → (uint8 [b,C,H,W], int64 [b]); holds shard names only (the row-group cache is per process)."""

    def __init__(self, split: EncodedSplit, transform: Transform, cache_groups: int) -> None:
        self.split, self.transform, self.cache_groups = split, transform, cache_groups
        self._reader: _RowGroups | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reader": None}  # workers open their own memory maps

    def __len__(self) -> int:
        return self.split.rows

    def __getitem__(self, request: BatchRequest) -> tuple[Tensor, Tensor]:
        if self._reader is None:
            self._reader = _RowGroups(self.split, self.cache_groups)
        rows = [self._reader.row(int(i)) for i in request.rows]
        with seeded(request.seed):
            images = [self.transform(decode_image(data)) for data, _ in rows]
        return torch.stack(images), torch.tensor([label for _, label in rows], dtype=torch.int64)


class EpochSampler(torch.utils.data.Sampler):
    """This rank's batches of an epoch (DistributedSampler-style, `set_epoch` before iterating)."""

    def __init__(self, group_sizes: Sequence[int], *, batch_size: int, seed: int, world: int, rank: int,
                 window: int) -> None:
        self.sizes, self.seed, self.world, self.rank, self.window = list(group_sizes), seed, world, rank, window
        self.rows = int(sum(self.sizes))
        self.share = math.ceil(self.rows / world)  # rows per rank (the order is padded by wrapping)
        self.steps = math.ceil(self.share / (batch_size // world))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def order(self, epoch: int) -> np.ndarray:
        """This rank's rows for `epoch`: the same global order on every rank, then its contiguous share."""
        rng = np.random.default_rng(derive_seed(self.seed, epoch, Stream.SHUFFLE))
        starts = np.cumsum([0] + self.sizes)
        blocks = rng.permutation(len(self.sizes))
        sequence = np.concatenate([np.arange(starts[b], starts[b + 1]) for b in blocks])
        window = np.arange(self.rows) // self.window
        sequence = sequence[np.lexsort((rng.random(self.rows), window))]  # shuffled within each window
        padded = np.resize(sequence, self.share * self.world)  # wraps around: every rank the same count
        return padded[self.rank * self.share : (self.rank + 1) * self.share]

    def __iter__(self) -> Iterator[BatchRequest]:
        rank_key = self.rank if self.world > 1 else None
        for i, rows in enumerate(np.array_split(self.order(self.epoch), self.steps)):
            yield BatchRequest(rows, derive_seed(self.seed, self.epoch, Stream.BATCH + i, rank_key))


class EvalSampler(torch.utils.data.Sampler):
    """A contiguous 1/world of the rows, in order, in batches (every row exactly once over the ranks)."""

    def __init__(self, rows: int, *, batch_size: int, world: int, rank: int) -> None:
        self.begin, self.end, self.batch_size = rows * rank // world, rows * (rank + 1) // world, batch_size

    def __len__(self) -> int:
        return math.ceil((self.end - self.begin) / self.batch_size)

    def __iter__(self) -> Iterator[BatchRequest]:
        for start in range(self.begin, self.end, self.batch_size):
            yield BatchRequest(np.arange(start, min(start + self.batch_size, self.end)), 0)


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and augment one image at a time; torch threads would spin


def loader(dataset: StreamedImages, sampler: torch.utils.data.Sampler, workers: int,
           pin: bool) -> torch.utils.data.DataLoader:
    """Workers kept for the whole run (persistent), batches pinned for the copy to CUDA."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
        pin_memory=pin, prefetch_factor=4 if workers else None, worker_init_fn=_one_thread if workers else None,
    )


def cache_groups(split: EncodedSplit, window: int) -> int:
    """Row groups a worker keeps: enough for one shuffle window straddling group boundaries."""
    smallest = min(n for _, _, n in split.group_rows())
    return math.ceil(window / smallest) + 2


def _to_uint8_chw(picture: Any) -> Tensor:
    return torch.from_numpy(np.array(picture, dtype=np.uint8)).permute(2, 0, 1)


def train_transform(recipe: TrainRecipe, size: int) -> Transform:
    """Per-image training transform of the decoded original → uint8 [C,size,size].

    Plain recipes: RandomResizedCrop (scale 0.08–1) and the recipe's flip (crop_padding is a resident-path
    setting). timm recipes: timm's create_transform (random-interpolation RandomResizedCrop, flip,
    RandAugment) without ToTensor/Normalize/RandomErasing: erasing runs on the device after normalisation.
    """
    from torchvision import transforms

    if not recipe.uses_timm:
        steps = [transforms.RandomResizedCrop(size)]
        steps += [transforms.RandomHorizontalFlip()] if recipe.flip else []
        return transforms.Compose([*steps, _to_uint8_chw])
    from timm.data import create_transform

    timm = create_transform(input_size=size, is_training=True, auto_augment=recipe.rand_augment,
                            interpolation="random", re_prob=0.0, hflip=0.5 if recipe.flip else 0.0)
    steps = [t for t in timm.transforms if type(t).__name__ not in ("ToTensor", "MaybeToTensor", "Normalize")]
    if not recipe.random_resized_crop:  # GENIUS's padded crop, after bringing the shorter side to size
        steps[0] = transforms.Compose([transforms.Resize(size),
                                       transforms.RandomCrop(size, padding=recipe.crop_padding or None)])
    return transforms.Compose([*steps, _to_uint8_chw])


def eval_transform(size: int, crop_fraction: float) -> Transform:
    """Shorter side → floor(size / crop_fraction), then the central size×size (timm's eval; 256 → 224 at 0.875)."""
    from torchvision import transforms

    return transforms.Compose([transforms.Resize(math.floor(size / crop_fraction)), transforms.CenterCrop(size),
                               _to_uint8_chw])
