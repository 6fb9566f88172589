"""Candidate executors: the registry, and the slurm executor through submitit's local processes.

The same executor on a real SLURM cluster: tests/test_slurm_cluster.py.
"""

import json
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from lmnas.errors import LmnasError
from lmnas.jsonl import read_jsonl
from lmnas.search.executors import EXECUTORS, make_executor
from lmnas.search.slurm_executor import SlurmExecutor, SlurmSettings
from lmnas.spaces import create_space

from bench_tables import needs  # noqa: E402 (tests/ is on sys.path: conftest.py)

needs_tables = needs("nas-bench-macro_cifar10.json")
LOCAL = {"cluster": "local", "poll_s": 0.2}


def table_pieces():
    from lmnas.evaluation import EVALUATORS

    return create_space("nas-bench-macro"), EVALUATORS.create("table")


def search(out, executor="local", settings=None, budget=6):
    cmd = [sys.executable, "-m", "lmnas.cli", "search", "--space", "nas-bench-macro", "--strategy", "ga",
           "--budget", str(budget), "--out", str(out), "--quiet", "--executor", executor]
    if settings is not None:
        cmd += ["--executor-settings", json.dumps(settings)]
    config = out.parent / "ga.yaml"
    config.write_text(json.dumps({"search": {"options": {"ga": {"population": 4, "generations": 3}}}}))
    subprocess.run(cmd + ["--config", str(config)], check=True, capture_output=True, text=True, timeout=600)
    return {r["key"]: r["metric_accuracy"] for r in pq.read_table(out / "journal.parquet").to_pylist()}


def test_registry_and_clear_errors(tmp_path):
    assert EXECUTORS.names() == ["local", "slurm"]
    with pytest.raises(LmnasError, match="unknown executor 'ray'"):
        make_executor("ray", None, None)
    with pytest.raises(LmnasError, match="executor 'local' takes no settings"):
        make_executor("local", None, None, settings={"partition": "gpu"})
    with pytest.raises(LmnasError, match=r"unknown settings \['gpus'\]"):
        SlurmSettings.from_dict({"gpus": 1})
    with pytest.raises(LmnasError, match="status must be 'sacct' or 'squeue'"):
        SlurmSettings.from_dict({"status": "scontrol"})
    with pytest.raises(LmnasError, match="needs a run folder"):
        make_executor("slurm", None, None, settings=LOCAL, out_dir=None)


@needs_tables
def test_local_jobs_give_the_local_executors_results(tmp_path):
    """Same search path and metrics; one submitit job per candidate, chunks of 3 too."""
    local = search(tmp_path / "local")
    assert len(local) == 6
    assert search(tmp_path / "jobs", "slurm", LOCAL) == local
    assert search(tmp_path / "chunks", "slurm", {**LOCAL, "candidates_per_job": 3}) == local
    submitted = [r for r in read_jsonl(tmp_path / "jobs/slurm/jobs.jsonl") if r["event"] == "submitted"]
    assert sorted(k for r in submitted for k in r["keys"]) == sorted(local) and all(len(r["keys"]) == 1 for r in submitted)
    chunked = [r for r in read_jsonl(tmp_path / "chunks/slurm/jobs.jsonl") if r["event"] == "submitted"]
    assert [len(r["keys"]) for r in chunked] == [3, 1, 2]  # two batches: 4 then 2 candidates


@needs_tables
def test_a_rerun_re_attaches_to_submitted_jobs_instead_of_paying_again(tmp_path):
    """The search process dies after submitting: the next one reads the job log and waits on those jobs."""
    space, evaluator = table_pieces()
    keys = [space.key(space.sample(__import__("random").Random(i))) for i in range(3)]
    first = SlurmExecutor(space, evaluator, tmp_path, SlurmSettings.from_dict(LOCAL))
    results = first.evaluate(keys, 0)
    got = dict([next(results)])  # one journaled, then the search process "dies"
    for record in read_jsonl(tmp_path / "slurm/jobs.jsonl"):
        result = tmp_path / "slurm/jobs" / record["job_id"] / f"{record['job_id']}_0_result.pkl"
        while not result.exists():  # the orphaned jobs run on
            time.sleep(0.2)
    second = SlurmExecutor(space, evaluator, tmp_path, SlurmSettings.from_dict(LOCAL))
    rest = dict(second.evaluate([k for k in keys if k not in got], 0))
    log = read_jsonl(tmp_path / "slurm/jobs.jsonl")
    assert [r["event"] for r in log] == ["submitted"] * len(set(keys))  # nothing submitted twice
    assert set(got) | set(rest) == set(keys)
    assert {k: r.accuracy for k, r in rest.items()} == {k: evaluator.evaluate(space, space.parse(k), seed=0).accuracy
                                                        for k in rest}


@needs_tables
def test_unlogged_submission_is_recovered_from_its_job_folder(tmp_path):
    """A kill between sbatch and the log line: the job's submitit folder names its candidates."""
    space, evaluator = table_pieces()
    key = space.key(space.sample(__import__("random").Random(0)))
    first = SlurmExecutor(space, evaluator, tmp_path, SlurmSettings.from_dict(LOCAL))
    assert dict(first.evaluate([key], 0))
    (tmp_path / "slurm/jobs.jsonl").unlink()
    second = SlurmExecutor(space, evaluator, tmp_path, SlurmSettings.from_dict(LOCAL))
    assert second.live[key]["recovered"] is True
    assert dict(second.evaluate([key], 0))
    assert [r["event"] for r in read_jsonl(tmp_path / "slurm/jobs.jsonl")] == ["submitted"]


def test_a_failing_candidate_is_recorded_with_its_reason(tmp_path):
    """An evaluation that raises in the job is not retried (it would raise again): recorded, then reported.
    Here the job cannot read the prepared data (as on a compute node that does not mount it)."""
    import shutil

    from lmnas.data import DatasetSpec, prepare_dataset
    from lmnas.evaluation import EVALUATORS

    data = tmp_path / "no-such-data"
    prepare_dataset(DatasetSpec(source="digits", classes=[0, 1, 2], val_fraction=0.2, test_fraction=0.2), data, seed=0)
    space = create_space("gptnas-blocks", min_blocks=3, max_blocks=4, stage_widths=[16, 32],
                         input_shape=[1, 8, 8], num_classes=3)
    evaluator = EVALUATORS.create("proxy", prepared_dir=str(data), device="cpu",
                                  recipe={"epochs": 1, "batch_size": 64, "lr": 0.05})
    shutil.rmtree(data)
    key = space.key(space.sample(__import__("random").Random(0)))
    executor = SlurmExecutor(space, evaluator, tmp_path, SlurmSettings.from_dict(LOCAL))
    with pytest.raises(LmnasError, match=f"1 candidate job\\(s\\) failed .*{key}: job \\S+ failed: .*no-such-data"):
        list(executor.evaluate([key], 0))
    events = read_jsonl(tmp_path / "slurm/jobs.jsonl")
    assert [e["event"] for e in events] == ["submitted", "failed"] and "no-such-data" in events[1]["reason"]
