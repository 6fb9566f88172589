"""FLOPs and parameters of a built network, counted with torch's own FLOP counter."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-adds for one image, as the NAS papers count FLOPs.

    FlopCounterMode counts 2 FLOPs per multiply-add of conv/matmul, so halve it.
    """
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(1, *input_shape, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops()) // 2


def measure(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, int]:
    return {"params": count_params(model), "flops": count_macs(model, input_shape)}
