"""The GPT-NAS paper configs: every row of config/paper/README.md's GPT-NAS table holds in the
merged config, the paper's stated values hold on their own, and each config dry-runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lmnas.config import load_yaml, merge, validate
from lmnas.training import TrainRecipe
from lmnas.training.recipe import lr_at

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("cifar10", "cifar100", "imagenet")
MISSING = object()

# What the paper states (independent of the README, so editing both away from the paper fails).
PAPER: dict[str, dict[str, Any]] = {
    "archgpt.n_layer": dict.fromkeys(CONFIGS, 4),
    "archgpt.n_head": dict.fromkeys(CONFIGS, 4),
    "archgpt.window": dict.fromkeys(CONFIGS, 10),
    "archgpt.stride": dict.fromkeys(CONFIGS, 1),
    "archgpt.pretrain_epochs": dict.fromkeys(CONFIGS, 300),
    "archgpt.finetune_epochs": dict.fromkeys(CONFIGS, 300),
    "archgpt.batch_size": dict.fromkeys(CONFIGS, 128),
    "archgpt.lr": dict.fromkeys(CONFIGS, 1e-4),
    "corpus.nasbench101.min_val_accuracy": dict.fromkeys(CONFIGS, 0.90),
    "search.space": dict.fromkeys(CONFIGS, "gptnas-blocks"),
    "search.strategy": dict.fromkeys(CONFIGS, "ga-gpt"),
    "search.evaluator": dict.fromkeys(CONFIGS, "proxy"),
    "search.options.gptnas-blocks.min_blocks": dict.fromkeys(CONFIGS, 10),
    "search.options.gptnas-blocks.max_blocks": dict.fromkeys(CONFIGS, 20),
    "search.options.ga-gpt.population": dict.fromkeys(CONFIGS, 30),
    "search.options.ga-gpt.generations": dict.fromkeys(CONFIGS, 20),
    "search.options.ga-gpt.crossover_rate": dict.fromkeys(CONFIGS, 0.7),
    "search.options.ga-gpt.mutation_rate": dict.fromkeys(CONFIGS, 0.5),
    "search.options.ga-gpt.mask_rate": dict.fromkeys(CONFIGS, 0.4),
    "search.options.ga-gpt.reconstruct_initial": dict.fromkeys(CONFIGS, True),
    "search.budget.evaluations": dict.fromkeys(CONFIGS, 30 + 20 * 30),
    "search.options.proxy.inherit": dict.fromkeys(CONFIGS, True),
    "search.options.proxy.recipe.epochs": dict.fromkeys(CONFIGS, 6),
    "search.options.proxy.recipe.batch_size": {"cifar10": 512, "cifar100": 512, "imagenet": 128},
    "search.options.proxy.recipe.lr": dict.fromkeys(CONFIGS, 0.01),
    "search.options.proxy.recipe.schedule": dict.fromkeys(CONFIGS, "linear-warmup"),
    "datasets.imagenet-subset.subset_fraction": {"imagenet": 0.1},
    "retrain.recipe.epochs": {"cifar10": 350, "cifar100": 350, "imagenet": 120},
    "retrain.recipe.lr": {"cifar10": 0.01, "cifar100": 0.01},
    "retrain.recipe.schedule": dict.fromkeys(CONFIGS, "step"),
    "retrain.recipe.step_size": {"cifar10": 100, "cifar100": 100, "imagenet": 30},
    "retrain.recipe.gamma": dict.fromkeys(CONFIGS, 0.1),
}
SEARCH_DATA = {"cifar10": ("cifar10", 1.0), "cifar100": ("cifar100", 1.0), "imagenet": ("imagenet", 0.1)}


def merged(name: str) -> dict[str, Any]:
    return merge(load_yaml(REPO / "config/config.yaml"), load_yaml(REPO / f"config/paper/gptnas-{name}.yaml"))


def lookup(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def readme_rows() -> list[dict[str, str]]:
    """The rows of the README's GPT-NAS settings table, by column name."""
    text = (REPO / "config/paper/README.md").read_text()
    section = text.split("\n## GPT-NAS\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("### Settings", 1)[1].split("\n\n", 2)[1]
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]


ROWS = readme_rows()


def test_the_table_covers_every_stated_value():
    keys = {row["config key"].strip("`") for row in ROWS}
    assert len(ROWS) >= 30
    missing = [k for k in PAPER if k not in keys and not k.startswith(("search.space", "search.strategy",
                                                                         "search.evaluator", "retrain.recipe.schedule"))]
    assert not missing, f"paper values without a README row: {missing}"


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r["config key"].strip("`"))
def test_readme_row_holds_in_the_config(name, row):
    key, cell = row["config key"].strip("`"), row[name]
    value = lookup(merged(name), key)
    if cell == "—":
        assert value is MISSING, f"{key}: the README says unset, gptnas-{name}.yaml sets {value!r}"
    else:
        assert value == yaml.safe_load(cell), f"{key}: README {cell!r}, gptnas-{name}.yaml {value!r}"


@pytest.mark.parametrize("name", CONFIGS)
def test_paper_values_hold(name):
    config = merged(name)
    for key, per_config in PAPER.items():
        if name in per_config:
            assert lookup(config, key) == per_config[name], key


@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_valid_and_consistent(name):
    config = merged(name)
    validate(config, f"gptnas-{name}.yaml")
    source, fraction = SEARCH_DATA[name]
    search_data = config["datasets"][config["search"]["dataset"]]
    assert (search_data["source"], search_data.get("subset_fraction", 1.0)) == (source, fraction)
    retrain_data = config["datasets"][config["retrain"].get("dataset", config["search"]["dataset"])]
    assert retrain_data["source"] == source and retrain_data.get("subset_fraction", 1.0) == 1.0  # the full set
    # The proxy's lr rises linearly over all 6 epochs and reaches 0.01 only on the last step.
    proxy = TrainRecipe.from_dict(config["search"]["options"]["proxy"]["recipe"])
    steps = proxy.epochs * 10
    lrs = [lr_at(proxy, s, 10) for s in range(steps)]
    assert lrs[-1] == pytest.approx(0.01) and lrs[steps // 2 - 1] == pytest.approx(0.005)
    assert all(a < b for a, b in zip(lrs, lrs[1:]))
    TrainRecipe.from_dict(config["retrain"]["recipe"])
    assert config["archgpt"]["stride"] <= config["archgpt"]["window"]


@pytest.mark.parametrize("name", CONFIGS)
def test_dry_run_lists_the_stages_and_their_data(name, tmp_path):
    # Local stand-ins for the inputs the config names (validation checks they exist); nothing is read.
    (tmp_path / "nasbench_only108.tfrecord").touch()
    (tmp_path / "imagenet").mkdir()
    overlay = {"corpus": {"nasbench101": {"path": str(tmp_path / "nasbench_only108.tfrecord")}}}
    if name == "imagenet":
        overlay["datasets"] = {d: {"root": str(tmp_path / "imagenet")} for d in ("imagenet", "imagenet-subset")}
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "2",
           "--directory", str(tmp_path / "run"), "--configfile",
           str(REPO / f"config/paper/gptnas-{name}.yaml"), str(tmp_path / "overlay.yaml")]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout, re.M))
    stages = {"encode_corpus": "1", "train_archgpt": "1", "search": "1", "retrain": "1", "report": "1"}
    assert {k: counts.get(k) for k in stages} == stages and "transfer" not in counts
    assert counts["prepare_data"] == ("2" if name == "imagenet" else "1")

    def inputs(rule: str) -> list[str]:
        return re.search(rf"rule {rule}:\n\s+input: (.*)", out.stdout).group(1).split(", ")

    data = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "imagenet-subset"}[name]
    assert f"data/prepared/{data}" in inputs("search")  # ImageNet: the search reads the 10 % subset,
    retrain = "imagenet" if name == "imagenet" else name  # and retraining the full training set
    assert [p for p in inputs("retrain") if p.startswith("data/")] == [f"data/prepared/{retrain}"]
