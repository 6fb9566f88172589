"""GENIUS with screening: k proposals per turn, a zero-cost proxy picks the one evaluated.

Against the scripted OpenAI-compatible server (tests/llm_server.py) and the real NAS-Bench-Macro
table; the proxy is synflow on the space's own networks (data-free, ~0.1 s each).
"""

import json
import sys
from pathlib import Path

import pytest

from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.proxies import PROXIES, make_batch, score_genotype
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from bench_tables import BENCH as BENCHMARKS, needs  # noqa: E402
from llm_server import ScriptedServer, evaluated, iter_records, seen_in_chat, text  # noqa: E402

KEY_ENV = "LMNAS_TEST_KEY"
pytestmark = needs("nas-bench-macro_cifar10.json")


@pytest.fixture(autouse=True)
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-lmnas-FAKE-screen")
    monkeypatch.setenv("LMNAS_BENCHMARKS_DIR", str(BENCHMARKS))


def neighbours(k, length=8, choices=3, garbage_at=()):
    """A deterministic 'LLM' answering k untried one-position changes of the best so far (one per line);
    the requests numbered in `garbage_at` get prose without any list."""

    def script(body, n):
        if n in garbage_at:
            return text("I would make the network deeper and wider.")
        history = evaluated(body)
        avoid = set(history) | seen_in_chat(body)
        best = max(history, key=lambda a: (history[a], a)) if history else tuple([1] * length)
        out = []
        for i in range(length):
            for delta in range(1, choices):
                cand = list(best)
                cand[i] = (cand[i] + delta) % choices
                if tuple(cand) not in avoid and cand not in out:
                    out.append(cand)
        return text("\n".join(json.dumps(c) for c in out[:k]))

    return script


def search(out_dir, budget, server=None, k=3, by="synflow", **settings):
    space = create_space("nas-bench-macro")
    base = {"model": "scripted", "api_key_env": KEY_ENV, "backoff_s": 0.001, "out_dir": str(out_dir),
            "screen": {"proposals_per_turn": k, "by": by, "cache_dir": str(Path(out_dir).parent / "cache")}}
    if server is not None:
        base["base_url"] = server.base_url
    strategy = create_strategy("genius", space=space, seed=0, **{**base, **settings})
    outcome = run_search(space, strategy, EVALUATORS.create("table"), Path(out_dir) / "journal.jsonl", Budget(budget),
                         seed=0, progress=False)
    return outcome, strategy


def journal(out_dir):
    return [json.loads(line) for line in (Path(out_dir) / "journal.jsonl").read_text().splitlines()]


def requests(out_dir):
    return [r for r in iter_records(Path(out_dir) / "transcript.jsonl") if r["event"] == "request"]


def test_k_proposals_per_turn_the_proxy_picks_one_evaluation_each(tmp_path):
    with ScriptedServer(neighbours(3)) as server:
        outcome, strategy = search(tmp_path / "run", 6, server)
    rows, turns = journal(tmp_path / "run"), requests(tmp_path / "run")
    assert outcome.stopped_because == "evaluation budget spent"
    assert len(rows) == 6 and len(server.requests) == 6  # one evaluation per turn: the budget counts picks only
    assert all("Please suggest 3 different architectures" in r["messages"][-1]["content"] for r in server.requests)
    space = create_space("nas-bench-macro")
    batch = make_batch(space, 32, 0)
    synflow = PROXIES.create("synflow")
    for row, turn in zip(rows, turns, strict=True):
        screen = turn["outcome"]["screen"]
        assert len(turn["outcome"]["keys"]) == 3 and screen["by"] == "synflow"
        # the pick is the proxy's best of the three, and the scores are the proxy's own
        assert screen["scores"] == [score_genotype(synflow, space, space.parse(k), batch, 0)
                                    for k in turn["outcome"]["keys"]]
        assert screen["picked"] == turn["outcome"]["keys"][screen["scores"].index(max(screen["scores"]))]
        assert row["key"] == screen["picked"] and row["generation"] == turn["iteration"]
    stats = strategy.stats()
    assert stats["screened"] == 18 and stats["evaluations"] == 6 and stats["screen_cpu_s"] > 0
    # the next prompt says which proposal was trained
    assert "that a training-free score ranked best" in server.requests[1]["messages"][-1]["content"]
    assert json.loads((tmp_path / "run" / "llm_stats.json").read_text())["screened"] == 18


def test_malformed_answers_are_still_rejected_with_a_reason(tmp_path):
    with ScriptedServer(neighbours(3, garbage_at={1})) as server:
        _, strategy = search(tmp_path / "run", 3, server)
    turns = requests(tmp_path / "run")
    assert [t["outcome"]["status"] for t in turns] == ["accepted", "rejected", "accepted", "accepted"]
    assert turns[1]["outcome"]["rejections"][0]["reason"] == "unparseable" and "screen" not in turns[1]["outcome"]
    assert "no list of 8 values" in server.requests[2]["messages"][-2]["content"] or \
        "no list of 8 values" in server.requests[2]["messages"][-1]["content"]
    assert len(journal(tmp_path / "run")) == 3 and strategy.stats()["retries"] == 1


def test_a_resumed_screened_run_equals_the_uninterrupted_one(tmp_path):
    with ScriptedServer(neighbours(3)) as server:
        search(tmp_path / "whole", 7, server)
    with ScriptedServer(neighbours(3)) as server:
        search(tmp_path / "parts", 3, server)
    with ScriptedServer(neighbours(3)) as server:
        _, resumed = search(tmp_path / "parts", 7, server)
        assert len(server.requests) == 4  # the 3 finished turns came from the transcript
    strip = lambda rows: [(r["step"], r["key"], r["generation"], r["metrics"]) for r in rows]  # noqa: E731
    assert strip(journal(tmp_path / "parts")) == strip(journal(tmp_path / "whole"))
    assert resumed.stats()["served_from_transcript"] == 3


def test_replay_with_another_screening_proxy_is_refused(tmp_path):
    with ScriptedServer(neighbours(3)) as server:
        search(tmp_path / "live", 3, server)
    recorded = str(tmp_path / "live" / "transcript.jsonl")
    # the first turn replays; params picks another proposal than synflow did, so the second request differs
    with pytest.raises(LmnasError, match="request 2 does not match the recording"):
        search(tmp_path / "replay", 3, replay=recorded, by="params")
    _, replayed = search(tmp_path / "replay-same", 3, replay=recorded)  # the same proxy replays exactly
    assert [r["key"] for r in journal(tmp_path / "replay-same")] == [r["key"] for r in journal(tmp_path / "live")]


@pytest.mark.parametrize("screen, match", [
    ({"proposals_per_turn": 1, "by": "synflow"}, "proposals_per_turn: need a whole number >= 2"),
    ({"by": "synflow"}, "needs proposals_per_turn and by"),
    ({"proposals_per_turn": 3, "by": "nope"}, "unknown proxy 'nope'"),
])
def test_bad_screen_settings_are_clear_errors(tmp_path, screen, match):
    with pytest.raises(LmnasError, match=match):
        create_strategy("genius", space=create_space("nas-bench-macro"), seed=0, api_key_env=KEY_ENV,
                        out_dir=str(tmp_path), screen=screen)
