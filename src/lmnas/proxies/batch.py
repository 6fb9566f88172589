"""The minibatch a proxy sees: seeded noise (table searches), or a seeded pick of the search's data.

Kept apart from the scoring code: a proxy table is keyed by the batch's own sha256
(`ProxyBatch.sha256`), so a change here that changes the batch changes the key, and one that
does not leaves every cached score valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lmnas.errors import LmnasError
from lmnas.proxies.base import ProxyBatch
from lmnas.spaces.base import SearchSpace

NOISE = "noise"  # the batch source where a search has no data of its own (table benchmarks)


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
