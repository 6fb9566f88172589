"""Data-parallel training across processes: torchrun detection, the process group, launching.

A run under `torchrun` (or `python -m torch.distributed.run`) has one process per
device, told its place by the environment (`WORLD_SIZE`, `RANK`, `LOCAL_RANK`).
`process_group(device)` joins the group (NCCL on CUDA, gloo on CPU) and gives each
rank its device (`cuda:LOCAL_RANK`); without those variables it does nothing, so the
same entry point runs single-process. `launch` starts such a run from a parent
process (a Snakemake job) and relays its output: on one node `torchrun --standalone`;
on several nodes of a SLURM allocation one torchrun agent per node through `srun`, the
agents meeting at a c10d rendezvous on the allocation's first node. `topology_for`
turns the rule's request (nodes x GPUs per node) into ranks, refusing what this
machine or allocation does not have instead of silently running fewer ranks.
"""

from __future__ import annotations

import os
import re
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
from lmnas.processes import die_with_parent


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
    # torchrun gives every rank a session of its own: without this, a killed agent (kill -9 of
    # the launch, of its process group, of the Snakemake job) leaves its ranks training on,
    # racing the rerun for the checkpoints. An agent that died before this line took the
    # group's store with it: joining below then fails, before any rank writes a file.
    die_with_parent(os.getppid())
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


@dataclass(frozen=True)
class Topology:
    """The data-parallel ranks of one run: `nodes` x `ranks_per_node` (one rank per GPU, or gloo processes)."""

    nodes: int = 1
    ranks_per_node: int = 1

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.ranks_per_node < 1:
            raise LmnasError(f"topology: nodes={self.nodes}, ranks_per_node={self.ranks_per_node} (expected >= 1)")

    @property
    def world_size(self) -> int:
        return self.nodes * self.ranks_per_node


def topology_for(
    nodes: int, gpus_per_node: int, device: str, *, where: str = "resources.retrain",
    environ: Mapping[str, str] | None = None, visible_gpus: int | None = None,
) -> Topology:
    """The ranks for a request of `nodes` x `gpus_per_node` on `device` (already resolved: cpu/cuda[:N]).

    CUDA: one rank per requested GPU on every node (at least one); this node must see that
    many devices. CPU: one gloo rank per node; asking for GPUs then is an error (the GPUs
    would sit idle). More than one node needs a SLURM allocation of exactly that many nodes.
    Every refusal names what was found, so that a short allocation never trains as one rank.
    """
    environ = os.environ if environ is None else environ
    if nodes < 1 or gpus_per_node < 0:
        raise LmnasError(f"{where}: nodes={nodes}, gpus_per_node={gpus_per_node} (expected nodes >= 1, gpus_per_node >= 0)")
    if device.startswith("cuda"):
        found = torch.cuda.device_count() if visible_gpus is None else visible_gpus
        if found < gpus_per_node:
            shown = environ.get("CUDA_VISIBLE_DEVICES")
            raise LmnasError(
                f"{where}.gpus_per_node={gpus_per_node} but this node sees {found} CUDA device(s)"
                f"{f' (CUDA_VISIBLE_DEVICES={shown})' if shown is not None else ''}; "
                f"ask for at most {found}, or check that the job got its GPUs (sbatch --gres=gpu:{gpus_per_node})")
        ranks = max(gpus_per_node, 1)
    elif device == "cpu":
        if gpus_per_node > 0:
            raise LmnasError(
                f"{where}.gpus_per_node={gpus_per_node} but the device is cpu (torch sees "
                f"{torch.cuda.device_count() if visible_gpus is None else visible_gpus} CUDA device(s)); "
                "set gpus_per_node: 0 to train on CPUs (one gloo rank per node), or run where CUDA is")
        ranks = 1
    else:
        raise LmnasError(f"device={device!r}: data-parallel runs take 'cpu' or 'cuda'")
    if nodes > 1:
        allocated = slurm_nodes(environ)
        if allocated is None:
            raise LmnasError(
                f"{where}.nodes={nodes} needs a SLURM allocation of {nodes} nodes (SLURM_JOB_ID is not set here); "
                "run through the slurm profile, or set nodes: 1")
        if allocated != nodes:
            raise LmnasError(
                f"{where}.nodes={nodes} but this SLURM job has {allocated} node(s) (SLURM_JOB_NUM_NODES); "
                f"submit with --nodes={nodes}")
    return Topology(nodes=nodes, ranks_per_node=ranks)


def slurm_nodes(environ: Mapping[str, str]) -> int | None:
    """The node count of the SLURM job this process runs in, or None outside one."""
    if "SLURM_JOB_ID" not in environ:
        return None
    count = environ.get("SLURM_JOB_NUM_NODES") or environ.get("SLURM_NNODES")
    if count is None or not count.isdigit():
        raise LmnasError(f"SLURM job {environ['SLURM_JOB_ID']}: SLURM_JOB_NUM_NODES is {count!r} (expected a number)")
    return int(count)


def first_node(nodelist: str) -> str:
    """The first host of a SLURM node list: 'gpu[07-08,11],cpu1' -> 'gpu07', 'a1,b2' -> 'a1'.

    (What `scontrol show hostnames` would print first, without needing scontrol.)
    """
    head = ""
    i = 0
    while i < len(nodelist):
        char = nodelist[i]
        if char == "[":
            # inside brackets: the first range's start ("07" of "07-08,11")
            end = nodelist.index("]", i)
            head += re.split(r"[-,]", nodelist[i + 1:end], maxsplit=1)[0]
            i = end + 1
            continue
        if char == ",":
            break
        head += char
        i += 1
    if not head:
        raise LmnasError(f"SLURM node list {nodelist!r}: no first host")
    return head


def rendezvous_port(job_id: str) -> int:
    """A port for the c10d store, fixed per job (every node computes the same) and spread over
    jobs, so that two jobs whose first node is the same machine do not collide."""
    return 20000 + int(re.sub(r"\D", "", job_id) or 0) % 20000


def launch_command(module: str, args: Sequence[str], topology: Topology,
                   environ: Mapping[str, str] | None = None) -> list[str]:
    """The command that starts `python -m module args` as `topology`'s ranks.

    One node: `torchrun --standalone --nproc-per-node=K`. Several: inside a SLURM job,
    `srun` one torchrun agent per node (--overlap: the calling Snakemake job step already
    holds the first node's CPUs and GPUs; --kill-on-bad-exit: one failed node stops the
    rest), the agents rendezvousing (c10d) on the allocation's first node.
    """
    environ = os.environ if environ is None else environ
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    if topology.nodes == 1:
        return [*torchrun, "--standalone", f"--nproc-per-node={topology.ranks_per_node}", "-m", module, *args]
    job = environ.get("SLURM_JOB_ID")
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not job or not nodelist:
        raise LmnasError(f"a {topology.nodes}-node launch needs SLURM_JOB_ID and SLURM_JOB_NODELIST (run inside a SLURM job)")
    endpoint = f"{first_node(nodelist)}:{rendezvous_port(job)}"
    n = topology.nodes
    return [
        "srun", "--overlap", f"--nodes={n}", f"--ntasks={n}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
        *torchrun, f"--nnodes={n}", f"--nproc-per-node={topology.ranks_per_node}",
        "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id=lmnas-{job}",
        "-m", module, *args,
    ]


def launch(module: str, args: Sequence[str], topology: Topology | int, *,
           env: Mapping[str, str] | None = None) -> None:
    """Start `python -m module args` as `topology`'s ranks (an int: that many on this node, standalone).

    Output of every rank is relayed line by line to sys.stdout (so a Snakemake rule's
    log tee sees it). A failed run raises LmnasError with the ranks' own one-line
    errors (lines starting "lmnas:"), or else the last lines of the output.
    """
    if isinstance(topology, int):
        if topology < 1:
            raise LmnasError(f"launch: nproc={topology} (expected >= 1)")
        topology = Topology(nodes=1, ranks_per_node=topology)
    command = launch_command(module, args, topology, {**os.environ, **(env or {})})
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
        where = (f"{topology.world_size}" if topology.nodes == 1
                 else f"{topology.nodes}-node x {topology.ranks_per_node}")
        detail = "\n".join(errors) if errors else "its last lines:\n" + "\n".join(tail)
        raise LmnasError(f"{where}-rank run of `python -m {module}` failed (exit {process.returncode}):\n{detail}")
