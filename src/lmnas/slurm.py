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


def gpus_per_node(partition: str | None = None) -> dict[str, int]:
    """partition -> the most GPUs one of its nodes has (all partitions when `partition` is None)."""
    cmd = ["sinfo", "-h", "-N", "-o", "%P|%G"]
    out = _run(*cmd)
    if out.returncode != 0:
        raise LmnasError(f"sinfo failed ({' '.join(cmd)}): {out.stderr.strip() or out.returncode}")
    most: dict[str, int] = {}
    for line in out.stdout.splitlines():
        name, _, gres = line.partition("|")
        name = name.rstrip("*")
        most[name] = max(most.get(name, 0), gres_gpus(gres))
    if partition is None:
        return most
    if partition not in most:
        raise LmnasError(f"SLURM partition {partition!r} not found (sinfo lists: {', '.join(sorted(most)) or 'none'})")
    return {partition: most[partition]}


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


def check_gpu_requests(requests: Mapping[str, tuple[int, str | None]], setting: str = "resources.{name}.gpus") -> None:
    """requests: job name -> (GPUs asked, partition or None). Refuse what no node can give;
    `setting` names the config field to change."""
    wanted = {name: (gpus, partition) for name, (gpus, partition) in requests.items() if gpus > 0}
    if not wanted:
        return
    for name, (gpus, partition) in sorted(wanted.items()):
        most = gpus_per_node(partition)
        have = most.get(partition, 0) if partition else max(most.values(), default=0)
        if have < gpus:
            where = f"partition {partition!r}" if partition else "this cluster"
            raise LmnasError(
                f"{name} asks for {gpus} GPU(s) but {where} has "
                f"{'no GPU (no gres/gpu in sinfo)' if have == 0 else f'at most {have} per node'}; "
                f"set {setting.format(name=name)} to 0 (or <= {have}), or submit where GPUs are")


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
