"""GENIUS paper configs: every row of config/paper/README.md's GENIUS tables holds in the merged
config, the settings mean what the paper means (FLOPs, prompts), and dry runs show each stage
reading the right data (retraining on full ImageNet at 224 px, not the 10 % search subset)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmnas.config import load_yaml, merge, resolve

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "config" / "paper"
README = PAPER / "README.md"


def genius_rows() -> list[tuple[str, str, str, str]]:
    """(config file, element, key, our value) for every row of the README's GENIUS tables."""
    text = README.read_text().split("## GENIUS", 1)[1].split("\n## ", 1)[0]
    rows, files = [], []
    for line in text.splitlines():
        if line.startswith("### "):
            names = re.findall(r"`([^`]+)`", line)
            base = names[0].rsplit("-", 1)[0]
            files = [names[0]] + [base + n for n in names[1:]]
        elif line.startswith("| ") and not line.startswith("| element") and files:
            element, _paper, key, value = [c.strip() for c in line.strip("|").split(" | ")]
            rows += [(f, element, key, value) for f in files]
    return rows


ROWS = genius_rows()
GENIUS_CONFIGS = sorted(p.name for p in PAPER.glob("genius-*.yaml"))


def fake_roots(tmp_path: Path) -> dict:
    """Local dataset roots for the configs that need one to exist (nothing is read in a dry run)."""
    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        (root / split / "n01440764").mkdir(parents=True, exist_ok=True)
    return {"datasets": {"imagenet-subset": {"root": str(root)}, "imagenet": {"root": str(root)}}}


def merged(name: str, tmp_path: Path) -> dict:
    config = merge(load_yaml(REPO / "config" / "config.yaml"), load_yaml(PAPER / name))
    if "imagenet" in config["datasets"]:
        config = merge(config, fake_roots(tmp_path))
    resolve(config, REPO, source=name)  # schema and cross-field checks
    return config


def at(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def test_the_readme_covers_every_genius_config():
    assert {f for f, *_ in ROWS} == set(GENIUS_CONFIGS)
    assert len(GENIUS_CONFIGS) == 8 and len(ROWS) > 80


@pytest.mark.parametrize("name, element, key, value", ROWS, ids=[f"{r[0]}:{r[1]}" for r in ROWS])
def test_paper_table_row(name, element, key, value, tmp_path):
    assert at(merged(name, tmp_path), key) == yaml.safe_load(value), f"{name}: {element} ({key})"


@pytest.mark.parametrize("name", [n for n in GENIUS_CONFIGS if "nas-bench-201" in n])
def test_nas_bench_201_configs_search_their_own_dataset(name, tmp_path):
    dataset = name.removeprefix("genius-nas-bench-201-").removesuffix(".yaml")
    assert at(merged(name, tmp_path), "search.options.table.dataset") == dataset


def test_genius_329_and_401_count_as_the_paper_says():
    from lmnas.spaces import create_space

    options = load_yaml(PAPER / "genius-imagenet.yaml")["search"]["options"]["genius-imagenet"]
    # the search trains at 196 px; the constraint is still counted at 224 px in thop's convention
    space = create_space("genius-imagenet", input_shape=[3, 196, 196], **options)
    g329 = space.parse("[1, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 4, 0, 4, 3, 0, 0, 4, 3, 0, 4, 4, 0, 5, 0, 5, 5, 5, 0]")
    g401 = space.parse("[1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 4, 4, 0, 4, 0, 4, 4, 5, 0, 5, 0, 5, 6, 5, 0, 6, 0, 5]")
    assert round(space.flops(g329) / 1e6, 1) == 329.4 and round(space.flops(g401) / 1e6, 1) == 401.5
    assert space.check_constraints(g329) is None  # GENIUS-329 is within [270, 330]
    assert "higher the upper bound of 330" in space.check_constraints(g401)
    assert space.macs(g329) < 0.85 * space.flops(g329)  # torch MACs at 196 px: a different number


def test_genius_prompts_follow_the_code():
    from lmnas.llm.prompts import load_prompts

    nb201 = load_prompts("nas-bench-201")
    assert nb201.templates["system"].template.startswith("You are Quoc V. Le, a computer scientist")
    assert "Let's break this down step by step" in nb201.templates["task"].template
    assert "provide a rationale" in nb201.templates["results"].template
    imagenet = load_prompts("genius-imagenet")
    assert "Please following the design principles" in imagenet.templates["principles"].template
    assert "Let's think step by step." in imagenet.templates["first"].template


# -- dry runs: the jobs and the data each stage reads ------------------------------------------------------
def snakemake_dry_run(name: str, tmp_path: Path, overrides: dict | None = None) -> subprocess.CompletedProcess:
    """`snakemake -n` of the paper config (in a scratch directory), `overrides` merged on top."""
    override = tmp_path / "roots.yaml"
    settings = fake_roots(tmp_path) if "imagenet" in load_yaml(PAPER / name).get("datasets", {}) else {}
    override.write_text(yaml.safe_dump({**settings, **(overrides or {})}))
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).with_name("snakemake"))
    return subprocess.run([snakemake, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
                           "--configfile", str(PAPER / name), str(override)],
                          capture_output=True, text=True, timeout=300)


def channel_bench_tables(tmp_path: Path, name: str) -> dict:
    """A benchmarks folder holding a one-row stand-in for the (unshipped) Channel-Bench-Macro table of `name`."""
    tables = tmp_path / "tables"
    tables.mkdir(exist_ok=True)
    file = "Results_MobileNet.json" if "mobilenet" in name else "Results_ResNet.json"
    (tables / file).write_text('{"4432214": {"acc": [93.67, 93.35, 93.3], "std": 0.2, "mean": 93.44}}')
    return {"benchmarks_dir": str(tables)}


def dry_run(name: str, tmp_path: Path, overrides: dict | None = None) -> dict[str, list[str]]:
    """rule name -> its inputs, from `snakemake -n` of the paper config (in a scratch directory)."""
    out = snakemake_dry_run(name, tmp_path, overrides)
    assert out.returncode == 0, out.stdout + out.stderr
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=rule \w+:)", out.stdout):
        match = re.match(r"rule (\w+):", block)
        if match:
            inputs = re.search(r"^\s+input: (.*)$", block, re.M)
            jobs.setdefault(match.group(1), []).extend(inputs.group(1).split(", ") if inputs else [])
    return jobs


def test_imagenet_dry_run_retrains_on_full_imagenet_and_transfers_to_both_cifars(tmp_path):
    jobs = dry_run("genius-imagenet.yaml", tmp_path)
    assert set(jobs) >= {"prepare_data", "search", "retrain", "transfer", "transfer_more", "report", "all"}
    assert "data/prepared/imagenet-subset" in jobs["search"]
    assert "data/prepared/imagenet" in jobs["retrain"] and "data/prepared/imagenet-subset" not in jobs["retrain"]
    assert "data/prepared/cifar10" in jobs["transfer"] and "data/prepared/cifar100" in jobs["transfer_more"]
    assert "results/genius-imagenet/transfer/cifar100/metrics.json" in jobs["report"]
    assert "trials" not in jobs


@pytest.mark.slow  # ~30 s of Snakemake start-up per config on a busy 2-core machine
@pytest.mark.parametrize("name", [n for n in GENIUS_CONFIGS if n != "genius-imagenet.yaml"])
def test_table_configs_dry_run_search_trials_and_report_only(name, tmp_path):
    jobs = dry_run(name, tmp_path, channel_bench_tables(tmp_path, name) if "channel-bench" in name else None)
    run = load_yaml(PAPER / name)["run_name"]
    assert set(jobs) == {"search", "trials", "report", "all"}
    assert f"results/{run}/trials/trials.json" in jobs["report"]


@pytest.mark.slow  # ~30 s of Snakemake start-up per config
@pytest.mark.parametrize("name, file", [("genius-channel-bench-macro-mobilenet.yaml", "Results_MobileNet.json"),
                                        ("genius-channel-bench-macro-resnet.yaml", "Results_ResNet.json")])
def test_channel_bench_dry_run_without_its_table_stops_with_the_copy_instructions(name, file, tmp_path):
    empty = tmp_path / "tables"
    empty.mkdir()
    out = snakemake_dry_run(name, tmp_path, {"benchmarks_dir": str(empty)})
    assert out.returncode == 1, out.stdout + out.stderr
    said = out.stdout + out.stderr
    assert f"lmnas: benchmark table {empty / file} not found: Channel-Bench-Macro is not shipped" in said
    assert (f"curl -L -o {empty / file} https://raw.githubusercontent.com/mingkai-zheng/GENIUS/"
            f"97361d30b2da337edd0c8e1ed71b7c88b4a85d38/benchmark/{file}") in said
    assert "Traceback" not in said and "Exception" not in said


def test_nas_bench_201_free_text_answer_is_read_at_its_final_design():
    from lmnas.llm.answers import validate_answer
    from lmnas.llm.prompts import load_prompts
    from lmnas.spaces import create_space

    space, fmt = create_space("nas-bench-201"), load_prompts("nas-bench-201").answer
    answer = ("First, the operations: Zeroize() cuts the path, nn.Identity() keeps gradients flowing.\n"
              "One option is op_list = [3, 3, 3, 3, 3, 3], but a skip from s1 to s2 (op2) eases the gradient flow:\n"
              "op0: nor_conv_3x3, op1: nor_conv_3x3, op2: skip_connect, ...\n"
              "Rationale: ... My proposal is therefore\n\nop_list = [3, 3, 1, 3, 3, 2]")
    verdict = validate_answer(answer, fmt, space, {})
    assert [k for _, k in verdict.accepted] == [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"]
    # the designs it discusses come second: if the final one was tried, the next-to-last is taken
    tried = {verdict.accepted[0][1]: 90.0}
    assert [k for _, k in validate_answer(answer, fmt, space, tried).accepted] == [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"]


def test_lmnas_arch_prints_paper_flops_and_torch_macs(capsys):
    import json

    from lmnas.cli import main

    main(["arch", "--space", "genius-imagenet", "--genotype",
          "[1, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 4, 0, 4, 3, 0, 0, 4, 3, 0, 4, 4, 0, 5, 0, 5, 5, 5, 0]"])
    out = json.loads(capsys.readouterr().out)
    assert round(out["flops"] / 1e6) == 329 and round(out["macs"] / 1e6) == 307  # GENIUS-329: thop vs torch
    assert round(out["params"] / 1e5) == 70  # 7.0 M (imagenet/README.md)
    assert out["flops_convention"]["flops_resolution"] == 224
