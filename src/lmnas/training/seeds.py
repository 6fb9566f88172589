"""Named random streams of a training run: every draw of epoch e comes from (seed, e, stream[, rank]).

A checkpoint needs no RNG state: each epoch re-derives its generators from these keys, so a
resumed epoch draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch


class Stream(IntEnum):
    """The third entropy word of `derive_seed`. The values are part of every recorded result: never renumber."""

    SHUFFLE = 0  # the epoch's order of the train split (single process, resident: also the GPU-side augmentation)
    GLOBAL_RNG = 1  # torch's default generators for the epoch: dropout, timm's erasing noise
    RANK_AUGMENT = 2  # GPU-side augmentation of one data-parallel rank (resident data)
    BATCH = 3  # per-image CPU augmentation of batch i: stream BATCH + i (timm path, streamed path)


# Children of one batch's stream (numpy SeedSequence spawn keys): independent draws keyed by the same batch.
ERASING_CHILD = 1  # timm RandomErasing on the device, after the batch's CPU augmentation


def derive_seed(seed: int, epoch: int, stream: int, rank: int | None = None, child: int | None = None) -> int:
    """Independent 63-bit seed per (seed, epoch, stream[, rank][, child]).

    `rank` is given only in data-parallel runs (a single process draws what it drew before data
    parallelism existed); `child` splits one stream into independent sub-streams.
    """
    entropy = [seed, epoch, int(stream)] if rank is None else [seed, epoch, int(stream), rank]
    sequence = np.random.SeedSequence(entropy, spawn_key=() if child is None else (child,))
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> 1)


def seed_global_rng(seed: int, device: torch.device) -> None:
    """Seed the default generators the model may draw from (dropout): CPU, and the one CUDA device."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
