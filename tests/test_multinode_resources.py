"""The retrain job of genius-imagenet.yaml on 2 nodes x 4 GPUs, through the SLURM profile: a dry run's
resources, and the sbatch line the plugin's own functions build from them (2 nodes, 4 GPUs on each,
one task per node for srun + torchrun; never a total --gpus that SLURM could spread at will)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


class Resources(dict):
    __getattr__ = dict.__getitem__  # the plugin reads job.resources both as mapping and attributes


@pytest.mark.slow  # one Snakemake dry run (~20 s on a busy 2-core machine)
def test_two_nodes_of_four_gpus_reach_sbatch(tmp_path):
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        (root / split / "n01440764").mkdir(parents=True)
    override = tmp_path / "over.yaml"
    override.write_text(yaml.safe_dump({
        "datasets": {"imagenet": {"root": str(root)}, "imagenet-subset": {"root": str(root)}},
        "resources": {"retrain": {"nodes": 2, "gpus_per_node": 4}},
    }))
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    out = subprocess.run([snakemake, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
                          "--profile", str(REPO / "workflow" / "profiles" / "slurm"),
                          "--configfile", str(REPO / "config" / "paper" / "genius-imagenet.yaml"), str(override)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    block = re.search(r"rule retrain:\n(.*?)(?=\n\S|\Z)", out.stdout, re.S).group(1)
    line = re.search(r"^\s+resources: (.*)$", block, re.M).group(1)
    resources = dict(item.split("=", 1) for item in line.split(", "))
    assert (resources["nodes"], resources["gres"], resources["slurm_extra"]) == ("2", "gpu:4", "--ntasks-per-node=1")
    assert "gpu" not in resources and "gpus" not in resources  # --gpus=N would be a total over the nodes

    job = SimpleNamespace(threads=64, resources=Resources(
        mem_mb=int(resources["mem_mb"]), runtime=int(resources["runtime"]), nodes=2, gres="gpu:4",
        slurm_extra="--ntasks-per-node=1"))
    params = {"run_uuid": "u", "slurm_logfile": "log", "comment_str": "rule_retrain", "account": "",
              "partition": "", "workdir": None}
    call = get_submit_command(job, params) + set_gres_string(job)
    assert "--nodes=2" in call and "--gres=gpu:4" in call and "--gpus" not in call, call
