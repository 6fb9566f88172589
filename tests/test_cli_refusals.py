"""Bad input gets one clear line and a non-zero exit; nothing is written and no traceback shows.

Also: a folder that holds another run is refused (naming the keys that differ) or, with
--restart, moved aside; a finished run is extended by a larger budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MACRO = ["search", "--space", "nas-bench-macro", "--strategy", "random", "--quiet"]


@pytest.fixture(autouse=True)
def in_process(monkeypatch, capfd):
    """`lmnas(...)` runs the CLI's main() here (fast: no interpreter start), in `cwd`."""
    global _capture, _monkeypatch
    _capture, _monkeypatch = capfd, monkeypatch


def lmnas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    from lmnas.cli import main

    _monkeypatch.chdir(cwd)
    _capture.readouterr()
    code = main(list(args))
    out = _capture.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def test_the_entry_point_prints_one_line_and_exits_1(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "lmnas.cli", *MACRO, "--budget", "0", "--out", "run"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    refused(result, "--budget")
    assert not (tmp_path / "run").exists()


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def refused(result: subprocess.CompletedProcess, *phrases: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("lmnas: search run: ")]
    assert len(lines) == 1 and lines[0].startswith("lmnas: ") and "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def test_bad_command_line_input_is_refused_and_writes_nothing(tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "config.yaml").write_text("search:\n  space: nas-bench-macro\n  strategy: random\n"
                                          "  evaluator: table\n  budget: {evaluations: ten}\n")
    before = files(tmp_path)
    cases = [
        ((*MACRO, "--budget", "0", "--out", "run"), ["--budget", ">= 1", "got 0"]),
        ((*MACRO, "--workers", "-2", "--out", "run"), ["--workers", "got -2"]),
        ((*MACRO, "--out", ""), ["--out", "empty path"]),
        ((*MACRO, "--out", "a-file/run"), ["a-file is a file, not a folder"]),
        (("search", "--config", "config.yaml", "--out", "run"), ["config.yaml", "search.budget.evaluations",
                                                                  "'ten' is not of type 'integer'"]),
        (("arch", "--space", "gptnas-blocks", "--genotype", "conv-basic", "--settings", "{min_blocks: 4}"),
         ["--settings", "not valid JSON"]),
        (("arch", "--space", "gptnas-blocks", "--genotype", "conv-basic", "--settings", "[4]"),
         ["--settings", "expected a JSON object"]),
        (("arch", "--space", "gptnas-blocks", "--genotype", "conv-basic", "--settings", '{"min_blocks": "four"}'),
         ["--settings", "min_blocks", "'four' is not of type 'integer'"]),
    ]
    table = []
    for argv, phrases in cases:
        line = refused(lmnas(*argv, cwd=tmp_path), *phrases)
        table.append(f"{' '.join(argv[:1] + argv[-2:]):60s} -> {line}")
    assert files(tmp_path) == before  # nothing written anywhere
    print("\n" + "\n".join(table))


def test_a_bad_table_is_one_line_naming_it(tmp_path):
    """Random bytes and a word where a number belongs: one line naming the file (and the record), exit 1."""
    bad, word = tmp_path / "bad", tmp_path / "word"
    bad.mkdir(), word.mkdir()
    (bad / "nas-bench-macro_cifar10.json").write_bytes(bytes(range(128, 256)) * 8)
    row = {"mean_acc": 91.0, "std": 0.1, "params": 1, "flops": 2}
    (word / "nas-bench-macro_cifar10.json").write_text(json.dumps({"12000000": {**row, "mean_acc": "high"}}))
    _monkeypatch.setenv("LMNAS_BENCHMARKS_DIR", str(bad))
    refused(lmnas(*MACRO, "--budget", "3", "--out", "run", cwd=tmp_path),
            f"benchmark table {bad / 'nas-bench-macro_cifar10.json'}: not JSON text")
    _monkeypatch.setenv("LMNAS_BENCHMARKS_DIR", str(word))
    refused(lmnas(*MACRO, "--budget", "3", "--out", "run2", cwd=tmp_path),
            "record '12000000', column 'mean_acc': 'high' is not a number")


def test_a_folder_holding_another_run_is_refused_then_restarted_aside(tmp_path):
    assert lmnas(*MACRO, "--seed", "0", "--budget", "10", "--out", "run", cwd=tmp_path).returncode == 0
    before = (tmp_path / "run" / "journal.jsonl").read_text()
    other = ("search", "--space", "nas-bench-201", "--strategy", "regularized-evolution", "--seed", "5",
             "--budget", "12", "--quiet", "--out", "run")
    refused(lmnas(*other, cwd=tmp_path), "holds a search with other settings", "seed", "space.name",
            "strategy.name", "--restart")
    assert (tmp_path / "run" / "journal.jsonl").read_text() == before  # untouched
    refused(lmnas(*MACRO, "--seed", "1", "--budget", "10", "--out", "run", cwd=tmp_path), "(differ: seed)")
    restarted = lmnas(*other, "--restart", cwd=tmp_path)
    assert restarted.returncode == 0, restarted.stderr
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    assert best["space"]["name"] == "nas-bench-201" and best["evaluations"] == 12
    assert json.loads((tmp_path / "run" / "timings.json").read_text())["resumed_from"] == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.old-")]
    assert len(aside) == 1 and (aside[0] / "journal.jsonl").read_text() == before  # nothing deleted


def test_a_larger_budget_extends_and_equals_the_longer_run(tmp_path):
    for out, budgets in (("grown", (10, 25)), ("direct", (25,))):
        for budget in budgets:
            assert lmnas(*MACRO, "--budget", str(budget), "--out", out, cwd=tmp_path).returncode == 0
    strip = lambda name: [(r["step"], r["key"], r["metrics"]) for r in
                          map(json.loads, (tmp_path / name / "journal.jsonl").read_text().splitlines())]
    assert len(strip("grown")) == 25 and strip("grown") == strip("direct")
    assert json.loads((tmp_path / "grown" / "timings.json").read_text())["resumed_from"] == 10


@pytest.mark.parametrize("damage,phrase", [
    (lambda text: text + '{"key": "1111"}\n', "record 6 is not a journal row"),
    (lambda text: text + "not json at all\n", "journal.jsonl:6: corrupt journal line"),
    (lambda text: text.replace("\n", "\nxx\n", 1), "journal.jsonl:2: corrupt journal line"),
])
def test_a_corrupt_journal_is_named_and_left_alone(tmp_path, damage, phrase):
    assert lmnas(*MACRO, "--budget", "5", "--out", "run", cwd=tmp_path).returncode == 0
    path = tmp_path / "run" / "journal.jsonl"
    path.write_text(damage(path.read_text()))
    broken = path.read_text()
    refused(lmnas(*MACRO, "--budget", "8", "--out", "run", cwd=tmp_path), phrase)
    assert path.read_text() == broken  # not appended to


def test_a_torn_last_line_is_a_kill_and_resumes(tmp_path):
    assert lmnas(*MACRO, "--budget", "5", "--out", "run", cwd=tmp_path).returncode == 0
    path = tmp_path / "run" / "journal.jsonl"
    full = path.read_text()
    path.write_text(full[: full.rindex("\n", 0, len(full) - 1) + 20])  # 4 rows + a row cut mid-write
    assert lmnas(*MACRO, "--budget", "5", "--out", "run", cwd=tmp_path).returncode == 0
    assert path.read_text() .count("\n") == 5
    assert [json.loads(line)["key"] for line in path.read_text().splitlines()] == \
        [json.loads(line)["key"] for line in full.splitlines()]


def test_a_corrupt_best_json_names_the_file_and_the_fix(tmp_path):
    best = tmp_path / "best.json"
    best.write_text('{"genotype": "1212", "space": {"name": "nas-')
    from lmnas.errors import LmnasError
    from lmnas.search.outputs import load_best

    with pytest.raises(LmnasError, match=r"best.json: not valid JSON .*rerun the search stage"):
        load_best(best)
    best.write_text('{"accuracy": 93.1}')
    with pytest.raises(LmnasError, match=r"best.json: not a search result \(needs 'space' and 'genotype'\)"):
        load_best(best)


def test_the_workflow_recomputes_a_finished_or_changed_search_and_resumes_a_killed_one(tmp_path):
    from lmnas.search.from_config import search_from_config

    def stage(batch_size: int, budget: int = 12) -> dict:
        section = {"space": "nas-bench-201", "strategy": "random", "evaluator": "table",
                   "budget": {"evaluations": budget}, "options": {"table": {"dataset": "cifar10"},
                                                                  "random": {"batch_size": batch_size}}}
        return search_from_config(section, data_dir=None, archgpt_dir=None, out_dir=tmp_path / "search",
                                  seed=0, progress=False, policy="workflow")

    first = stage(1)
    assert first["resumed_from"] == 0
    again = stage(1)  # a forced rerun of a finished stage: computed afresh, the old run kept aside
    assert again["resumed_from"] == 0 and again["genotype"] == first["genotype"]
    assert len(list(tmp_path.glob("search.old-*"))) == 1
    changed = stage(2)  # a changed setting: afresh
    assert changed["resumed_from"] == 0 and len(list(tmp_path.glob("search.old-*"))) == 2
    extended = stage(2, budget=20)  # a larger budget extends the finished run
    assert extended["resumed_from"] == 12 and extended["evaluations"] == 20
    journal = tmp_path / "search" / "journal.jsonl"
    journal.write_text("".join(journal.read_text().splitlines(keepends=True)[:7]))
    (tmp_path / "search" / "status.json").write_text('{"finished": false, "budget": 20}')  # killed mid-run
    resumed = stage(2, budget=20)
    assert resumed["resumed_from"] == 7 and resumed["evaluations"] == 20
    assert resumed["genotype"] == extended["genotype"] and len(list(tmp_path.glob("search.old-*"))) == 2


def test_a_folder_whose_run_made_no_evaluation_is_no_result_to_protect(tmp_path):
    """A run that stopped before its first evaluation (e.g. on an unreadable table) left only
    bookkeeping: the corrected rerun, with other settings, starts afresh there and says so."""
    assert lmnas(*MACRO, "--seed", "0", "--budget", "4", "--out", "run", cwd=tmp_path).returncode == 0
    run = tmp_path / "run"
    for name in ("best.json", "journal.parquet", "curve.png", "timings.json"):
        (run / name).unlink()
    (run / "journal.jsonl").write_text("")
    (run / "status.json").write_text('{"finished": false}')
    done = lmnas(*MACRO, "--seed", "1", "--budget", "4", "--out", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "made no evaluation: started afresh" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert json.loads((run / "best.json").read_text())["seed"] == 1
    assert not list(tmp_path.glob("run.old-*"))
    (run / "journal.jsonl").write_text("")  # a folder holding anything else is still protected
    (run / "notes.txt").write_text("mine")
    refused(lmnas(*MACRO, "--seed", "2", "--budget", "4", "--out", "run", cwd=tmp_path), "(differ: seed)")


@pytest.mark.parametrize("space, file", [("channel-bench-macro-mobilenet", "Results_MobileNet.json"),
                                         ("channel-bench-macro-resnet", "Results_ResNet.json")])
def test_a_missing_channel_bench_table_says_how_to_copy_it(space, file, tmp_path):
    """Channel-Bench-Macro is not shipped: the line names the file, where to put it and the command that copies it."""
    tables = tmp_path / "tables"
    tables.mkdir()
    _monkeypatch.setenv("LMNAS_BENCHMARKS_DIR", str(tables))
    refused(lmnas("search", "--space", space, "--strategy", "random", "--quiet", "--budget", "3", "--out", "run",
                  cwd=tmp_path),
            f"benchmark table {tables / file} not found: Channel-Bench-Macro is not shipped",
            f"into {tables}: curl -L -o {tables / file} https://raw.githubusercontent.com/mingkai-zheng/GENIUS/"
            f"97361d30b2da337edd0c8e1ed71b7c88b4a85d38/benchmark/{file}")
    assert not (tmp_path / "run").exists()


def test_refusals_name_the_flag_typed_and_the_command_that_works(tmp_path):
    """--data on a missing folder suggests the Snakemake target that prepares it (`snakemake prepare_data` is
    refused by Snakemake: wildcard output); ga-gpt without --archgpt names the flag, not the config key."""
    line = refused(lmnas("search", "--space", "gptnas-blocks", "--strategy", "ga", "--data", "data/prepared/digits04",
                         "--budget", "2", "--out", "run", "--quiet", cwd=tmp_path),
                   "--data data/prepared/digits04: no prepared dataset there",
                   "make it with `snakemake --cores 1 data/prepared/digits04`")
    assert "snakemake prepare_data" not in line
    for strategy in ("ga-gpt", "random-gpt"):
        line = refused(lmnas("search", "--space", "gptnas-blocks", "--strategy", strategy, "--budget", "2",
                             "--out", "run", "--quiet", cwd=tmp_path),
                       f"--strategy {strategy} needs a fine-tuned architecture GPT: pass --archgpt DIR")
        assert "archgpt_dir" not in line
    assert not (tmp_path / "run").exists()


def test_arch_says_when_it_prints_the_canonical_form(tmp_path):
    given = "[1, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 4, 0, 4, 3, 0, 0, 4, 3, 0, 4, 4, 0, 5, 0, 5, 5, 5, 0]"  # GENIUS-329
    result = lmnas("arch", "--space", "genius-imagenet", "--genotype", given, cwd=tmp_path)
    assert result.returncode == 0
    out = json.loads(result.stdout)
    assert out["genotype"] == "1,1,0,0,0,0,1,1,1,1,0,0,4,4,3,0,0,0,4,3,4,4,0,0,5,5,5,5,0,0" and out["given"] == given
    assert "canonical form" in out["canonical"] and "skips moved to the end of the stage" in out["canonical"]
    assert result.stderr.startswith("lmnas: printing the canonical form of --genotype: each stage's later skips")
    # given in its canonical form (list or key spelling): no note
    for spelling in (out["genotype"], "[" + out["genotype"].replace(",", ", ") + "]"):
        result = lmnas("arch", "--space", "genius-imagenet", "--genotype", spelling, cwd=tmp_path)
        assert "canonical" not in json.loads(result.stdout) and result.stderr == ""
