"""NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021).

Each ReLU's binary code c_i (which units are active for image i) gives the kernel
K_H[i, j] = N_A - d_H(c_i, c_j) = c_i·c_j + (1 - c_i)·(1 - c_j), summed over every ReLU;
the score is log|K_H| (`slogdet`). As the authors' code: the untrained network in train
mode (BatchNorm on batch statistics), one minibatch, no gradient.
"""

from __future__ import annotations

import torch
from torch import nn

from lmnas.proxies import PROXIES
from lmnas.proxies.base import Proxy, ProxyBatch


@PROXIES.register("naswot")
class NASWOT(Proxy):
    name = "naswot"
    needs_data = True

    def score(self, model: nn.Module, batch: ProxyBatch, seed: int) -> float:
        n = batch.images.shape[0]
        kernel = torch.zeros(n, n, dtype=torch.float64)

        def add_codes(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            codes = (output.detach().flatten(1) > 0).double()  # [B, units]; ReLU(x) > 0 iff x > 0
            kernel.add_(codes @ codes.T).add_((1.0 - codes) @ (1.0 - codes).T)

        handles = [m.register_forward_hook(add_codes) for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
        try:
            model.train()
            with torch.no_grad():
                model(batch.images)
        finally:
            for h in handles:
                h.remove()
        return float(torch.linalg.slogdet(kernel).logabsdet)
