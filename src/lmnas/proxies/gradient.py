"""Gradient proxies on one minibatch (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
ICLR 2021): the cross-entropy of the untrained network (train mode) backpropagated once.

- grad_norm: sum over convolution/linear layers of ||dL/dW||_2.
- snip (Lee et al., ICLR 2019): sum of |W * dL/dW|, the connection sensitivity.
"""

from __future__ import annotations

import torch
from torch import nn

from lmnas.proxies import PROXIES
from lmnas.proxies.base import Proxy, ProxyBatch, weighted_layers


def backprop_loss(model: nn.Module, batch: ProxyBatch) -> list[nn.Module]:
    """One forward/backward of the cross-entropy; the layers whose weights got a gradient."""
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(model(batch.images), batch.labels).backward()
    return [m for m in weighted_layers(model) if m.weight.grad is not None]


@PROXIES.register("grad_norm")
class GradNorm(Proxy):
    name = "grad_norm"
    needs_data = True

    def score(self, model: nn.Module, batch: ProxyBatch, seed: int) -> float:
        return float(sum(m.weight.grad.norm() for m in backprop_loss(model, batch)))


@PROXIES.register("snip")
class SNIP(Proxy):
    name = "snip"
    needs_data = True

    def score(self, model: nn.Module, batch: ProxyBatch, seed: int) -> float:
        layers = backprop_loss(model, batch)
        with torch.no_grad():
            return float(sum((m.weight * m.weight.grad).abs().sum() for m in layers))
