"""Batch-wide augmentation and normalisation as tensor ops on whatever device holds the batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def augment_batch(x: Tensor, generator: torch.Generator, padding: int, flip: bool) -> Tensor:
    """Random crop after zero padding, then random horizontal flip, for a uint8 batch [B,C,H,W].

    Random draws come from `generator` (on its own device), so a seeded generator
    gives the same crops and flips every time.
    """
    batch, channels, height, width = x.shape
    if padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))  # zeros, [B,C,H+2p,W+2p]
        offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator, device=generator.device)
        offsets = offsets.to(x.device)
        rows = offsets[0, :, None] + torch.arange(height, device=x.device)  # [B,H]
        cols = offsets[1, :, None] + torch.arange(width, device=x.device)  # [B,W]
        # One gather for the whole batch: index [B,1,1,1], [1,C,1,1], [B,1,H,1], [B,1,1,W].
        x = padded[
            torch.arange(batch, device=x.device)[:, None, None, None],
            torch.arange(channels, device=x.device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]
    if flip:
        flipped = torch.rand(batch, generator=generator, device=generator.device).to(x.device) < 0.5
        x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
    return x


def normalize(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """uint8 [B,C,H,W] -> float32 (x/255 - mean) / std, with per-channel mean/std on the 0..1 scale."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - mean_t) / std_t
