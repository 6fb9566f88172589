"""kill -9 during retraining, rerun: it resumes from the last epoch and ends bit-identical (CPU)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from lmnas.data import DatasetSpec, prepare_dataset
from lmnas.retrain import read_metrics
from lmnas.spaces import create_space

RECIPE = {"epochs": 6, "batch_size": 32, "lr": 0.05, "warmup_epochs": 1, "schedule": "cosine", "crop_padding": 1,
          "flip": False}


def retrain_cmd(best, data, out):
    return [sys.executable, "-m", "lmnas.retrain", "--best", str(best), "--data", str(data), "--out", str(out),
            "--recipe-json", json.dumps(RECIPE), "--seed", "3", "--device", "cpu", "--no-progress"]


@pytest.mark.slow
def test_kill_minus_nine_during_retrain_resumes_exactly(tmp_path):
    data = tmp_path / "digits"
    prepare_dataset(DatasetSpec(source="digits", classes=[0, 1, 2]), data, seed=0)
    space = create_space("gptnas-blocks", min_blocks=4, max_blocks=4, stage_widths=[16, 32], input_shape=[1, 8, 8],
                         num_classes=3)
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"genotype": "basic-mbconv-conv-regnet", "space": space.settings()}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    killed = tmp_path / "killed"
    proc = subprocess.Popen(retrain_cmd(best, data, killed), env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "checkpoints").glob("epoch-0002.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists(), "killed too late: training had already finished"
    subprocess.run(retrain_cmd(best, data, killed), env=env, check=True)
    metrics = read_metrics(killed)  # resumed_from_epoch lives in timings.json
    assert 2 <= metrics["resumed_from_epoch"] < RECIPE["epochs"]  # the last checkpoint before the kill
    assert metrics["epochs"] == RECIPE["epochs"]

    straight = tmp_path / "straight"
    subprocess.run(retrain_cmd(best, data, straight), env=env, check=True)
    a, b = load_file(killed / "model.safetensors"), load_file(straight / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert metrics["test_acc"] == json.loads((straight / "metrics.json").read_text())["test_acc"]
