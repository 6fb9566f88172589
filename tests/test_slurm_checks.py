"""Refusals before anything is submitted to SLURM (lmnas.slurm), with sinfo/sacct/scontrol faked."""

import pytest

from lmnas import slurm
from lmnas.errors import LmnasError


@pytest.mark.parametrize("gres, gpus", [("(null)", 0), ("gpu:2", 2), ("gpu:a100:4(S:0-1),mps:100", 4),
                                        ("gpu:v100:1,gpu:a100:2", 3), ("mps:100", 0)])
def test_gpus_of_a_nodes_gres(gres, gpus):
    assert slurm.gres_gpus(gres) == gpus


def fake_sinfo(monkeypatch, lines):
    class Done:
        returncode, stdout, stderr = 0, "\n".join(lines), ""

    monkeypatch.setattr(slurm, "_run", lambda *cmd, timeout=30: Done)


def test_gpu_requests_beyond_every_node_are_refused(monkeypatch):
    fake_sinfo(monkeypatch, ["cpu*|c1|(null)", "gpu|g1|gpu:a100:4(S:0-1)", "gpu|g2|gpu:a100:2"])
    slurm.check_gpu_requests({"search": (4, None), "report": (0, "cpu"), "retrain": (4, "gpu")})
    with pytest.raises(LmnasError, match=r"retrain asks for 1 GPU\(s\) but partition 'cpu' has no GPU .*resources.retrain.gpus"):
        slurm.check_gpu_requests({"retrain": (1, "cpu")})
    with pytest.raises(LmnasError, match="at most 4 per node"):
        slurm.check_gpu_requests({"retrain": (8, None)})
    with pytest.raises(LmnasError, match=r"partition 'a100' not found \(sinfo lists: cpu, gpu\)"):
        slurm.check_gpu_requests({"retrain": (1, "a100")})


def test_multi_node_requests_need_enough_nodes_with_those_gpus(monkeypatch):
    fake_sinfo(monkeypatch, ["cpu*|c1|(null)", "cpu*|c2|(null)", "gpu|g1|gpu:4", "gpu|g2|gpu:4", "gpu|g3|gpu:2"])
    slurm.check_gpu_requests({"retrain": (4, "gpu", 2), "report": (0, "cpu", 2)})
    with pytest.raises(LmnasError, match=r"retrain asks for 3 nodes x 4 GPU\(s\) but partition 'gpu' has 2 node\(s\) "
                                         r"with 4 or more GPUs; set resources.retrain.nodes <= 2"):
        slurm.check_gpu_requests({"retrain": (4, "gpu", 3)})
    with pytest.raises(LmnasError, match=r"3 nodes x 0 GPU\(s\) but partition 'cpu' has 2 node"):
        slurm.check_gpu_requests({"retrain": (0, "cpu", 3)})
    with pytest.raises(LmnasError, match=r"at most 4 per node; set resources.retrain.gpus_per_node"):
        slurm.check_gpu_requests({"retrain": (8, "gpu", 1)})


def test_status_queries_that_would_hang_are_refused(monkeypatch):
    monkeypatch.setattr(slurm, "accounting_error", lambda: None)
    slurm.check_status_command("sacct", 40)  # accounting works: anything goes
    monkeypatch.setattr(slurm, "accounting_error", lambda: "Slurm accounting storage is disabled")
    for command in (None, "sacct"):
        with pytest.raises(LmnasError, match="add --slurm-status-command squeue"):
            slurm.check_status_command(command, 40)
    monkeypatch.setattr(slurm, "min_job_age_s", lambda: 300)
    slurm.check_status_command("squeue", 40)
    with pytest.raises(LmnasError, match="MinJobAge=300 s is not >= 3 x"):
        slurm.check_status_command("squeue", 120)
