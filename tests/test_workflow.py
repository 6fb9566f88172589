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


def saved_model_on_test(run: Path, stage: str, prepared: Path) -> float:
    """Accuracy of <stage>/model.safetensors (the best genotype's network) on prepared/'s test split,
    evaluated here: what the stage's metrics.json must report."""
    from safetensors.torch import load_file

    from lmnas.data import load_split, read_manifest
    from lmnas.spaces import create_space
    from lmnas.training import evaluate

    best = read_json(run / "search/best.json")
    settings = dict(best["space"])
    manifest = read_manifest(prepared)
    space = create_space(settings.pop("name"), **{**settings, "num_classes": manifest["num_classes"]})
    model = space.build(space.parse(best["genotype"]))
    model.load_state_dict(load_file(run / stage / "model.safetensors"))
    _, acc = evaluate(model, load_split(prepared, "test"), mean=manifest["mean"], std=manifest["std"], device="cpu",
                      batch_size=64)
    return acc


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the whole chain on a busy 2-core machine: ~10 min
def test_embedded_default_end_to_end(embedded_default_run):
    check_default_run(embedded_default_run)

    # A second run has nothing to do: every artefact is complete and up to date.
    again = snakemake("-n", "--cores", "2", "--directory", str(embedded_default_run))
    assert "Nothing to be done" in again.stdout + again.stderr


def check_default_run(root: Path) -> None:
    """The embedded default's outputs under root/, checked against values computed here."""
    import numpy as np
    import pyarrow.parquet as pq
    from sklearn.datasets import load_digits

    from lmnas.corpus import GENERATED_SOURCE

    run = root / "results" / "default"
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())

    digit_counts = np.bincount(load_digits().target)
    for name in ("digits04", "digits59"):
        manifest = read_json(root / "data/prepared" / name / "manifest.json")
        classes = config["datasets"][name]["classes"]
        assert manifest["num_classes"] == len(classes) == 5
        # every image of those digits, nothing capped
        assert sum(manifest["splits"][s]["count"] for s in ("train", "val", "test")) == digit_counts[classes].sum()

    pretrain = pq.read_table(run / "corpus/pretrain.parquet")
    finetune = pq.read_table(run / "corpus/finetune.parquet")
    summary = read_json(run / "corpus/summary.json")
    # the subset's 199 cells at >= 0.90 validation accuracy (test_corpus.py), or 200 generated without it
    expected = config["corpus"]["nasbench101"]["generate_if_missing"] if summary["records_source"] == GENERATED_SOURCE else 199
    assert pretrain.num_rows == summary["pretrain_archs"] == expected and finetune.num_rows == 36
    seen = {s for table in (pretrain, finetune) for seq in table.column("structures").to_pylist() for s in seq}
    assert set(read_json(run / "corpus/vocab.json")["structures"]) == seen

    gpt = read_json(run / "archgpt/metrics.json")
    for phase, rows in (("pretrain", pretrain.num_rows), ("finetune", 36)):
        assert gpt[phase]["n_arch"] == rows and len(gpt[phase]["epochs"]) == config["archgpt"][f"{phase}_epochs"]
    for phase in ("pretrained", "finetuned"):
        assert (run / "archgpt" / phase / "model.safetensors").is_file()
    assert (run / "archgpt/loss_curves.png").read_bytes()[:4] == b"\x89PNG"

    best = read_json(run / "search/best.json")
    journal = pq.read_table(run / "search/journal.parquet").to_pylist()
    budget = config["search"]["budget"]["evaluations"]
    # GA+GPT proposes at most population x (1 + generations) = 40 = the budget; duplicates are not re-evaluated
    assert best["evaluations"] == len(journal) == len({r["key"] for r in journal})
    assert len(journal) == budget or best["stopped_because"] == "strategy finished"
    assert best["accuracy"] == max(r["metric_accuracy"] for r in journal)
    assert best["genotype"] == next(r["key"] for r in journal if r["metric_accuracy"] == best["accuracy"])
    assert best["accuracy"] > 20.0  # 5 classes: chance is 20 %
    assert (run / "search/curve.png").read_bytes()[:4] == b"\x89PNG"

    retrain = read_json(run / "retrain/metrics.json")
    assert retrain["test_acc"] > 0.5
    assert retrain["test_acc"] == saved_model_on_test(run, "retrain", root / "data/prepared/digits04")
    transfer = read_json(run / "transfer/metrics.json")
    assert transfer["test_acc"] == saved_model_on_test(run, "transfer", root / "data/prepared/digits59")
    assert transfer["gain_over_scratch"] == transfer["test_acc"] - transfer["scratch_test_acc"]

    report = (run / "report/report.md").read_text()
    for heading in ("## Data", "## Architecture corpus", "## Architecture GPT", "## Search", "## Retrain", "## Transfer"):
        assert heading in report
    assert best["genotype"] in report


def test_the_plain_command_reads_the_default_profile_with_rerun_incomplete(tmp_path):
    """README: a killed job reruns on the plain command (`--rerun-incomplete` from profiles/default),
    also from another working directory and beside a --profile."""
    profile = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert profile == {"rerun-incomplete": True}  # only that: it must not change the other profiles' runs
    for extra in ((), ("--profile", str(REPO / "workflow/profiles/local"))):
        out = snakemake("-n", "--cores", "2", "--directory", str(tmp_path), *extra, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert f"workflow specific profile {REPO / 'profiles/default'} for setting" in out.stderr
