"""Zen-score (Lin et al., "Zen-NAS", ICCV 2021), data-free.

Weights re-drawn N(0, 1) (BatchNorm weight 1, bias 0), train mode; x, eps ~ N(0, 1) of the batch's
shape; with f the feature map before global average pooling,
    zen = log(mean_i sum |f(x_i) - f(x_i + 0.01 eps_i)|) + sum over BN layers of log sqrt(mean_c var_c),
as the authors' `compute_zen_score` (mixup_gamma 1e-2, one repeat; var_c is each BN's
`running_var` after the two forwards, at the layers' own momentum, as there).
Simplification: the score is applied to networks with residual/parallel paths too (Zen-NAS
derived it for plain ones), as NASLib's benchmarks do.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lmnas.errors import LmnasError
from lmnas.proxies import PROXIES
from lmnas.proxies.base import Proxy, ProxyBatch

MIXUP_GAMMA = 1e-2


def gaussian_init(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@PROXIES.register("zen")
class ZenScore(Proxy):
    name = "zen"
    needs_data = False

    def score(self, model: nn.Module, batch: ProxyBatch, seed: int) -> float:
        pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
        if not pools:
            raise LmnasError(f"zen: {type(model).__name__} has no global average pool (nn.AdaptiveAvgPool2d) "
                             "to take the pre-pooling feature map from")
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        gaussian_init(model)
        x = torch.randn(batch.images.shape, generator=g)
        mixed = x + MIXUP_GAMMA * torch.randn(batch.images.shape, generator=g)
        features: list[torch.Tensor] = []

        def take_features(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            features.append(inputs[0])

        handle = pools[-1].register_forward_pre_hook(take_features)
        try:
            model.train()
            with torch.no_grad():
                model(x)
                model(mixed)
        finally:
            handle.remove()
        variances = [float(m.running_var.mean()) for m in model.modules()
                     if isinstance(m, nn.BatchNorm2d) and m.running_var is not None]
        delta = (features[0] - features[1]).abs().sum(dim=(1, 2, 3)).mean()
        bn_term = sum(0.5 * math.log(v) if v > 0 else float("-inf") for v in variances)
        return math.log(float(delta)) + bn_term if float(delta) > 0 else float("-inf")
