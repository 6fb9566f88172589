"""The proxy contract, the minibatch it sees (`ProxyBatch`; made in `batch.py`), and how one genotype is scored.

A score is a deterministic function of (proxy, space settings, genotype, batch, seed): the
network is built under `torch.manual_seed(genotype_seed(seed, key))` (the evaluator's
per-genotype init, independent of scoring order) on one torch thread, so a resumed or
reordered run, a cached table and a fresh computation give the same float.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lmnas.spaces.base import Genotype, SearchSpace

@dataclass(frozen=True)
class ProxyBatch:
    """One minibatch: images float32 [B, C, H, W] (normalised), labels int64 [B].

    Data-free proxies read only `images.shape` (and draw their own inputs)."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str  # "noise", or the prepared dataset folder it came from

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "batch_size": int(self.images.shape[0]), "shape": list(self.images.shape[1:])}

    def sha256(self) -> str:
        """Of the exact images and labels: a proxy table's key, whatever code or data made them."""
        digest = hashlib.sha256()
        for t in (self.images, self.labels):
            digest.update(f"{t.dtype}{list(t.shape)}".encode())
            digest.update(t.contiguous().numpy().tobytes())
        return digest.hexdigest()


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
