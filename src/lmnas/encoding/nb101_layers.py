"""The GPT-NAS layer sequence of a NAS-Bench-101 network, computed from the cell, not traced.

`trace_layers(build_network(cell))` runs a meta-device forward pass with hooks (about 20 ms a
cell: 2-3 hours for the 423,624 cells in one process). The network's layer order is simple
enough to write down: the stem (Conv-BN-ReLU), then per cell, for each interior vertex t in
order, the 1x1 input projection of t (if input→t) and t's op, then the output projection (if
input→output); a 2x2/2 max-pool (ceil mode) before every stack but the first; global average
pool and the classifier. `cell_layers` gives exactly the traced `Layer`s (names, sizes,
attributes, blocks; tested equal on a sample) and `cell_structures` just their GPT tokens.
"""

from __future__ import annotations

from functools import lru_cache

from lmnas.encoding.layers import Layer
from lmnas.nasbench101.cell import CONV3X3, MAXPOOL3X3, CellSpec
from lmnas.nasbench101.network import DOWNSAMPLE, compute_vertex_channels, network_layout

_CELL_BLOCK = "NB101Cell"


def cell_layers(
    cell: CellSpec,
    num_classes: int = 10,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    input_shape: tuple[int, int, int] = (3, 32, 32),
) -> list[Layer]:
    """The layers `trace_layers(build_network(cell, ...), input_shape)` records, in order."""
    cell = cell.pruned()
    m, n = cell.matrix, cell.num_vertices
    c_in, h, w = input_shape
    layers: list[Layer] = []

    def add(**kwargs: object) -> None:
        layers.append(Layer(id=len(layers) + 1, **kwargs))  # type: ignore[arg-type]

    def conv_bn_relu(name: str, c0: int, c1: int, kernel: int, block: str) -> None:
        pad = kernel // 2
        add(type="Conv2d", name=f"{name}.0", in_size=(h, w, c0), out_size=(h, w, c1), kernel=(kernel, kernel),
            stride=(1, 1), padding=(pad, pad), dilation=(1, 1), block=block)
        add(type="BatchNorm2d", name=f"{name}.1", in_size=(h, w, c1), out_size=(h, w, c1), bias_used=True, block=block)
        add(type="ReLU", name=f"{name}.2", in_size=(h, w, c1), out_size=(h, w, c1), block=block)

    conv_bn_relu("features.0", c_in, stem_channels, 3, "")
    channels = stem_channels
    # features.0 is the stem: the layout's steps are features.1, features.2, ... in order.
    for index, (step, cell_in, channels) in enumerate(network_layout(stem_channels, num_stacks, cells_per_stack), 1):
        if step == DOWNSAMPLE:
            out_h, out_w = -(-h // 2), -(-w // 2)
            add(type="MaxPool2d", name=f"features.{index}", in_size=(h, w, channels), out_size=(out_h, out_w, channels),
                kernel=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1))
            h, w = out_h, out_w
            continue
        widths = compute_vertex_channels(cell_in, channels, m)
        prefix = f"features.{index}"
        for t in range(1, n - 1):
            if m[0][t]:
                conv_bn_relu(f"{prefix}.projections.{t}", cell_in, widths[t], 1, _CELL_BLOCK)
            c = widths[t]
            if cell.ops[t] == MAXPOOL3X3:
                add(type="MaxPool2d", name=f"{prefix}.vertex_ops.{t}", in_size=(h, w, c), out_size=(h, w, c),
                    kernel=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1), block=_CELL_BLOCK)
            else:
                conv_bn_relu(f"{prefix}.vertex_ops.{t}", c, c, 3 if cell.ops[t] == CONV3X3 else 1, _CELL_BLOCK)
        if m[0][n - 1]:
            conv_bn_relu(f"{prefix}.projections.{n - 1}", cell_in, channels, 1, _CELL_BLOCK)
    add(type="AdaptiveAvgPool2d", name="pool", in_size=(h, w, channels), out_size=(1, 1, channels))
    add(type="Linear", name="classifier", in_size=(channels,), out_size=(num_classes,), bias_used=True)
    return layers


def cell_structures(
    cell: CellSpec,
    num_classes: int = 10,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    input_shape: tuple[int, int, int] = (3, 32, 32),
) -> list[str]:
    """The GPT tokens (`Layer.structure()`) of `cell_layers`, without building the layers: the
    token only depends on a layer's kind and whether its channels grow, stay or shrink."""
    cell = cell.pruned()
    m, n = cell.matrix, cell.num_vertices
    tokens: list[str] = []

    def conv_bn_relu(c0: int, c1: int, kernel: int) -> None:
        tokens.extend(_conv_tokens(kernel, _change(c0, c1)))

    conv_bn_relu(input_shape[0], stem_channels, 3)
    channels = stem_channels
    for step, cell_in, channels in network_layout(stem_channels, num_stacks, cells_per_stack):
        if step == DOWNSAMPLE:
            tokens.append(_token("MaxPool2d", 2, "same"))
            continue
        widths = compute_vertex_channels(cell_in, channels, m)
        for t in range(1, n - 1):
            if m[0][t]:
                conv_bn_relu(cell_in, widths[t], 1)
            if cell.ops[t] == MAXPOOL3X3:
                tokens.append(_token("MaxPool2d", 3, "same"))
            else:
                conv_bn_relu(widths[t], widths[t], 3 if cell.ops[t] == CONV3X3 else 1)
        if m[0][n - 1]:
            conv_bn_relu(cell_in, channels, 1)
    tokens.append(_token("AdaptiveAvgPool2d", 0, "same"))
    tokens.append(_token("Linear", 0, _change(channels, num_classes)))
    return tokens


def _change(c0: int, c1: int) -> str:
    return "same" if c0 == c1 else "up" if c1 > c0 else "down"


@lru_cache(maxsize=None)
def _conv_tokens(kernel: int, change: str) -> tuple[str, str, str]:
    return _token("Conv2d", kernel, change), _token("BatchNorm2d", 0, "same"), _token("ReLU", 0, "same")


@lru_cache(maxsize=None)
def _token(kind: str, kernel: int, change: str) -> str:
    """Layer.structure() of a representative layer of that kind (sizes 8 → 8/16/4 channels)."""
    c1 = {"same": 8, "up": 16, "down": 4}[change]
    extra: dict = {"bias_used": kind in ("BatchNorm2d", "Linear")}
    if kind == "Conv2d":
        extra.update(kernel=(kernel, kernel), stride=(1, 1), padding=(kernel // 2,) * 2, dilation=(1, 1))
    elif kind == "MaxPool2d":  # 3x3/1 pad 1 in a cell, 2x2/2 between stacks
        stride, pad = (1, 1) if kernel == 3 else (2, 2), (1, 1) if kernel == 3 else (0, 0)
        extra.update(kernel=(kernel, kernel), stride=stride, padding=pad, dilation=(1, 1))
    sizes = ((8,), (c1,)) if kind == "Linear" else ((4, 4, 8), (4, 4, c1))
    return Layer(id=0, type=kind, name="", in_size=sizes[0], out_size=sizes[1], **extra).structure()
