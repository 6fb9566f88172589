"""Synflow (Tanaka et al., NeurIPS 2020), as a zero-cost proxy (Abdelfattah et al., ICLR 2021).

Data-free: every parameter and buffer replaced by its absolute value, the network in double
precision fed one all-ones input; R = sum(output), and the score is sum |theta * dR/dtheta| over
the convolution and linear weights. Abdelfattah et al. compute it without BatchNorm; here BN is
kept in eval mode at its initial statistics (mean 0, var 1, weight 1, bias 0), i.e. the identity
up to 1/sqrt(1 + eps), which is the same network.
"""

from __future__ import annotations

import torch
from torch import nn

from lmnas.proxies import PROXIES
from lmnas.proxies.base import Proxy, ProxyBatch, weighted_layers


@PROXIES.register("synflow")
class Synflow(Proxy):
    name = "synflow"
    needs_data = False

    def score(self, model: nn.Module, batch: ProxyBatch, seed: int) -> float:
        model = model.double().eval()
        with torch.no_grad():
            for value in model.state_dict().values():
                if value.is_floating_point():
                    value.abs_()
        model.zero_grad()
        ones = torch.ones(1, *batch.images.shape[1:], dtype=torch.float64)
        model(ones).sum().backward()
        with torch.no_grad():
            return float(sum((m.weight * m.weight.grad).abs().sum() for m in weighted_layers(model)
                             if m.weight.grad is not None))
