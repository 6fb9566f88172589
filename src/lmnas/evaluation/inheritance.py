"""Weight inheritance (GPT-NAS's acceleration of proxy training): a child starts from its parent.

GPT-NAS trains an offspring cheaply: the blocks it shares with its parent keep the parent's
trained weights, frozen, and only the re-generated blocks (with the classifier) train; when
nothing was re-generated only the BatchNorm affine parameters train. A block is shared when
the parent has the same block at the same position: same code, input/output width and stride,
so its tensors have the same shapes and it sees features of the same resolution (checked).

Trained weights live on disk, one safetensors file per genotype key (`WeightStore`), so a
resumed run or a worker process finds a parent's weights where its evaluation left them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from lmnas.errors import LmnasError
from lmnas.io import atomic_path
from lmnas.spaces.base import SearchSpace

StateDict = dict[str, torch.Tensor]
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


class WeightStore:
    """Trained weights by genotype key: `<root>/<key>.safetensors` (a hash for keys unfit as file names)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        name = key if _SAFE_NAME.fullmatch(key) else hashlib.sha1(key.encode()).hexdigest()
        return self.root / f"{name}.safetensors"

    def save(self, key: str, model: nn.Module) -> Path:
        state = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
        path = self.path(key)
        with atomic_path(path) as tmp:  # a kill mid-write leaves no half file a child could load
            save_file(state, str(tmp), metadata={"key": key})
        return path

    def load(self, key: str) -> StateDict | None:
        path = self.path(key)
        if not path.is_file():
            return None
        with safe_open(str(path), framework="pt", device="cpu") as f:
            stored = (f.metadata() or {}).get("key")
            if stored != key:
                raise LmnasError(f"{path}: holds the weights of {stored!r}, expected {key!r}")
            return {name: f.get_tensor(name) for name in f.keys()}


@dataclass
class Inheritance:
    """What a child got from its parent and what it trains. `train_blocks` start from their fresh init."""

    parent: str
    inherited: bool  # False: the parent's weights were not in the store, the child trains from scratch
    train_blocks: list[int]
    num_blocks: int

    @property
    def bn_only(self) -> bool:
        return self.inherited and not self.train_blocks

    def trainable(self) -> Callable[[str, nn.Parameter], bool] | None:
        """The `train_model` filter: re-generated blocks and the classifier; None trains everything."""
        if not self.inherited or self.bn_only:
            return None
        prefixes = ("classifier.",) + tuple(f"blocks.{i}." for i in self.train_blocks)
        return lambda name, _param: name.startswith(prefixes)

    def to_metrics(self) -> dict[str, Any]:
        trained = len(self.train_blocks) if self.inherited else self.num_blocks
        return {"inherited": self.inherited, "trained_blocks": trained}


def inherit_weights(
    model: nn.Module, space: SearchSpace, genotype: Sequence[str], lineage: dict[str, Any], store: WeightStore
) -> Inheritance:
    """Load the parent's weights into `model` (built from `genotype`) wherever a block is shared.

    Stem and classifier always come from the parent; block i comes from the parent's block i
    unless the lineage lists it as re-generated, its spec differs, or its tensors do not match.
    """
    if not space.inherits_weights:
        raise LmnasError(f"weight inheritance needs the gptnas-blocks space, not {space.name!r}")
    key = space.key(tuple(genotype))
    if not isinstance(lineage, dict) or not isinstance(lineage.get("parent"), str):
        raise LmnasError(f"lineage of {key!r}: expected {{'parent': <key>, 'regenerated': [...]}}, got {lineage!r}")
    parent_key = lineage["parent"]
    regenerated = {int(i) for i in lineage.get("regenerated", [])}
    if any(not 0 <= i < len(genotype) for i in regenerated):
        raise LmnasError(f"lineage of {key!r}: re-generated blocks {sorted(regenerated)} "
                         f"outside 0..{len(genotype) - 1}")
    parent_state = store.load(parent_key)
    if parent_state is None:
        return Inheritance(parent_key, False, list(range(len(genotype))), len(genotype))
    train = regenerated | set(space.new_blocks(genotype, space.parse(parent_key)))
    child_state = model.state_dict()
    loaded: StateDict = {}

    def take(prefix: str) -> bool:
        names = [n for n in child_state if n.startswith(prefix)]
        if not all(n in parent_state and parent_state[n].shape == child_state[n].shape for n in names):
            return False
        loaded.update({n: parent_state[n] for n in names})
        return True

    for prefix in ("stem.", "classifier."):
        if not take(prefix):
            raise LmnasError(f"{store.path(parent_key)}: the {prefix[:-1]} of parent {parent_key!r} does not fit "
                             f"{key!r}; the weights folder holds networks of another space configuration")
    for i in range(len(genotype)):
        if i not in train and not take(f"blocks.{i}."):
            train.add(i)
    model.load_state_dict(loaded, strict=False)  # a subset: the trained blocks keep their fresh init
    return Inheritance(parent_key, True, sorted(train), len(genotype))
