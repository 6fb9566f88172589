"""Data-parallel training across processes: torchrun detection, the process group, launching.

A run under `torchrun` (or `python -m torch.distributed.run`) has one process per
device, told its place by the environment (`WORLD_SIZE`, `RANK`, `LOCAL_RANK`).
`process_group(device)` joins the group (NCCL on CUDA, gloo on CPU) and gives each
rank its device (`cuda:LOCAL_RANK`); without those variables it does nothing, so the
same entry point runs single-process. `launch` starts such a run from a parent
process (a Snakemake job) on one node and relays its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lmnas.errors import LmnasError


@dataclass(frozen=True)
class LaunchEnv:
    """This process's place in a torchrun launch."""

    rank: int  # global rank, 0..world_size-1
    local_rank: int  # rank on this node: the CUDA device index
    world_size: int


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv | None:
    """The torchrun variables of `environ` (default: os.environ), or None outside a launch."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return None
    try:
        env = LaunchEnv(
            rank=int(environ["RANK"]), local_rank=int(environ["LOCAL_RANK"]), world_size=int(environ["WORLD_SIZE"])
        )
    except (KeyError, ValueError) as exc:
        raise LmnasError(
            f"torchrun environment: WORLD_SIZE is set but RANK/LOCAL_RANK are missing or not integers ({exc})"
        ) from None
    if not 0 <= env.rank < env.world_size or env.local_rank < 0:
        raise LmnasError(
            f"torchrun environment: RANK={env.rank}, LOCAL_RANK={env.local_rank}, WORLD_SIZE={env.world_size} "
            "(expected 0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0)"
        )
    return env


def is_distributed() -> bool:
    """A process group with more than one rank is active (the loop then shards and all-reduces)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes artefacts and prints progress."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank; a no-op without a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_backend() == "nccl":
        # NCCL's barrier needs to know this rank's device, or it guesses from the rank.
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum `tensor` over ranks in place (and return it); unchanged without a process group."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    if is_distributed():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def per_rank_batch(batch_size: int, world: int, where: str = "recipe.batch_size") -> int:
    """The per-rank share of a global batch; the global batch must split evenly over the ranks."""
    if world < 1 or batch_size % world:
        raise LmnasError(
            f"{where}={batch_size} is not divisible by the {world} data-parallel ranks; "
            f"use a multiple of {world} (the global batch is split evenly, {world} ranks × batch_size/{world})"
        )
    return batch_size // world


@contextmanager
def process_group(device: str, timeout_s: float = 1800.0) -> Iterator[str]:
    """Join the torchrun process group, if launched under one, for the body; yield this rank's device.

    `device` is "cpu" (gloo) or "cuda"/"cuda:N" (NCCL; every rank takes `cuda:LOCAL_RANK`).
    Outside a launch it yields `device` unchanged and starts nothing.
    """
    env = launch_env()
    if env is None or dist.is_initialized():
        yield device
        return
    if device.startswith("cuda"):
        if torch.cuda.device_count() <= env.local_rank:
            raise LmnasError(
                f"rank {env.rank}: LOCAL_RANK={env.local_rank} but this node has "
                f"{torch.cuda.device_count()} CUDA device(s); launch at most that many ranks"
            )
        torch.cuda.set_device(env.local_rank)  # before init, so NCCL binds this rank to its own GPU
        backend, rank_device = "nccl", f"cuda:{env.local_rank}"
    elif device == "cpu":
        backend, rank_device = "gloo", "cpu"
    else:
        raise LmnasError(f"device={device!r}: data-parallel runs take 'cpu' or 'cuda'")
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    try:
        yield rank_device
        barrier()  # no rank tears the group down while another still talks to it
    finally:
        dist.destroy_process_group()


def ranks_for(requested_gpus: int, device: str) -> int:
    """How many data-parallel ranks to launch: the rule's GPUs when CUDA has that many, else 1 (in-process)."""
    if requested_gpus > 1 and device.startswith("cuda") and torch.cuda.device_count() >= requested_gpus:
        return requested_gpus
    return 1


def launch(module: str, args: Sequence[str], nproc: int, *, env: Mapping[str, str] | None = None) -> None:
    """Run `python -m torch.distributed.run --standalone --nproc_per_node nproc -m module args` on this node.

    Output of every rank is relayed line by line to sys.stdout (so a Snakemake rule's
    log tee sees it). A failed run raises LmnasError with the ranks' own one-line
    errors (lines starting "lmnas:"), or else the last lines of the output.
    """
    if nproc < 1:
        raise LmnasError(f"launch: nproc={nproc} (expected >= 1)")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", module, *args,
    ]
    child_env = {**os.environ, **(env or {})}
    # torchrun would set 1 anyway (with a warning); the ranks' work is on their devices.
    child_env.setdefault("OMP_NUM_THREADS", "1")
    # The ranks import lmnas from wherever this process did (an installed package or a src/ checkout).
    src = str(Path(__file__).resolve().parents[2])
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (src, child_env.get("PYTHONPATH", "")) if p)
    tail: deque[str] = deque(maxlen=30)
    errors: list[str] = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            tail.append(line.rstrip("\n"))
            if line.startswith("lmnas:"):
                errors.append(line.strip())
    if process.returncode != 0:
        detail = "\n".join(errors) if errors else "its last lines:\n" + "\n".join(tail)
        raise LmnasError(f"{nproc}-rank run of `python -m {module}` failed (exit {process.returncode}):\n{detail}")
