"""Per-epoch checkpoints: weights as safetensors, optimiser/progress as a torch.save file beside them.

Layout: `<dir>/epoch-0003.safetensors` then `<dir>/epoch-0003.pt`; the `.pt` file is
written last, so its presence marks a complete checkpoint. Older epochs are removed
once a newer one is complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lmnas.errors import LmnasError
from lmnas.io import atomic_path

_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")


@dataclass
class Checkpoint:
    epoch: int  # number of finished epochs
    weights: dict[str, Tensor]  # model state dict on CPU
    state: dict[str, Any]  # optimizer, step, history, seed, recipe, …


def cpu_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """A detached, contiguous CPU copy of the state dict (safetensors rejects shared or strided tensors)."""
    return {name: t.detach().to("cpu", copy=True).contiguous() for name, t in model.state_dict().items()}


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file(cpu_state_dict(model), str(tmp), metadata=metadata)


def save_checkpoint(checkpoint_dir: Path, epoch: int, model: nn.Module, state: dict[str, Any]) -> None:
    checkpoint_dir = Path(checkpoint_dir)
    stem = f"epoch-{epoch:04d}"
    save_weights(checkpoint_dir / f"{stem}.safetensors", model)
    with atomic_path(checkpoint_dir / f"{stem}.pt") as tmp:
        torch.save({**state, "epoch": epoch}, tmp)
    for old in _complete_epochs(checkpoint_dir):
        if old < epoch:
            for suffix in (".pt", ".safetensors"):
                (checkpoint_dir / f"epoch-{old:04d}{suffix}").unlink(missing_ok=True)


def load_latest(checkpoint_dir: Path) -> Checkpoint | None:
    """The newest complete checkpoint in `checkpoint_dir`, or None when there is none."""
    checkpoint_dir = Path(checkpoint_dir)
    epochs = _complete_epochs(checkpoint_dir) if checkpoint_dir.is_dir() else []
    if not epochs:
        return None
    epoch = max(epochs)
    stem = checkpoint_dir / f"epoch-{epoch:04d}"
    try:
        weights = load_file(f"{stem}.safetensors")
        state = torch.load(f"{stem}.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: say which one
        raise LmnasError(f"{stem}.pt/.safetensors: unreadable checkpoint ({exc}); delete it to restart") from exc
    return Checkpoint(epoch=epoch, weights=weights, state=state)


def _complete_epochs(checkpoint_dir: Path) -> list[int]:
    epochs = []
    for path in checkpoint_dir.iterdir():
        match = _NAME.match(path.name)
        if match and path.with_suffix(".safetensors").exists():
            epochs.append(int(match.group(1)))
    return epochs
