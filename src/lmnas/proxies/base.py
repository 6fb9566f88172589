"""The proxy contract, the minibatch proxies see, and how one genotype is scored.

A score is a deterministic function of (proxy, space settings, genotype, batch, seed): the
network is built under `torch.manual_seed(genotype_seed(seed, key))` (the evaluator's
per-genotype init, independent of scoring order) on one torch thread, so a resumed or
reordered run, a cached table and a fresh computation give the same float.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmnas.errors import LmnasError
from lmnas.spaces.base import Genotype, SearchSpace

NOISE = "noise"  # the batch source where a search has no data of its own (table benchmarks)


@dataclass(frozen=True)
class ProxyBatch:
    """One minibatch: images float32 [B, C, H, W] (normalised), labels int64 [B].

    Data-free proxies read only `images.shape` (and draw their own inputs)."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str  # "noise", or the prepared dataset folder it came from

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "batch_size": int(self.images.shape[0]), "shape": list(self.images.shape[1:])}


class Proxy(ABC):
    name: str = ""
    needs_data: bool = False  # False: data-free (synflow, zen); True: reads the batch (naswot, grad_norm, snip)
    higher_is_better: bool = True

    @abstractmethod
    def score(self, model: nn.Module, batch: ProxyBatch, seed: int) -> float:
        """The proxy of a freshly initialised `model`; `seed` is for proxies that draw their own inputs."""

    def settings(self) -> dict[str, Any]:
        return {"name": self.name}


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Scores must not depend on the machine's core count (float reductions do)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_batch(space: SearchSpace, batch_size: int, seed: int, data: str | Path | None = None) -> ProxyBatch:
    """`batch_size` images for `space`: seeded N(0, 1) noise with uniform labels (no data), or a
    seeded pick of a prepared dataset's train split, normalised by its manifest's mean/std and
    resized to the space's input shape."""
    if batch_size < 2:
        raise LmnasError(f"search.warm_start.batch_size: need >= 2 images (NASWOT's kernel is B x B), got {batch_size}")
    g = torch.Generator().manual_seed(seed)
    c, h, w = space.input_shape
    if data is None:
        images = torch.randn(batch_size, c, h, w, generator=g)
        labels = torch.randint(0, space.num_classes, (batch_size,), generator=g)
        return ProxyBatch(images, labels, NOISE)
    from lmnas.data import read_manifest

    manifest = read_manifest(Path(data))
    pixels, labels = _train_pick(Path(data), manifest, batch_size, g)
    images = pixels.float().div_(255.0)
    mean = torch.tensor(manifest["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(manifest["std"], dtype=torch.float32).view(1, -1, 1, 1)
    images = (images - mean) / std
    if images.shape[1] != c:
        if images.shape[1] != 1:
            raise LmnasError(f"{data}: images have {images.shape[1]} channels, space {space.name} takes {c}")
        images = images.expand(-1, c, -1, -1).contiguous()  # grey → the space's channels
    if tuple(images.shape[2:]) != (h, w):
        images = torch.nn.functional.interpolate(images, size=(h, w), mode="bilinear", align_corners=False)
    if int(labels.max()) >= space.num_classes:
        raise LmnasError(f"{data}: labels up to {int(labels.max())}, space {space.name} has {space.num_classes} classes")
    return ProxyBatch(images, labels, str(data))


def _train_pick(data: Path, manifest: dict[str, Any], n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` seeded images (uint8 [n, C, H, W]) and labels of the train split. Encoded storage (ImageNet)
    decodes only the picked images of the first shard, never the whole split."""
    from lmnas.data.shards import decode_image, open_encoded_split, read_encoded_shard, resize_center_crop, storage

    if storage(manifest) != "encoded":
        from lmnas.data.tensors import load_split

        pixels, labels = load_split(data, "train")
    else:
        encoded, shard_labels = read_encoded_shard(open_encoded_split(data, "train")[0].path)
        pixels, labels = None, torch.from_numpy(shard_labels.copy())
    if len(labels) < n:
        raise LmnasError(f"{data}: {len(labels)} train images to pick from, the proxy batch needs {n}")
    pick = torch.randperm(len(labels), generator=g)[:n]
    if pixels is None:
        import numpy as np

        size = int(manifest["image_shape"][1])
        pixels = torch.from_numpy(np.stack([
            np.asarray(resize_center_crop(decode_image(encoded[int(i)]), size), dtype=np.uint8).transpose(2, 0, 1)
            for i in pick]))
        return pixels, labels[pick]
    return pixels[pick], labels[pick]


def finite_or_worst(value: float) -> float:
    """NaN / ±inf (a degenerate network: no path to the output) rank last, as -inf."""
    return value if math.isfinite(value) else float("-inf")


def score_genotype(proxy: Proxy, space: SearchSpace, genotype: Genotype, batch: ProxyBatch, seed: int) -> float:
    from lmnas.evaluation.proxy import genotype_seed

    init_seed = genotype_seed(seed, space.key(genotype))
    with torch_threads(1):
        torch.manual_seed(init_seed)
        model = space.build(genotype)
        return finite_or_worst(float(proxy.score(model, batch, init_seed)))


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The layers the gradient proxies sum over: convolutions and linear layers (Abdelfattah et al.)."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
