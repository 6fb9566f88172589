"""The config's `device` setting → a torch device string.

Its own module so that stages which only need a device (train_archgpt, retrain) do not import
the config validator and, through it, every registry: their code deps stay their own.
"""

from __future__ import annotations

from lmnas.errors import LmnasError


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LmnasError(f"device: {device!r} requested but CUDA is not available on this machine")
    return device
