"""dvc.yaml is generated from the Snakemake rules: committed == generated, and its wiring is right."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmnas.codedeps import code_packages
from lmnas.dvcgen import generate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from bench_tables import BENCH, needs  # noqa: E402


@pytest.fixture(scope="module")
def generated():
    return generate(REPO)


@pytest.fixture(scope="module")
def stages(generated):
    return yaml.safe_load(generated)["stages"]


def deps(stage):
    return set(stage["deps"])


def params(stage):
    return set(stage.get("params", [{}])[0].get("config/config.yaml", []))


def test_committed_dvc_yaml_is_the_generated_one(generated):
    assert (REPO / "dvc.yaml").read_text() == generated, "dvc.yaml is stale: run `python -m lmnas.dvcgen`"


def test_one_stage_per_job_and_each_runs_only_its_own_rule(stages):
    assert list(stages) == ["prepare_data-digits04", "prepare_data-digits59", "encode_corpus", "train_archgpt",
                            "search", "retrain", "transfer", "report"]
    for name, stage in stages.items():
        rule = name.split("-")[0]
        assert stage["cmd"].startswith(f"snakemake --cores all --allowed-rules {rule} --force -- "), stage["cmd"]
        assert "--forcerun" not in stage["cmd"]


def test_params_hold_seed_device_and_benchmarks_dir_where_they_matter(stages):
    for name, stage in stages.items():
        assert "seed" in params(stage), name
    # the report prints the whole config, so any setting reruns it
    assert params(stages["report"]) == set(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    for name in ("train_archgpt", "search", "retrain", "transfer"):
        assert "device" in params(stages[name]), name
    assert {"search", "benchmarks_dir"} <= params(stages["search"])
    assert {"corpus", "benchmarks_dir"} <= params(stages["encode_corpus"])
    assert params(stages["prepare_data-digits04"]) == {"datasets.digits04", "seed"}
    assert "progress" not in set().union(*(params(s) for n, s in stages.items() if n != "report"))  # no result


def test_code_deps_are_the_packages_each_stage_imports(stages):
    search = deps(stages["search"])
    for package in ("llm", "prompts", "archgpt", "nasbench101", "spaces", "evaluation", "training", "strategies", "search"):
        assert f"src/lmnas/{package}" in search, package
    assert "src/lmnas/spaces" in deps(stages["retrain"])
    # Stages upstream of the search do not depend on its code: a space change leaves them alone.
    for name in ("prepare_data-digits04", "encode_corpus", "train_archgpt", "report"):
        assert "src/lmnas/spaces" not in deps(stages[name]), name
    for name, stage in stages.items():
        rule = name.split("-")[0]
        code = {f"src/lmnas/{p}" for p in code_packages(REPO / "workflow" / "scripts" / f"{rule}.py")}
        assert code <= deps(stage), name
        assert {f"workflow/rules/{rule}.smk", f"workflow/scripts/{rule}.py"} <= deps(stage)


def test_input_files_and_replay_outs(stages):
    assert "results/default/search/best.json" in deps(stages["transfer"])
    report = deps(stages["report"])
    assert {"results/default/search/journal.parquet", "results/default/search/curve.png",
            "results/default/archgpt/loss_curves.png", "results/default/retrain/log.csv"} <= report
    assert "results/default/search/journal.jsonl" in stages["search"]["outs"]
    # checkpoints are removed before a DVC run (never resumed across settings), not cached
    assert {"results/default/retrain/checkpoints": {"cache": False}} in stages["retrain"]["outs"]
    assert {"results/default/transfer/checkpoints": {"cache": False}} in stages["transfer"]["outs"]
    assert {"results/default/transfer/scratch": {"cache": False}} in stages["transfer"]["outs"]


@needs("nas_bench_101_subset.json")
def test_the_records_file_is_a_dependency_of_the_corpus(stages):
    records = [d for d in deps(stages["encode_corpus"]) if d.endswith("nas_bench_101_subset.json")]
    assert len(records) == 1 and not Path(records[0]).is_absolute(), deps(stages["encode_corpus"])
    assert (REPO / records[0]).resolve() == (BENCH / "nas_bench_101_subset.json").resolve()


def test_headline_metrics_are_git_tracked_and_uncached(stages):
    for name in ("encode_corpus", "train_archgpt", "search", "retrain", "transfer"):
        assert stages[name]["metrics"] == [{f"metrics/default/{name}.json": {"cache": False}}]
    ignored = subprocess.run(["git", "check-ignore", "-q", "metrics/default/search.json"], cwd=REPO)
    assert ignored.returncode == 1, "metrics/ must not be git-ignored: dvc metrics diff reads it from git"


@needs("nas-bench-macro_cifar10.json")
def test_table_search_depends_on_its_table_and_keeps_the_llm_transcript(tmp_path, monkeypatch):
    """Through the default ../shared/benchmarks beside the checkout, here a symlink to the real
    folder: dvc.yaml keeps the path as written (relative, not resolved), the same on any machine."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for item in ("Snakefile", "workflow", "config"):
        (shutil.copytree if (REPO / item).is_dir() else shutil.copy)(REPO / item, repo / item)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "benchmarks").symlink_to(BENCH.resolve(), target_is_directory=True)
    monkeypatch.delenv("LMNAS_BENCHMARKS_DIR", raising=False)
    config = yaml.safe_load((repo / "config/config.yaml").read_text())
    config["benchmarks_dir"] = None
    config["search"].update(space="nas-bench-macro", strategy="genius", evaluator="table")
    config["retrain"]["enabled"] = False
    (repo / "config/config.yaml").write_text(yaml.safe_dump(config))
    stages = yaml.safe_load(generate(repo))["stages"]
    assert set(stages) == {"search", "report"}
    search = stages["search"]
    assert "../shared/benchmarks/nas-bench-macro_cifar10.json" in search["deps"], search["deps"]
    assert {"results/default/search/journal.jsonl", "results/default/search/transcript.jsonl"} <= set(search["outs"])


def test_a_dvc_stage_command_never_schedules_another_rule(tmp_path):
    """The search stage's command, with nothing upstream built: Snakemake must refuse, not build it."""
    cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["search"]["cmd"].split()
    assert cmd[0] == "snakemake"
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n",
                          "--directory", str(tmp_path), *cmd[1:]], capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "MissingInputException" in text or "Missing input files" in text, text[-2000:]
    for other in ("prepare_data", "encode_corpus", "train_archgpt"):
        assert f"rule {other}:" not in text
