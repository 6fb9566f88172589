"""Expand a network into its GPT-NAS layer sequence by one forward pass on the meta device.

Forward hooks on every leaf module (Conv, Linear, BatchNorm, activations, pooling,
dropout, StochasticDepth…; `nn.Identity` skipped) record each call in execution order
with its input/output sizes; a module called twice (ResNet's shared ReLU) gives two
layers. The meta device computes shapes without memory or arithmetic, so the 36
torchvision variants trace in seconds. Functional ops (residual adds, concatenations,
`torch.flatten`, channel shuffles) are not layers and do not appear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torchvision.models.efficientnet import FusedMBConv, MBConv
from torchvision.models.googlenet import Inception, InceptionAux
from torchvision.models.mobilenetv2 import InvertedResidual as MobileNetInvertedResidual
from torchvision.models.regnet import ResBottleneckBlock, SimpleStemIN
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.models.shufflenetv2 import InvertedResidual as ShuffleInvertedResidual
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation
from torchvision.ops.stochastic_depth import StochasticDepth

from lmnas.encoding.layers import Layer
from lmnas.nasbench101.network import NB101Cell

DEFAULT_BLOCK_TYPES: tuple[type[nn.Module], ...] = (
    Conv2dNormActivation,
    SqueezeExcitation,
    Inception,
    InceptionAux,
    ResBottleneckBlock,
    SimpleStemIN,
    Bottleneck,
    BasicBlock,
    ShuffleInvertedResidual,
    MobileNetInvertedResidual,
    MBConv,
    FusedMBConv,
    NB101Cell,
)


# Leaves whose eval-mode output has the input's shape: the trace runs them as identities,
# because meta kernels of batch_norm & co. are slow Python decompositions (6x faster).
_SHAPE_PRESERVING: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*
    nn.GroupNorm,
    nn.LayerNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.modules.dropout._DropoutNd,
    StochasticDepth,
)
# Weight initialisers and the in-place ops they use; meta tensors have nothing to fill.
# (A mode is off while its handler runs, so nn.init.* must be caught themselves.)
_INIT_OPS = frozenset(
    [
        getattr(nn.init, name)
        for name in (
            "normal_", "uniform_", "trunc_normal_", "constant_", "zeros_", "ones_",
            "kaiming_normal_", "kaiming_uniform_", "xavier_normal_", "xavier_uniform_",
        )
    ]
    + [
        getattr(torch.Tensor, name)
        for name in ("normal_", "uniform_", "fill_", "zero_", "erfinv_", "mul_", "add_", "clamp_", "copy_")
    ]
)  # fmt: skip


class _SkipInitOnMeta(TorchFunctionMode):
    """Return meta tensors from in-place init ops untouched: torchvision's inits
    (normal_, trunc_normal_, kaiming_*) otherwise run slow meta decompositions."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in _INIT_OPS and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


@contextmanager
def on_meta() -> Iterator[None]:
    """Build modules on the meta device: shapes only, no memory, initialisation skipped."""
    with torch.device("meta"), _SkipInitOnMeta():
        yield


def trace_layers(
    model: nn.Module | Callable[[], nn.Module],
    input_shape: tuple[int, int, int] = (3, 32, 32),
    block_types: tuple[type[nn.Module], ...] = (),
) -> list[Layer]:
    """Layers of `model` for one (1, C, H, W) input, in execution order.

    `model` is a module (moved to meta, so pass a copy if you need its weights) or a
    zero-argument constructor (built directly on meta: no weight allocation or init).
    Each layer's `block` is the class name of its outermost enclosing module whose type is
    in `block_types` (empty: DEFAULT_BLOCK_TYPES, the torchvision blocks and NB101Cell).
    """
    if isinstance(model, nn.Module):
        net = model.to("meta")
    else:
        with on_meta():
            net = model()
    net.eval()  # inference graph: no GoogLeNet aux heads, no dropout/BN-stat semantics needed
    blocks = _block_labels(net, block_types or DEFAULT_BLOCK_TYPES)
    layers: list[Layer] = []
    handles = []

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            if not inputs or not isinstance(inputs[0], torch.Tensor) or not isinstance(output, torch.Tensor):
                return
            layers.append(_layer(len(layers) + 1, name, module, inputs[0], output, blocks[name]))

        return hook

    passthrough = []
    for name, module in net.named_modules():
        if not any(True for _ in module.children()) and not isinstance(module, nn.Identity):
            handles.append(module.register_forward_hook(hook_for(name)))
            if isinstance(module, _SHAPE_PRESERVING) and "forward" not in vars(module):
                module.forward = _identity  # instance attribute; removed again below
                passthrough.append(module)
    try:
        with torch.no_grad():
            net(torch.empty(1, *input_shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
        for module in passthrough:
            del module.forward
    return layers


def _identity(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return x


def _block_labels(net: nn.Module, block_types: tuple[type[nn.Module], ...]) -> dict[str, str]:
    # The OUTERMOST block labels a layer: an MBConv's inner Conv2dNormActivation and
    # SqueezeExcitation belong to the MBConv, which is the unit a search re-generates.
    # named_modules lists parents before children, so a child inherits its parent's label.
    labels: dict[str, str] = {}
    for name, module in net.named_modules():
        parent = labels.get(name.rpartition(".")[0], "") if name else ""
        labels[name] = parent or (type(module).__name__ if isinstance(module, block_types) else "")
    return labels


def _size(tensor: torch.Tensor) -> tuple[int, ...]:
    shape = tuple(int(s) for s in tensor.shape[1:])  # drop the batch dimension
    if len(shape) == 3:  # (C, H, W) -> H-W-C as in the paper's text
        return (shape[1], shape[2], shape[0])
    return shape


def _pair(value: object) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value)  # type: ignore[union-attr]


def _layer(index: int, name: str, module: nn.Module, x: torch.Tensor, y: torch.Tensor, block: str) -> Layer:
    kernel = stride = padding = dilation = ()
    groups, value = 1, 0.0
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel, stride, dilation = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
        if isinstance(module.padding, str):  # 'same' / 'valid'
            same = module.padding == "same"
            padding = tuple(d * (k - 1) // 2 if same else 0 for k, d in zip(kernel, dilation))
        else:
            padding = _pair(module.padding)
        groups = module.groups
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel, stride, padding = _pair(module.kernel_size), _pair(module.stride), _pair(module.padding)
        dilation = _pair(getattr(module, "dilation", 1))
    if isinstance(module, (nn.modules.dropout._DropoutNd, StochasticDepth)):
        value = float(module.p)
    elif isinstance(module, nn.LeakyReLU):
        value = float(module.negative_slope)
    elif isinstance(module, nn.ELU):
        value = float(module.alpha)
    bias = getattr(module, "bias", None)
    return Layer(
        id=index,
        type=type(module).__name__,
        name=name,
        in_size=_size(x),
        out_size=_size(y),
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=int(groups),
        value=value,
        bias_used=isinstance(bias, torch.Tensor),
        block=block,
    )
