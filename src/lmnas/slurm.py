"""What a SLURM cluster offers, asked before anything is submitted: GPUs (gres) and job accounting.

Used by the workflow (Snakefile onstart, when the executor is slurm) and by the SLURM candidate
executor, so that a request the cluster cannot serve fails with one clear line before any stage
deletes its outputs, and a status query that can never answer is refused instead of polled forever.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping

from lmnas.errors import LmnasError

_GRES_GPU = re.compile(r"gpu(?::[^:,()]+)?:(\d+)")


def _run(*cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    if shutil.which(cmd[0]) is None:
        raise LmnasError(f"{cmd[0]} not found: SLURM's commands are needed here (is this a SLURM login node?)")
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)


def available() -> bool:
    """Whether this machine can talk to a SLURM controller (sinfo answers)."""
    if shutil.which("sinfo") is None:
        return False
    try:
        return _run("sinfo", "-h", "-o", "%P", timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def gres_gpus(gres: str) -> int:
    """GPUs in one node's `sinfo %G` field: 'gpu:2', 'gpu:a100:4(S:0-1),mps:100' -> 2, 4; '(null)' -> 0."""
    return sum(int(count) for count in _GRES_GPU.findall(gres))


def node_gpus(partition: str | None = None) -> dict[str, list[int]]:
    """partition -> the GPU count of each of its nodes (all partitions when `partition` is None)."""
    cmd = ["sinfo", "-h", "-N", "-o", "%P|%N|%G"]
    out = _run(*cmd)
    if out.returncode != 0:
        raise LmnasError(f"sinfo failed ({' '.join(cmd)}): {out.stderr.strip() or out.returncode}")
    nodes: dict[str, dict[str, int]] = {}
    for line in out.stdout.splitlines():
        name, _, rest = line.partition("|")
        node, _, gres = rest.partition("|")
        nodes.setdefault(name.rstrip("*"), {})[node] = gres_gpus(gres)
    if partition is not None and partition not in nodes:
        raise LmnasError(f"SLURM partition {partition!r} not found (sinfo lists: {', '.join(sorted(nodes)) or 'none'})")
    return {name: list(counts.values()) for name, counts in nodes.items() if partition in (None, name)}


def gpus_per_node(partition: str | None = None) -> dict[str, int]:
    """partition -> the most GPUs one of its nodes has (all partitions when `partition` is None)."""
    return {name: max(counts, default=0) for name, counts in node_gpus(partition).items()}


def accounting_error() -> str | None:
    """Why `sacct` cannot report jobs here (no slurmdbd), or None when it can."""
    if shutil.which("sacct") is None:
        return "sacct is not installed"
    try:
        out = _run("sacct", "-n", "-X", "-P", "-o", "JobID", "-S", "now-1minutes", timeout=30)
    except subprocess.TimeoutExpired:
        return "sacct did not answer within 30 s"
    if out.returncode != 0:
        return (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[0]
    return None


def min_job_age_s() -> int | None:
    """The controller's MinJobAge: how long squeue still lists a finished job."""
    try:
        out = _run("scontrol", "show", "config")
    except LmnasError:
        return None
    match = re.search(r"^MinJobAge\s*=\s*(\d+)", out.stdout, re.MULTILINE)
    return int(match.group(1)) if match else None


def check_gpu_requests(requests: Mapping[str, tuple[int, str | None] | tuple[int, str | None, int]],
                       setting: str = "resources.{name}.gpus") -> None:
    """requests: job name -> (GPUs asked per node, partition or None[, nodes]). Refuse what the
    cluster cannot give: more GPUs than any node has, or fewer nodes with that many GPUs than
    asked for. `setting` names the config field to change (a 3-tuple: resources.{name}.gpus_per_node)."""
    for name, request in sorted(requests.items()):
        gpus, partition = request[0], request[1]
        nodes = request[2] if len(request) > 2 else 1
        if gpus <= 0 and nodes <= 1:
            continue
        field = "resources.{name}.gpus_per_node" if len(request) > 2 else setting
        counts = node_gpus(partition)
        per_node = counts.get(partition, []) if partition else [c for cs in counts.values() for c in cs]
        have = max(per_node, default=0)
        where = f"partition {partition!r}" if partition else "this cluster"
        if have < gpus:
            raise LmnasError(
                f"{name} asks for {gpus} GPU(s) but {where} has "
                f"{'no GPU (no gres/gpu in sinfo)' if have == 0 else f'at most {have} per node'}; "
                f"set {field.format(name=name)} to 0 (or <= {have}), or submit where GPUs are")
        fitting = sum(count >= gpus for count in per_node)
        if fitting < nodes:
            raise LmnasError(
                f"{name} asks for {nodes} nodes x {gpus} GPU(s) but {where} has {fitting} node(s) with "
                f"{gpus} or more GPUs; set resources.{name}.nodes <= {fitting}")


def check_status_command(status_command: str | None, init_seconds: int) -> None:
    """Refuse a job-status setup under which the SLURM plugin would wait forever.

    sacct without accounting fails on every poll and Snakemake never learns that a job ended;
    squeue forgets a finished job after MinJobAge, and the plugin itself falls back to sacct when
    MinJobAge < 3x the initial wait.
    """
    error = accounting_error()
    if error is None:
        return
    if status_command in (None, "sacct"):
        raise LmnasError(
            f"SLURM job accounting is not available here (sacct: {error}), so the slurm profile's sacct "
            "status query would never see a job finish; add --slurm-status-command squeue")
    age = min_job_age_s()
    if age is None or age < 3 * init_seconds:
        raise LmnasError(
            f"no SLURM accounting (sacct: {error}) and MinJobAge={age} s is not >= 3 x "
            f"slurm-init-seconds-before-status-checks ({init_seconds} s): the plugin would fall back to "
            "sacct and wait forever; lower slurm-init-seconds-before-status-checks")
