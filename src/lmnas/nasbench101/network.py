"""PyTorch port of the NAS-Bench-101 network (google-research/nasbench `model_builder.py`).

Layout: a 3x3 conv-BN-ReLU stem (128 channels), then `num_stacks` stacks of
`cells_per_stack` cells; every stack after the first starts with a 2x2/2 max-pool and
doubles the channels. Global average pool and one dense layer end the net.

Inside a cell, the output vertex concatenates its in-neighbours (the cell's channels are
split between them, the first ones getting the remainder), interior vertices sum their
inputs, tensors from the cell input always pass through a 1x1 conv-BN-ReLU projection,
and interior tensors with one channel too many are truncated. Convs have no bias; BN
uses the benchmark's momentum 0.997 (PyTorch: 1 - 0.997) and eps 1e-5. Parameter counts
equal the benchmark's `trainable_parameters` (tested) for the vertex order given: the
remainder channels of the split go to the lowest-numbered vertices, so isomorphic
orderings of one cell (same hash) can differ by a few thousand parameters; the benchmark's
count is that of the order stored in its tfrecord.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from lmnas.nasbench101.cell import CONV1X1, CONV3X3, MAXPOOL3X3, CellSpec

BN_MOMENTUM = 1.0 - 0.997  # TF keeps 0.997 of the running stat per step; PyTorch weighs the new batch
BN_EPS = 1e-5
DOWNSAMPLE, CELL = "downsample", "cell"


class ConvBnRelu(nn.Sequential):
    """base_ops.conv_bn_relu: 'same'-padded stride-1 conv without bias, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bn_momentum: float = BN_MOMENTUM) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=bn_momentum),
            nn.ReLU(inplace=False),
        )


def compute_vertex_channels(in_channels: int, out_channels: int, matrix: tuple[tuple[int, ...], ...]) -> list[int]:
    """Channels at each vertex (model_builder.compute_vertex_channels), for a pruned matrix."""
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[-1] = in_channels, out_channels
    if n == 2:
        return channels
    fan_in = sum(matrix[v][n - 1] for v in range(1, n - 1))  # output in-degree, input excluded
    base, extra = divmod(out_channels, fan_in)
    for v in range(1, n - 1):
        if matrix[v][n - 1]:
            channels[v] = base + (1 if extra > 0 else 0)
            extra -= 1
    # Vertices not feeding the output take the max of their successors, going backwards.
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            channels[v] = max(channels[d] for d in range(v + 1, n - 1) if matrix[v][d])
    return channels


class NB101Cell(nn.Module):
    """One NAS-Bench-101 module for a pruned cell; (N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, cell: CellSpec, in_channels: int, out_channels: int, bn_momentum: float = BN_MOMENTUM) -> None:
        super().__init__()
        self.matrix = cell.matrix
        n = cell.num_vertices
        self.channels = compute_vertex_channels(in_channels, out_channels, cell.matrix)
        self.projections = nn.ModuleDict()  # 1x1 projections of the cell input, keyed by vertex
        self.vertex_ops = nn.ModuleDict()
        for t in range(1, n - 1):
            if cell.matrix[0][t]:
                self.projections[str(t)] = ConvBnRelu(in_channels, self.channels[t], 1, bn_momentum)
            self.vertex_ops[str(t)] = _vertex_op(cell.ops[t], self.channels[t], bn_momentum)
        if cell.matrix[0][n - 1]:
            self.projections[str(n - 1)] = ConvBnRelu(in_channels, out_channels, 1, bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m, n = self.matrix, len(self.matrix)
        tensors = [x]
        concat = []
        for t in range(1, n - 1):
            # Truncation keeps the first channels: a vertex may carry one extra channel.
            inputs = [tensors[s][:, : self.channels[t]] for s in range(1, t) if m[s][t]]
            if m[0][t]:
                inputs.append(self.projections[str(t)](x))
            total = inputs[0]
            for extra in inputs[1:]:
                total = total + extra
            tensors.append(self.vertex_ops[str(t)](total))
            if m[t][n - 1]:
                concat.append(tensors[t])
        if not concat:  # only input -> output
            return self.projections[str(n - 1)](x)
        out = concat[0] if len(concat) == 1 else torch.cat(concat, dim=1)
        if m[0][n - 1]:
            out = out + self.projections[str(n - 1)](x)
        return out


def network_layout(stem_channels: int, num_stacks: int, cells_per_stack: int) -> Iterator[tuple[str, int, int]]:
    """The network after its stem, in order, as (step, in channels, out channels): DOWNSAMPLE (the
    2x2/2 max-pool, channels kept) before every stack but the first, then one CELL per cell; a
    stack's first cell doubles the channels. The one statement of the layout: the module, the
    closed-form parameter count and the computed layer encoding (encoding.nb101_layers) all walk it."""
    cell_in = channels = stem_channels
    for stack in range(num_stacks):
        if stack > 0:
            yield DOWNSAMPLE, cell_in, cell_in
            channels *= 2
        for _ in range(cells_per_stack):
            yield CELL, cell_in, channels
            cell_in = channels


class NB101Network(nn.Module):
    def __init__(
        self,
        cell: CellSpec,
        num_classes: int = 10,
        stem_channels: int = 128,
        num_stacks: int = 3,
        cells_per_stack: int = 3,
        in_channels: int = 3,
        bn_momentum: float = BN_MOMENTUM,
    ) -> None:
        super().__init__()
        cell = cell.pruned()
        self.cell = cell
        layers: list[nn.Module] = [ConvBnRelu(in_channels, stem_channels, 3, bn_momentum)]
        channels = stem_channels
        for step, cell_in, channels in network_layout(stem_channels, num_stacks, cells_per_stack):
            if step == DOWNSAMPLE:
                # TF 'same' 2x2/2 pooling pads at the end for odd sizes, i.e. ceil_mode.
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers.append(NB101Cell(cell, cell_in, channels, bn_momentum))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self.apply(_init_like_tf)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def build_network(
    cell: CellSpec,
    num_classes: int = 10,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    in_channels: int = 3,
    *,
    bn_momentum: float = BN_MOMENTUM,
) -> nn.Module:
    """The NAS-Bench-101 network for `cell` (pruned first). Defaults are the benchmark's.

    `bn_momentum` (PyTorch convention) defaults to the benchmark's 0.003; short proxy
    trainings of a few hundred steps may want 0.1 so the running statistics settle.
    """
    return NB101Network(cell, num_classes, stem_channels, num_stacks, cells_per_stack, in_channels, bn_momentum)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _vertex_op(op: str, channels: int, bn_momentum: float) -> nn.Module:
    if op == CONV3X3:
        return ConvBnRelu(channels, channels, 3, bn_momentum)
    if op == CONV1X1:
        return ConvBnRelu(channels, channels, 1, bn_momentum)
    if op == MAXPOOL3X3:
        return nn.MaxPool2d(3, 1, padding=1)
    raise AssertionError(op)  # CellSpec validated the op names


def _init_like_tf(module: nn.Module) -> None:
    # TF1 defaults of the builder: variance_scaling (fan_in, truncated normal) for convs,
    # glorot_uniform + zero bias for the dense layer. No-ops on the meta device.
    if isinstance(module, nn.Conv2d):
        fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        std = math.sqrt(1.0 / fan_in) / 0.87962566103423978  # stddev of a unit normal truncated at 2
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
    elif isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


def network_parameters(
    cell: CellSpec,
    num_classes: int = 10,
    stem_channels: int = 128,
    num_stacks: int = 3,
    cells_per_stack: int = 3,
    in_channels: int = 3,
) -> int:
    """count_parameters(build_network(...)) in closed form (no module built): convs k*k*C_in*C_out,
    each BN 2*C (gamma, beta), the dense layer C*classes + classes. Follows the vertex order given."""
    cell = cell.pruned()
    m, n = cell.matrix, cell.num_vertices

    def conv_bn(c_in: int, c_out: int, kernel: int) -> int:
        return kernel * kernel * c_in * c_out + 2 * c_out

    total = conv_bn(in_channels, stem_channels, 3)
    channels = stem_channels
    for step, cell_in, channels in network_layout(stem_channels, num_stacks, cells_per_stack):
        if step == DOWNSAMPLE:
            continue  # the max-pool has no parameters
        widths = compute_vertex_channels(cell_in, channels, m)
        for t in range(1, n - 1):
            if m[0][t]:
                total += conv_bn(cell_in, widths[t], 1)
            if cell.ops[t] != MAXPOOL3X3:
                total += conv_bn(widths[t], widths[t], 3 if cell.ops[t] == CONV3X3 else 1)
        if m[0][n - 1]:
            total += conv_bn(cell_in, channels, 1)
    return total + channels * num_classes + num_classes
