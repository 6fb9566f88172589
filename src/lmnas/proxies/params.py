"""Parameter count: the baseline every zero-cost proxy is compared with (Abdelfattah et al., ICLR 2021,
report it beside synflow & co.; on NAS-Bench-201 it ranks about as well as most of them)."""

from __future__ import annotations

from torch import nn

from lmnas.proxies import PROXIES
from lmnas.proxies.base import Proxy, ProxyBatch


@PROXIES.register("params")
class ParameterCount(Proxy):
    name = "params"
    needs_data = False

    def score(self, model: nn.Module, batch: ProxyBatch, seed: int) -> float:
        return float(sum(p.numel() for p in model.parameters()))
