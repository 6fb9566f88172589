"""The 36 torchvision variants of the GPT-NAS fine-tuning corpus (no weights needed).

Families and counts follow the paper: EfficientNet 8 (b0-b7), GoogLeNet 1, RegNet 14,
ResNet 5, ResNeXt 2, ShuffleNet 4, Wide-ResNet 2. torchvision has 15 RegNet
constructors; the 14 used are all but the largest, regnet_y_128gf (the one without an
ImageNet-1K-only recipe), listed smallest to largest within X and Y.

Input sizes: 224 x 224, except EfficientNet at the evaluation crop of torchvision's
IMAGENET1K_V1 weights (b0..b7: 224, 240, 288, 300, 380, 456, 528, 600), the resolution
each variant was built for; the layer sizes in the corpus then match the trained nets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torchvision.models
from torch import nn
from torchvision.models.regnet import BlockParams

from lmnas.encoding.trace import on_meta
from lmnas.errors import LmnasError


@dataclass(frozen=True)
class Variant:
    family: str
    name: str  # torchvision constructor
    input_size: int = 224  # square input, pixels
    kwargs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (3, self.input_size, self.input_size)

    def build(self, device: str | torch.device = "meta") -> nn.Module:
        """The untrained network (weights=None), built directly on `device`."""
        placement = on_meta() if torch.device(device).type == "meta" else torch.device(device)
        if self.family == "RegNet":
            return _build_regnet(self.name, placement)
        with placement:
            return getattr(torchvision.models, self.name)(weights=None, **self.kwargs)


def _build_regnet(name: str, placement: Any) -> nn.Module:
    """RegNet through its public pieces: `BlockParams.from_init_params` derives the stage
    widths with torch ops and `.tolist()`, which the meta device cannot answer, so they are
    computed on the CPU first; only the layers are then built under `placement`.
    Same network as `torchvision.models.<name>(weights=None)` (see _REGNET_PARAMS)."""
    with torch.device("cpu"):
        block_params = BlockParams.from_init_params(**_REGNET_PARAMS[name])
    # torchvision's _regnet() default norm layer.
    norm_layer = partial(nn.BatchNorm2d, eps=1e-05, momentum=0.1)
    with placement:
        return torchvision.models.RegNet(block_params, norm_layer=norm_layer)


_EFFICIENTNET_SIZES = (224, 240, 288, 300, 380, 456, 528, 600)
_REGNETS = (
    "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf",
    "regnet_x_16gf", "regnet_x_32gf",
    "regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
    "regnet_y_16gf", "regnet_y_32gf",
)  # fmt: skip
# The design-space parameters each torchvision constructor passes to BlockParams.from_init_params
# (torchvision/models/regnet.py; Radosavovic et al. 2020, "Designing Network Design Spaces", Table 5
# and appendix). Y models add squeeze-excitation with ratio 0.25. tests/test_regnet_params.py
# checks every entry against torchvision's own constructors.
_REGNET_PARAMS: dict[str, dict[str, Any]] = {
    "regnet_x_400mf": dict(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16),
    "regnet_x_800mf": dict(depth=16, w_0=56, w_a=35.73, w_m=2.28, group_width=16),
    "regnet_x_1_6gf": dict(depth=18, w_0=80, w_a=34.01, w_m=2.25, group_width=24),
    "regnet_x_3_2gf": dict(depth=25, w_0=88, w_a=26.31, w_m=2.25, group_width=48),
    "regnet_x_8gf": dict(depth=23, w_0=80, w_a=49.56, w_m=2.88, group_width=120),
    "regnet_x_16gf": dict(depth=22, w_0=216, w_a=55.59, w_m=2.1, group_width=128),
    "regnet_x_32gf": dict(depth=23, w_0=320, w_a=69.86, w_m=2.0, group_width=168),
    "regnet_y_400mf": dict(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, se_ratio=0.25),
    "regnet_y_800mf": dict(depth=14, w_0=56, w_a=38.84, w_m=2.4, group_width=16, se_ratio=0.25),
    "regnet_y_1_6gf": dict(depth=27, w_0=48, w_a=20.71, w_m=2.65, group_width=24, se_ratio=0.25),
    "regnet_y_3_2gf": dict(depth=21, w_0=80, w_a=42.63, w_m=2.66, group_width=24, se_ratio=0.25),
    "regnet_y_8gf": dict(depth=17, w_0=192, w_a=76.82, w_m=2.19, group_width=56, se_ratio=0.25),
    "regnet_y_16gf": dict(depth=18, w_0=200, w_a=106.23, w_m=2.48, group_width=112, se_ratio=0.25),
    "regnet_y_32gf": dict(depth=20, w_0=232, w_a=115.89, w_m=2.53, group_width=232, se_ratio=0.25),
}  # fmt: skip

VARIANTS: tuple[Variant, ...] = (
    *(Variant("EfficientNet", f"efficientnet_b{i}", size) for i, size in enumerate(_EFFICIENTNET_SIZES)),
    # init_weights=True only silences torchvision's warning about a future default change.
    Variant("GoogLeNet", "googlenet", kwargs={"init_weights": True}),
    *(Variant("RegNet", name) for name in _REGNETS),
    *(Variant("ResNet", f"resnet{depth}") for depth in (18, 34, 50, 101, 152)),
    Variant("ResNeXt", "resnext50_32x4d"),
    Variant("ResNeXt", "resnext101_32x8d"),
    *(Variant("ShuffleNet", f"shufflenet_v2_{w}") for w in ("x0_5", "x1_0", "x1_5", "x2_0")),
    Variant("Wide-ResNet", "wide_resnet50_2"),
    Variant("Wide-ResNet", "wide_resnet101_2"),
)

FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(v.family for v in VARIANTS))


def get_variant(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise LmnasError(f"unknown torchvision variant {name!r}; known: {', '.join(v.name for v in VARIANTS)}")
