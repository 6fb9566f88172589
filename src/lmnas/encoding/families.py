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

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

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
        constructor = getattr(torchvision.models, self.name)
        widths_on_cpu = _regnet_widths_on_cpu() if self.family == "RegNet" else nullcontext()
        placement = on_meta() if torch.device(device).type == "meta" else torch.device(device)
        with placement, widths_on_cpu:
            return constructor(weights=None, **self.kwargs)


@contextmanager
def _regnet_widths_on_cpu() -> Iterator[None]:
    """RegNet derives its stage widths with torch ops and `.tolist()`, which the meta device
    cannot answer; compute just those on the CPU while the layers are built on meta."""
    original = BlockParams.from_init_params

    def on_cpu(*args: Any, **kwargs: Any) -> BlockParams:
        with torch.device("cpu"):
            return original(*args, **kwargs)

    with mock.patch.object(BlockParams, "from_init_params", on_cpu):
        yield


_EFFICIENTNET_SIZES = (224, 240, 288, 300, 380, 456, 528, 600)
_REGNETS = (
    "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf",
    "regnet_x_16gf", "regnet_x_32gf",
    "regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
    "regnet_y_16gf", "regnet_y_32gf",
)  # fmt: skip

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
