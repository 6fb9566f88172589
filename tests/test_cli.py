"""The `lmnas` command line: search (fresh, resumed, parallel) and arch."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lmnas.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import BENCH, needs  # noqa: E402


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@needs("nasbench201_cifar10.json")
def test_search_writes_best_and_journal_then_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "search", "--space", "nas-bench-201", "--strategy", "regularized-evolution",
                              "--budget", "30", "--seed", "1", "--out", str(out), "--quiet")
    assert code == 0
    best = json.loads((out / "best.json").read_text())
    assert set(best) >= {"genotype", "accuracy", "test_accuracy", "evaluations"}
    assert best["evaluations"] == 30 == pq.read_table(out / "journal.parquet").num_rows
    assert json.loads(stdout)["genotype"] == best["genotype"]
    # the best is the journal's most accurate row, with the table's own numbers for that cell
    table = json.loads((BENCH / "nasbench201_cifar10.json").read_text())
    journal = pq.read_table(out / "journal.parquet").to_pylist()
    assert all(r["metric_accuracy"] == table[r["key"]]["val_acc_200"] for r in journal)
    assert best["accuracy"] == max(r["metric_accuracy"] for r in journal) == table[best["genotype"]]["val_acc_200"]
    assert best["test_accuracy"] == table[best["genotype"]]["test_acc_200"]
    code, _, _ = run_cli(capsys, "search", "--space", "nas-bench-201", "--strategy", "regularized-evolution",
                         "--budget", "45", "--seed", "1", "--out", str(out), "--quiet")
    best = json.loads((out / "best.json").read_text())
    assert code == 0 and best["evaluations"] == 45 and json.loads((out / "timings.json").read_text())["resumed_from"] == 30
    keys = pq.read_table(out / "journal.parquet").column("key").to_pylist()
    assert len(keys) == len(set(keys)) == 45
    assert best["accuracy"] == max(table[k]["val_acc_200"] for k in keys)


@needs("nas-bench-macro_cifar10.json")
def test_arch_prints_params_and_flops_of_the_table(capsys):
    code, stdout, _ = run_cli(capsys, "arch", "--space", "nas-bench-macro", "--genotype", "22212220")
    table = json.loads((BENCH / "nas-bench-macro_cifar10.json").read_text())["22212220"]
    result = json.loads(stdout)
    assert code == 0 and (result["params"], result["flops"]) == (table["params"], table["flops"])


def test_bad_genotype_is_one_line(capsys):
    code, _, stderr = run_cli(capsys, "arch", "--space", "nas-bench-macro", "--genotype", "2221222")
    assert code == 1
    assert len(stderr.strip().splitlines()) == 1 and "2221222" in stderr


def test_unknown_space_lists_the_known_ones(capsys):
    code, _, stderr = run_cli(capsys, "arch", "--space", "nas-bench-999", "--genotype", "0")
    assert code == 1 and "known:" in stderr and "nas-bench-201" in stderr


@pytest.mark.slow
def test_parallel_proxy_search_matches_serial(tmp_path):
    """Two worker processes evaluate the same candidates with the same results as one."""
    from lmnas.data import DatasetSpec, prepare_dataset

    data = tmp_path / "digits"
    prepare_dataset(DatasetSpec(source="digits", classes=[0, 1, 2], val_fraction=0.2, test_fraction=0.2), data, seed=0)
    config = tmp_path / "search.yaml"
    config.write_text(json.dumps({"search": {
        "space": "gptnas-blocks", "strategy": "ga", "evaluator": "proxy",
        "options": {"gptnas-blocks": {"min_blocks": 3, "max_blocks": 4, "stage_widths": [16, 32]},
                    "ga": {"population": 4, "generations": 1},
                    "proxy": {"recipe": {"epochs": 1, "batch_size": 64, "lr": 0.05}}},
    }}))
    journals = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        cmd = [sys.executable, "-m", "lmnas.cli", "search", "--config", str(config), "--data", str(data),
               "--budget", "8", "--out", str(out), "--workers", str(workers), "--device", "cpu", "--quiet"]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows = pq.read_table(out / "journal.parquet").to_pylist()
        journals[workers] = {r["key"]: r["metric_accuracy"] for r in rows}
    assert journals[1] == journals[2] and len(journals[1]) == 8


@needs("nas-bench-macro_cifar10.json")
def test_genius_search_from_the_command_line_then_replayed(tmp_path, capsys, monkeypatch):
    """`lmnas search --strategy genius --llm-base-url URL --llm-model NAME` against a local server."""
    sys.path.insert(0, str(Path(__file__).parent))
    from llm_server import ScriptedServer, hill_climb

    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test-key-123")
    with ScriptedServer(hill_climb(8, 3)) as server:
        code, stdout, _ = run_cli(capsys, "search", "--space", "nas-bench-macro", "--strategy", "genius", "--budget", "10",
                                  "--llm-base-url", server.base_url, "--llm-model", "scripted", "--out",
                                  str(tmp_path / "live"), "--quiet")
    assert code == 0 and json.loads(stdout)["evaluations"] == 10
    assert (tmp_path / "live" / "transcript.jsonl").is_file()
    monkeypatch.delenv("OPENAI_API_KEY")
    code, _, _ = run_cli(capsys, "search", "--space", "nas-bench-macro", "--strategy", "genius", "--budget", "10",
                         "--llm-model", "scripted", "--replay", str(tmp_path / "live" / "transcript.jsonl"),
                         "--out", str(tmp_path / "replay"), "--quiet")
    assert code == 0
    live, replay = (pq.read_table(tmp_path / d / "journal.parquet").select(["key", "metric_accuracy"]).to_pylist()
                    for d in ("live", "replay"))
    assert live == replay
    for path in (tmp_path / "live").rglob("*"):  # .outputs/ (kept result files) included
        assert path.is_dir() or "sk-cli-test-key-123" not in path.read_text(errors="ignore")


def test_the_parser_is_built_without_importing_torch():
    """`lmnas --help` must answer at once: torch (seconds to import) is loaded only by the commands that use it."""
    src = Path(__file__).resolve().parents[1] / "src"
    code = ("import sys; import lmnas.cli as c; c.build_parser()\n"
            "heavy = sorted(m for m in ('torch', 'numpy', 'pyarrow', 'pandas') if m in sys.modules)\n"
            "print(','.join(heavy))")
    result = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(src), "PATH": ""},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "torch" not in result.stdout.strip().split(","), result.stdout
