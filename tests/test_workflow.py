"""The Snakemake workflow: dry runs, clean config errors, and the embedded default end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ["prepare_data", "encode_corpus", "train_archgpt", "search", "retrain", "transfer", "report"]


def snakemake(*args, cwd=REPO, check=False):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=check, timeout=1800)


def test_dry_run_lists_all_seven_stages(tmp_path):
    out = snakemake("-n", "--cores", "2", "--directory", str(tmp_path))
    assert out.returncode == 0, out.stderr
    for stage in STAGES:
        assert f"rule {stage}:" in out.stdout, stage


def test_slurm_profile_dry_run(tmp_path):
    out = snakemake("-n", "--profile", str(REPO / "workflow/profiles/slurm"), "--directory", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "rule search:" in out.stdout


def write_override(tmp_path, data):
    path = tmp_path / "override.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_value_is_one_clear_line_and_nothing_runs(tmp_path):
    override = write_override(tmp_path, {"search": {"options": {"ga-gpt": {"population": -3}}}})
    out = snakemake("--cores", "1", "--directory", str(tmp_path), "--configfile", str(override))
    assert out.returncode != 0
    lines = [l for l in out.stderr.splitlines() if "population" in l]
    assert lines == ["lmnas: invalid configuration: config: search.options.ga-gpt.population: -3 is less than the minimum of 2"]
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_missing_dataset_root_names_the_folder(tmp_path):
    override = write_override(tmp_path, {
        "datasets": {"cifar10": {"source": "cifar10", "root": str(tmp_path / "no-cifar"), "download": False}},
        "search": {"dataset": "cifar10"},
    })
    out = snakemake("--cores", "1", "--directory", str(tmp_path), "--configfile", str(override))
    assert out.returncode != 0
    assert f"datasets.cifar10.root: dataset folder not found: {tmp_path / 'no-cifar'}" in out.stderr
    assert not (tmp_path / "results").exists()


def test_dvc_pipeline_is_well_formed():
    out = subprocess.run([sys.executable, "-m", "dvc", "dag", "--md"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for stage in STAGES:
        assert stage in out.stdout


def read_json(path):
    return json.loads(Path(path).read_text())


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the whole chain on a busy 2-core machine: ~10 min
def test_embedded_default_end_to_end(tmp_path):
    import pyarrow.parquet as pq

    out = snakemake("--cores", "2", "--directory", str(tmp_path))
    assert out.returncode == 0, out.stderr[-5000:]
    run = tmp_path / "results" / "default"
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())

    for name in ("digits04", "digits59"):
        manifest = read_json(tmp_path / "data/prepared" / name / "manifest.json")
        assert manifest["num_classes"] == 5
        assert sum(manifest["splits"][s]["count"] for s in ("train", "val", "test")) > 800

    pretrain = pq.read_table(run / "corpus/pretrain.parquet")
    finetune = pq.read_table(run / "corpus/finetune.parquet")
    assert pretrain.num_rows > 50 and finetune.num_rows == 36
    assert len(read_json(run / "corpus/vocab.json")["structures"]) > 10

    gpt = read_json(run / "archgpt/metrics.json")
    for phase in ("pretrained", "finetuned"):
        assert (run / "archgpt" / phase / "model.safetensors").is_file()
    assert (run / "archgpt/loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert json.dumps(gpt)  # well-formed

    best = read_json(run / "search/best.json")
    journal = pq.read_table(run / "search/journal.parquet").to_pylist()
    budget = config["search"]["budget"]["evaluations"]
    assert best["evaluations"] == len(journal) <= budget
    assert len({r["key"] for r in journal}) == len(journal)
    assert best["accuracy"] == max(r["metric_accuracy"] for r in journal)
    assert best["accuracy"] > 20.0  # 5 classes: chance is 20 %
    assert (run / "search/curve.png").read_bytes()[:4] == b"\x89PNG"

    retrain = read_json(run / "retrain/metrics.json")
    assert retrain["test_acc"] > 0.5
    assert (run / "retrain/model.safetensors").stat().st_size > 1000
    transfer = read_json(run / "transfer/metrics.json")
    assert 0.0 <= transfer["test_acc"] <= 1.0

    report = (run / "report/report.md").read_text()
    for heading in ("## Data", "## Architecture corpus", "## Architecture GPT", "## Search", "## Retrain", "## Transfer"):
        assert heading in report
    assert best["genotype"] in report

    # A second run has nothing to do: every artefact is complete and up to date.
    again = snakemake("-n", "--cores", "2", "--directory", str(tmp_path))
    assert "Nothing to be done" in again.stdout + again.stderr
