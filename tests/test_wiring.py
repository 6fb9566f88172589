"""Defaults live in the schema only; outputs respect the umask; crashes reach the rule's log;
benchmarks_dir reaches every reader; headline metrics are the few figures they claim to be."""

import ast
import dataclasses
import inspect
import json
import os
import re
import stat
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from lmnas.archgpt import ArchGPTConfig, train_archgpt
from lmnas.config import load_yaml, resolve, schema
from lmnas.corpus import encode_corpus
from lmnas.data.spec import DatasetSpec
from lmnas.errors import LmnasError
from lmnas.headline import HEADLINES, headline
from lmnas.io import write_json
from lmnas.retrain import retrain_best
from lmnas.stage import run_stage
from lmnas.training.recipe import TrainRecipe
from lmnas.transfer import transfer_best

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from bench_tables import BENCH, needs  # noqa: E402


def schema_defaults(node):
    return {name: sub["default"] for name, sub in node["properties"].items() if "default" in sub}


def signature_defaults(function):
    return {p.name: p.default for p in inspect.signature(function).parameters.values() if p.default is not p.empty}


def field_defaults(cls):
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def test_schema_defaults_are_the_library_defaults():
    """One value per setting: where the library has a fallback, the schema's default is it."""
    s = schema()
    props = s["properties"]
    pairs = [
        (schema_defaults(s["$defs"]["recipe"]), field_defaults(TrainRecipe)),
        (schema_defaults(s["$defs"]["dataset"]), field_defaults(DatasetSpec)),
        (schema_defaults(props["corpus"]["properties"]["nasbench101"]), signature_defaults(encode_corpus)),
        (schema_defaults(props["archgpt"]), {**field_defaults(ArchGPTConfig), **signature_defaults(train_archgpt)}),
        (schema_defaults(props["retrain"]), signature_defaults(retrain_best)),
        (schema_defaults(props["transfer"]), signature_defaults(transfer_best)),
    ]
    checked = 0
    for ours, library in pairs:
        for name, value in ours.items():
            if name in library:
                assert value == library[name], f"schema default {name}={value!r}, library {library[name]!r}"
                checked += 1
    assert checked >= 25  # the comparison really covers the recipe, dataset, corpus and GPT settings


def test_resolving_fills_every_default_into_the_config():
    config = load_yaml(REPO / "config/config.yaml")
    for key in ("device", "progress", "benchmarks_dir", "resources"):
        config.pop(key, None)
    del config["archgpt"]["lr"], config["search"]["workers"]
    cfg = resolve(config, REPO)
    assert config["device"] == "auto" and config["progress"] is True and cfg.device == "auto"
    assert config["archgpt"]["lr"] == 1e-4 and config["search"]["workers"] == 1
    assert config["resources"]["search"] == {"threads": 1, "mem_mb": 4000, "runtime": 60, "gpus": 0}
    assert config["retrain"]["recipe"]["momentum"] == 0.9 and config["retrain"]["sync_bn"] is False
    assert config["datasets"]["digits04"]["verify"] is True
    # a default is a copy: filling one config leaves the schema (and the next config) alone
    config["resources"]["search"]["threads"] = 7
    assert schema()["$defs"]["resources"]["properties"]["threads"]["default"] == 1


def test_workflow_scripts_and_rules_hold_no_defaults():
    """No `x.get(key, value)` fallbacks (an absent optional section read as {} is no value)."""
    for script in sorted((REPO / "workflow/scripts").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get" and len(node.args) == 2:
                empty = isinstance(node.args[1], ast.Dict) and not node.args[1].keys
                assert empty, f"{script.name}:{node.lineno}: a fallback value; put it in the schema"
    for rule in sorted((REPO / "workflow/rules").glob("*.smk")):
        found = re.findall(r"\.get\([^(),]+,\s*([^()]*?)\)", rule.read_text())
        assert all(v == "{}" for v in found), f"{rule.name}: fallback values {found}; put them in the schema"


# Constant fallbacks in cli.py and lmnas/search that are no config setting (each says what it reads).
NOT_CONFIG = {
    ("parallel.py", "evaluator_settings.get('device', '')"): "no device setting: not a CUDA one",
    ("run_folder.py", "status.get('budget', 0)"): "status.json of an older run without a budget",
    ("slurm_executor.py", "self._since.get(job_id, 0.0)"): "a job id this watcher did not register",
    ("cli.py", "section.setdefault('evaluator', 'table' if args.data is None else 'proxy')"):
        "the CLI's choice by --data (table lookup, or proxy training on the data given)",
}


def test_cli_and_search_hold_no_defaults():
    """No `x.get(key, constant)` / `x.setdefault(key, constant)` in the CLI and the search package:
    what an unset setting means is the schema's default (e.g. budget.evaluations), filled on validation."""
    files = [REPO / "src/lmnas/cli.py", *sorted((REPO / "src/lmnas/search").glob("*.py"))]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("get", "setdefault")
                    and len(node.args) == 2 and (isinstance(node.args[1], ast.Constant | ast.IfExp)
                                                 or isinstance(node.args[1], ast.Dict) and node.args[1].keys)):
                found.append((path.name, ast.unparse(node)))
    assert len(files) >= 10
    unexpected = [f"{name}: {call}" for name, call in found if (name, call) not in NOT_CONFIG]
    assert not unexpected, f"fallback values outside the schema: {unexpected}"


def test_benchmarks_dir_setting_env_and_default(tmp_path, monkeypatch):
    config = load_yaml(REPO / "config/config.yaml")
    config["benchmarks_dir"] = "tables"
    assert resolve(config, tmp_path).benchmarks_dir == tmp_path / "tables"
    config["benchmarks_dir"] = None
    monkeypatch.setenv("LMNAS_BENCHMARKS_DIR", str(tmp_path / "env"))
    assert resolve(config, tmp_path).benchmarks_dir == tmp_path / "env"
    monkeypatch.delenv("LMNAS_BENCHMARKS_DIR")
    assert resolve(config, tmp_path / "repo").benchmarks_dir == tmp_path / "shared" / "benchmarks"


def test_installed_package_without_a_checkout_needs_a_setting(monkeypatch, tmp_path):
    import lmnas
    from lmnas import nas_tables

    monkeypatch.delenv("LMNAS_BENCHMARKS_DIR", raising=False)
    monkeypatch.setattr(lmnas, "__file__", str(tmp_path / "site-packages" / "lmnas" / "__init__.py"))
    assert nas_tables.default_benchmarks_dir() is None
    with pytest.raises(LmnasError, match="LMNAS_BENCHMARKS_DIR"):
        nas_tables.resolve_benchmarks_dir(None)


@needs("nas-bench-macro_cifar10.json")
def test_search_honours_benchmarks_dir(tmp_path):
    """The table evaluator reads the configured folder, not a default beside the package."""
    from lmnas.search.from_config import search_from_config

    table = BENCH / "nas-bench-macro_cifar10.json"
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / table.name).symlink_to(table)
    search_cfg = {"space": "nas-bench-macro", "strategy": "random", "evaluator": "table", "workers": 1,
                  "budget": {"evaluations": 3, "wall_time_s": None}, "options": {}}
    best = search_from_config(search_cfg, data_dir=None, archgpt_dir=None, out_dir=tmp_path / "run", seed=0,
                              device="cpu", benchmarks_dir=tables, progress=False)
    assert best["evaluations"] == 3
    assert json.loads((tmp_path / "run/best.json").read_text())["evaluator"]["benchmarks_dir"] == str(tables)
    with pytest.raises(LmnasError, match=re.escape(str(tmp_path / "nowhere"))):
        search_from_config(search_cfg, data_dir=None, archgpt_dir=None, out_dir=tmp_path / "run2", seed=0,
                           device="cpu", benchmarks_dir=tmp_path / "nowhere", progress=False)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_respect_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_json(tmp_path / "out.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o666 & ~mask


class _Output(dict):
    def __getattr__(self, name):
        return self[name]


def fake_smk(tmp_path, rule="search", output=None):
    return SimpleNamespace(log=[str(tmp_path / "logs" / f"{rule}.log")], threads=1, rule=rule,
                           output=_Output(output or {}))


def test_a_crash_reaches_the_rules_log(tmp_path, capsys):
    def body(smk):
        print("evaluating candidate 3")
        raise ValueError("shape mismatch in candidate 3")

    with pytest.raises(SystemExit) as exit_info:
        run_stage(fake_smk(tmp_path), body)
    assert exit_info.value.code == 1
    log = (tmp_path / "logs/search.log").read_text()
    assert "evaluating candidate 3" in log
    assert "Traceback (most recent call last)" in log and "ValueError: shape mismatch in candidate 3" in log
    assert "lmnas: search: crashed" in log


def test_a_user_error_is_one_line_in_the_log(tmp_path):
    def body(smk):
        raise LmnasError("search.budget.evaluations: must be >= 1")

    with pytest.raises(SystemExit):
        run_stage(fake_smk(tmp_path), body)
    log = (tmp_path / "logs/search.log").read_text()
    assert log == "lmnas: search: search.budget.evaluations: must be >= 1\n"


def test_run_stage_writes_the_headline_figures(tmp_path):
    best, timings = tmp_path / "best.json", tmp_path / "timings.json"
    out = tmp_path / "metrics/default/search.json"
    smk = fake_smk(tmp_path, output={"best": str(best), "timings": str(timings), "headline": str(out)})

    def body(smk):  # the search's cost is a headline figure, read from timings.json (not in best.json)
        write_json(best, {"accuracy": 91.5, "evaluations": 40, "genotype": "x", "metrics": {"accuracy": 91.5}})
        write_json(timings, {"search_cost_s": 12.0, "wall_s": 3.0, "evaluations": 40})

    run_stage(smk, body)
    assert json.loads(out.read_text()) == {"accuracy": 91.5, "evaluations": 40, "search_cost_s": 12.0}


def test_headlines_are_a_few_numbers_from_nested_detail():
    detail = {"pretrain": {"final": {"val_loss": 0.58, "epoch": 2}, "epochs": [{}] * 50},
              "finetune": {"final": {"val_loss": 0.81, "val_top1": 0.85}}, "config": {"n_layer": 4}}
    assert headline("train_archgpt", detail) == {"pretrain_val_loss": 0.58, "finetune_val_loss": 0.81,
                                                 "finetune_val_top1": 0.85}
    assert all(len(figures) <= 4 for figures in HEADLINES.values())
    with pytest.raises(LmnasError, match="report"):
        headline("report", {})
