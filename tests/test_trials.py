"""Trials side by side (lmnas.trials): GENIUS against a scripted reasoning server next to RS and RE,
on the real NAS-Bench-201 table (tests/bench_tables.py finds it); the mechanics, not LLM quality."""

import json
import random
import re
import shutil
import sys
from pathlib import Path

import pytest

from lmnas.report.trials import trials_section
from lmnas.trials import TrialsSettings, run_trials, table_ranker

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from bench_tables import BENCH as BENCHMARKS, needs  # noqa: E402
from llm_server import ScriptedServer, text  # noqa: E402

needs_nb201 = needs("nasbench201_cifar10.json")
OP_LIST = re.compile(r"op_list = \[([0-9, ]+)\]")
RESULT = re.compile(r"achieved an accuracy of ([\d.]+)%")


def reasoning_climber(body, n):
    """GENIUS-style free text: an analysis quoting the best design so far, then the proposal last.
    Pairs each proposal of the chat with the accuracy reported in the next user turn; starts
    from a point drawn from the request's seed (so trials differ, as GPT-4 runs do)."""
    messages = body["messages"]
    proposals = [[int(v) for v in OP_LIST.findall(m["content"])[-1].split(",")]
                 for m in messages if m["role"] == "assistant"]
    accuracies = [float(a) for m in messages if m["role"] == "user" for a in RESULT.findall(m["content"])]
    tried = {tuple(p): a for p, a in zip(proposals, accuracies)}
    if not tried:
        start = random.Random(body.get("seed", 0)).choices(range(5), k=6)
        return text("First, the 5 operations: Zeroize breaks the gradient flow, while the convolutions learn. "
                    f"A block with several 3x3 convolutions should do well, so I propose:\nop_list = {start}")
    best = max(tried, key=lambda p: (tried[p], p))
    for i in range(6):
        for delta in range(1, 5):
            cand = list(best)
            cand[i] = (cand[i] + delta) % 5
            if tuple(cand) not in tried and cand not in proposals:
                return text(f"The best design so far, op_list = {list(best)}, reached {tried[best]}%. Changing op{i} "
                            f"should keep the gradient path through the skip connection and add capacity. "
                            f"Rationale: ... Therefore my new design is\nop_list = {cand}")
    return text("I cannot improve on these results.")


@needs_nb201
def test_trials_of_genius_next_to_random_and_evolution(tmp_path, monkeypatch):
    monkeypatch.setenv("LMNAS_BENCHMARKS_DIR", str(BENCHMARKS))
    monkeypatch.setenv("LMNAS_TEST_KEY", "sk-fake")
    with ScriptedServer(reasoning_climber) as server:
        search_cfg = {
            "space": "nas-bench-201", "strategy": "genius", "evaluator": "table",
            "budget": {"evaluations": 10},
            "options": {"genius": {"model": "scripted", "base_url": server.base_url, "api_key_env": "LMNAS_TEST_KEY"},
                        "table": {"dataset": "cifar10"},
                        "regularized-evolution": {"population": 5, "sample_size": 2}},
        }
        settings = TrialsSettings.from_config({"seeds": [0, 1, 2]}, "genius")
        summary = run_trials(search_cfg, settings, out_dir=tmp_path / "trials", progress=False)
    assert settings.strategies == ("genius", "random", "regularized-evolution")
    assert json.loads((tmp_path / "trials" / "trials.json").read_text()) == summary
    assert len(summary["runs"]) == 9 and summary["rank_by"] == "test_accuracy"
    for run in summary["runs"]:
        folder = Path(run["folder"])
        assert (folder / "journal.parquet").is_file() and (folder / "best.json").is_file()
        assert len(run["steps"]) == 10
        best = json.loads((folder / "best.json").read_text())
        assert run["best"]["key"] == best["genotype"] and run["best"]["accuracy"] == best["accuracy"]
        # the best so far never gets worse, and its rank is that of the best
        accs = [s["best_accuracy"] for s in run["steps"]]
        assert accs == sorted(accs) and run["steps"][-1]["best_rank"] == run["best"]["rank"]
    genius_runs = [r for r in summary["runs"] if r["strategy"] == "genius"]
    assert (tmp_path / "trials" / "genius-seed1" / "transcript.jsonl").is_file()
    # a trial the search stage already ran is read from its folder, not run (and paid for) again
    # (the others resume from their journals and transcripts: the server is gone, no request is made)
    shutil.move(tmp_path / "trials" / "genius-seed1", tmp_path / "search")
    again = run_trials(search_cfg, settings, out_dir=tmp_path / "trials", progress=False,
                       search_run=(1, tmp_path / "search"))
    assert not (tmp_path / "trials" / "genius-seed1").exists()
    assert [r["steps"] for r in again["runs"]] == [r["steps"] for r in summary["runs"]]
    # the free-text answers were read at their last op_list: each proposal is a one-op change of the best
    assert len({r["steps"][0]["key"] for r in genius_runs}) == 3  # the seeds start apart
    markdown = trials_section(summary)
    assert "## Trials side by side" in markdown and "| T |" in markdown and "genius acc" in markdown
    print("\n" + markdown)


@needs_nb201
def test_rank_is_position_among_every_architecture_of_the_table(monkeypatch):
    monkeypatch.setenv("LMNAS_BENCHMARKS_DIR", str(BENCHMARKS))
    rank, column = table_ranker({"space": "nas-bench-201", "evaluator": "table",
                                 "options": {"table": {"dataset": "cifar10"}}})
    table = json.loads((BENCHMARKS / "nasbench201_cifar10.json").read_text())
    best = max(table, key=lambda k: table[k]["test_acc_200"])
    worst = min(table, key=lambda k: table[k]["test_acc_200"])
    assert column == "test_accuracy" and rank(best) == 1 and rank(worst) > 15000
    # 1 + how many are strictly better; the benchmark's own rank column (by test accuracy) orders
    # ties one way or another, so it falls inside the tie block
    values = [v["test_acc_200"] for v in table.values()]
    for k in sorted(table)[::997]:
        v = table[k]["test_acc_200"]
        better, ties = sum(x > v for x in values), sum(x == v for x in values)
        assert rank(k) == better + 1 and rank(k) <= table[k]["rank"] <= better + ties


@needs_nb201
def test_a_named_benchmark_variant_runs_beside_the_hidden_default(tmp_path, monkeypatch):
    monkeypatch.setenv("LMNAS_BENCHMARKS_DIR", str(BENCHMARKS))
    monkeypatch.setenv("LMNAS_TEST_KEY", "sk-fake")
    with ScriptedServer(reasoning_climber) as server:
        search_cfg = {"space": "nas-bench-201", "strategy": "genius", "evaluator": "table", "budget": {"evaluations": 2},
                      "options": {"genius": {"model": "scripted", "base_url": server.base_url,
                                             "api_key_env": "LMNAS_TEST_KEY"}}}
        settings = TrialsSettings.from_config(
            {"seeds": [0], "baselines": ["genius-named"],
             "variants": {"genius-named": {"strategy": "genius", "name_benchmark": True}}}, "genius")
        summary = run_trials(search_cfg, settings, out_dir=tmp_path, progress=False)
        sent = [json.dumps(r["messages"]) for r in server.requests]
    assert [r["strategy"] for r in summary["runs"]] == ["genius", "genius-named"]
    assert len(sent) == 4 and not any("NAS-Bench" in s for s in sent[:2]) and all("NAS-Bench-201" in s for s in sent[2:])
    named = json.loads((tmp_path / "genius-named-seed0" / "best.json").read_text())
    assert named["strategy"]["name_benchmark"] is True
