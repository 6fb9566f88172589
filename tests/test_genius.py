"""GENIUS end to end: the real `openai` client against a scripted local server, driven by the runner.

NAS-Bench-Macro accuracies come from the real table (../shared/benchmarks); tests skip without it (fail under CI).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.llm.answers import REASONS
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from bench_tables import BENCH as BENCHMARKS, needs  # noqa: E402
from llm_server import Reply, ScriptedServer, adversarial, evaluated, hill_climb, iter_records, scripted, text  # noqa: E402

KEY = "sk-lmnas-FAKE-genius-9f8e7d6c5b4a3210"
KEY_ENV = "LMNAS_TEST_KEY"
needs_macro = needs("nas-bench-macro_cifar10.json")
needs_nb201 = needs("nasbench201_cifar10.json")


@pytest.fixture(autouse=True)
def key_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("LMNAS_BENCHMARKS_DIR", str(BENCHMARKS))


def genius(space, out_dir, server=None, **settings):
    base = {"model": "scripted", "api_key_env": KEY_ENV, "backoff_s": 0.001, "out_dir": str(out_dir)}
    if server is not None:
        base["base_url"] = server.base_url
    return create_strategy(settings.pop("strategy", "genius"), space=space, seed=0, **{**base, **settings})


def search(out_dir, budget, server=None, space="nas-bench-macro", evaluator=None, **settings):
    space = create_space(space) if isinstance(space, str) else space
    strategy = genius(space, out_dir, server, **settings)
    outcome = run_search(space, strategy, evaluator or EVALUATORS.create("table"), Path(out_dir) / "journal.jsonl",
                         Budget(budget), seed=0, progress=False)
    return outcome, strategy


def journal(out_dir):
    rows = [json.loads(line) for line in (Path(out_dir) / "journal.jsonl").read_text().splitlines()]
    return [(r["step"], r["key"], r["generation"], r["metrics"]) for r in rows]


def transcript(out_dir, event=None):
    records = list(iter_records(Path(out_dir) / "transcript.jsonl"))
    return [r for r in records if event is None or r["event"] == event]


# -- 10 iterations, then the same run replayed offline -------------------------------------------------
@needs_macro
def test_ten_iterations_then_offline_replay_is_identical(tmp_path, monkeypatch):
    with ScriptedServer(hill_climb(8, 3)) as server:
        outcome, strategy = search(tmp_path / "live", 10, server)
    rows = journal(tmp_path / "live")
    assert len(rows) == 10 and outcome.stopped_because == "evaluation budget spent"
    stats = strategy.stats()
    assert (stats["requests"], stats["live_requests"], stats["retries"], stats["evaluations"]) == (10, 10, 0, 10)
    requests = transcript(tmp_path / "live", "request")
    assert [r["request_sha256"] for r in requests] == server.request_hashes()
    assert [r["outcome"]["keys"][0] for r in requests] == [key for _, key, _, _ in rows]
    for r, sent in zip(requests, server.requests, strict=True):
        assert r["model"] == "scripted" and r["temperature"] == 0.0 and r["seed"] == 0 and r["max_tokens"] is None
        assert r["latency_s"] > 0 and r["finished_at"] == r["started_at"] + r["latency_s"]
        # the server's usage (words, see llm_server.py), recomputed from what it was sent and answered
        prompt = sum(len(m["content"].split()) for m in sent["messages"])
        completion = len(r["response"].split())
        assert r["usage"] == {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    # every accuracy is the NAS-Bench-Macro row of its key (mean_acc is its one, test, metric)
    table = json.loads((BENCHMARKS / "nas-bench-macro_cifar10.json").read_text())
    assert [m for *_, m in rows] == [{"accuracy": table[key]["mean_acc"], "test_accuracy": table[key]["mean_acc"],
                                      "std": table[key]["std"]} for _, key, _, _ in rows]
    # the fresh-mode prompt carries every result so far, GENIUS style
    last_prompt = server.requests[-1]["messages"][-1]["content"]
    assert len(evaluated(server.requests[-1])) == 9 and "Please suggest a better operation ID list" in last_prompt
    best = max(m["accuracy"] for *_, m in rows)
    print(f"\n10 iterations on NAS-Bench-Macro: best mean_acc {best:.2f}% after 10 queries, "
          f"{stats['requests']} requests, {stats['prompt_tokens']} prompt + {stats['completion_tokens']} completion tokens")

    # replay: no key, no network at all (any connect fails), in two parts (a kill, then a resume)
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setattr(socket.socket, "connect", lambda *a: (_ for _ in ()).throw(OSError("network used")))
    recorded = str(tmp_path / "live" / "transcript.jsonl")
    search(tmp_path / "replay", 4, replay=recorded)
    _, replayed = search(tmp_path / "replay", 10, replay=recorded)
    assert [row[1:] for row in journal(tmp_path / "replay")] == [row[1:] for row in rows]
    assert replayed.stats()["served_from_transcript"] == 4 and replayed.stats()["live_requests"] == 6
    assert [r["response"] for r in transcript(tmp_path / "replay", "request")] == [r["response"] for r in requests]


@needs_macro
def test_replay_with_other_settings_is_a_clear_error(tmp_path):
    with ScriptedServer(hill_climb(8, 3)) as server:
        search(tmp_path / "live", 3, server)
    with pytest.raises(LmnasError, match="request 1 does not match the recording"):
        search(tmp_path / "replay", 3, replay=str(tmp_path / "live" / "transcript.jsonl"), name_benchmark=True)


# -- kill -9 in the middle, then resume: finished turns come from the transcript ----------------------
KILLED_RUN = """
import sys, time
from pathlib import Path
from lmnas.evaluation import EVALUATORS
from lmnas.search.runner import Budget, run_search
from lmnas.spaces import create_space
from lmnas.strategies import create_strategy
base_url, out, marker = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
table = EVALUATORS.create("table")

class HangsAtFourth(type(table)):
    calls = 0
    def evaluate(self, space, genotype, *, seed):
        HangsAtFourth.calls += 1
        if HangsAtFourth.calls == 4:
            marker.touch()
            time.sleep(120)
        return super().evaluate(space, genotype, seed=seed)

space = create_space("nas-bench-macro")
strategy = create_strategy("genius", space=space, seed=0, model="scripted", api_key_env="LMNAS_TEST_KEY",
                           backoff_s=0.001, out_dir=str(out), base_url=base_url)
run_search(space, strategy, HangsAtFourth(), out / "journal.jsonl", Budget(10), seed=0, progress=False)
"""


@needs_macro
def test_kill_and_resume_never_repeats_a_request(tmp_path):
    with ScriptedServer(hill_climb(8, 3)) as server:
        search(tmp_path / "reference", 10, server)
    reference = journal(tmp_path / "reference")
    script, marker, out = tmp_path / "killed_run.py", tmp_path / "hanging", tmp_path / "run"
    script.write_text(KILLED_RUN)
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent / "src")}
    with ScriptedServer(hill_climb(8, 3)) as server:
        proc = subprocess.Popen([sys.executable, str(script), server.base_url, str(out), str(marker)], env=env)
        deadline = time.time() + 120
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the search did not reach its 4th evaluation"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(journal(out)) == 3 and len(transcript(out, "request")) == 4  # the 4th answer is recorded
        _, resumed = search(out, 10, server)
        hashes = server.request_hashes()
    assert len(hashes) == 10 and len(set(hashes)) == 10  # no request was sent twice
    assert resumed.stats()["served_from_transcript"] == 4 and resumed.stats()["live_requests"] == 6
    assert [row[1:] for row in journal(out)] == [row[1:] for row in reference]
    sessions = transcript(out, "session")
    assert [s["resumed_after_requests"] for s in sessions] == [0, 4]


# -- failures: API errors past the cap, refusals, exhausted retries ------------------------------------
@needs_macro
def test_api_errors_past_the_cap_keep_everything_and_a_rerun_resumes(tmp_path):
    broken = {"on": True}
    good = hill_climb(8, 3)
    served = []

    def script(body, n):
        reply = Reply("status", status=500) if broken["on"] and len(evaluated(body)) >= 3 else good(body, n)
        served.append(reply.kind)
        return reply

    with ScriptedServer(script) as server:
        with pytest.raises(LmnasError, match=r"failed 3 times.*HTTP 500.*rerun the same command to resume"):
            search(tmp_path, 6, server, api_retries=2)
        assert len(journal(tmp_path)) == 3
        errors = transcript(tmp_path, "api_error")
        assert [e["attempt"] for e in errors] == [1, 2, 3] and errors[-1]["retry_in_s"] is None
        broken["on"] = False
        _, strategy = search(tmp_path, 6, server, api_retries=2)
        answered = [h for h, kind in zip(server.request_hashes(), served) if kind == "text"]
    assert len(journal(tmp_path)) == 6
    assert len(answered) == 6 and len(set(answered)) == 6  # finished turns were not asked again
    assert strategy.stats()["served_from_transcript"] == 3


@needs_macro
def test_rejections_are_fed_back_in_the_same_chat(tmp_path):
    replies = [text("[1, 2, 0]"), text("[1, 2, 3, 1, 1, 1, 1, 1]"), text("```\n[2, 2, 2, 1, 2, 2, 2, 0]\n```"),
               text("[2, 2, 2, 1, 2, 2, 2, 0]"), text("Sure: [2, 2, 2, 2, 2, 2, 2, 0]")]
    with ScriptedServer(scripted(replies)) as server:
        _, strategy = search(tmp_path, 2, server)
    first, second, third, fourth, fifth = (r["messages"] for r in server.requests)
    assert second[:2] == first and second[2] == {"role": "assistant", "content": "[1, 2, 0]"}
    assert "[1, 2, 0] has 3 values, expected 8" in second[3]["content"]
    assert "value 3 for layer4 is not one of [0, 1, 2]" in third[-1]["content"]
    assert len(fourth) == 2 and "[2, 2, 2, 1, 2, 2, 2, 0] gives an accuracy of 93.13%" in fourth[1]["content"]
    assert "was already evaluated: it gives an accuracy of 93.13%" in fifth[-1]["content"]
    assert [key for _, key, _, _ in journal(tmp_path)] == ["22212220", "22222220"]
    stats = strategy.stats()
    assert stats["rejections"] == {"wrong_length": 1, "out_of_range": 1, "duplicate": 1}
    assert (stats["requests"], stats["retries"], stats["evaluations"]) == (5, 3, 2)


@needs_macro
@pytest.mark.parametrize("on_refusal, on_exhausted, requests, rows", [
    ("stop", "random", 1, 0),  # the first refusal ends the search
    ("reask", "stop", 3, 0),  # re-asked twice (max_retries=2), then the search ends
    ("reask", "random", 9, 3),  # each iteration falls back to a random architecture
])
def test_refusal_and_exhaustion_policies(tmp_path, on_refusal, on_exhausted, requests, rows):
    replies = [text("I cannot improve on these results."), text(""), text("no idea")]
    with ScriptedServer(lambda body, n: replies[n % 3]) as server:
        outcome, strategy = search(tmp_path, 3, server, max_retries=2, on_refusal=on_refusal, on_exhausted=on_exhausted)
    assert len(server.requests) == requests and len(outcome.journal) == rows
    assert outcome.stopped_because == ("strategy finished" if rows == 0 else "evaluation budget spent")
    if requests > 1:
        assert "We still need a proposal" in server.requests[1]["messages"][-1]["content"]
    fallbacks = transcript(tmp_path, "fallback")
    assert [f["key"] for f in fallbacks] == [key for _, key, _, _ in journal(tmp_path)] if rows else not fallbacks
    assert strategy.stats()["fallbacks"] == rows


# -- 1,000 adversarial answers -----------------------------------------------------------------------------
@needs_macro
@pytest.mark.parametrize("budget, answers", [
    (50, 150),  # every kind of bad answer, several times over
    pytest.param(300, 1000, marks=pytest.mark.slow),  # ~60 s on 2 busy cores: the openai client costs ~20 ms a request
])
def test_adversarial_answers(tmp_path, budget, answers):
    script, served = adversarial(8, 3, slow_s=0.75)
    start = time.perf_counter()
    with ScriptedServer(script) as server:
        outcome, strategy = search(tmp_path, budget, server, timeout_s=0.25, api_retries=5, max_retries=5)
    wall = time.perf_counter() - start
    stats = strategy.stats()
    rows = journal(tmp_path)
    assert len(served) >= answers and len(rows) == budget and len({key for _, key, _, _ in rows}) == budget
    requests = transcript(tmp_path, "request")
    for record in requests:
        if record["outcome"]["status"] != "accepted":
            assert record["outcome"]["rejections"], record
            for rejection in record["outcome"]["rejections"]:
                assert rejection["reason"] in REASONS and rejection["detail"]
    assert len(requests) == stats["live_requests"] == stats["requests"]
    assert sum(stats["rejections"].values()) == stats["requests"] - (stats["proposals"] - stats["fallbacks"])
    assert len(transcript(tmp_path, "api_error")) == stats["api_errors"]
    assert len(transcript(tmp_path, "fallback")) == stats["fallbacks"] > 0
    assert stats["evaluations"] == budget and not Path("/tmp/lmnas_pwned").exists()
    kinds = Counter(served)
    print(f"\nadversarial: {len(served)} server answers ({dict(kinds)}) in {wall:.1f} s -> "
          f"{stats['requests']} chat answers, {stats['retries']} retries, {stats['api_errors']} API errors retried, "
          f"{stats['fallbacks']} random fallbacks, {stats['evaluations']} evaluations; rejections {stats['rejections']}")


# -- the API key: sent to the server, never written or logged ------------------------------------------------
@needs_macro
def test_the_api_key_is_never_written_or_logged(tmp_path, caplog, capfd):
    caplog.set_level("DEBUG")
    good = hill_climb(8, 3)
    leaky = Reply("status", text=f"upstream rejected key {KEY}", status=502)
    with ScriptedServer(lambda body, n: leaky if n % 3 == 1 or n >= 12 else good(body, n)) as server:
        with pytest.raises(LmnasError) as info:
            search(tmp_path, 20, server, api_retries=2)
    assert KEY not in str(info.value) and "[REDACTED]" in str(info.value)
    assert all(auth == f"Bearer {KEY}" for auth in server.authorization)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"journal.jsonl", "transcript.jsonl", "llm_stats.json"}
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    assert "[REDACTED]" in (tmp_path / "transcript.jsonl").read_text()
    out, err = capfd.readouterr()
    assert caplog.records and KEY not in caplog.text and KEY not in out + err
    assert json.dumps(genius(create_space("nas-bench-macro"), tmp_path / "x", server).settings()).find(KEY) == -1


# -- the other modes and spaces -------------------------------------------------------------------------------
NB201_ANSWERS = ["[3, 1, 3, 1, 3, 3]", "I propose [3, 3, 3, 1, 3, 3].", "[3, 1, 3, 3, 2, 3]"]


@needs_nb201
def test_conversation_mode_reports_each_result_in_one_chat(tmp_path):
    with ScriptedServer(lambda body, n: text(NB201_ANSWERS[n])) as server:
        _, strategy = search(tmp_path, 3, server, space="nas-bench-201")
    assert strategy.mode == "conversation"
    first, second, third = (r["messages"] for r in server.requests)
    assert [m["role"] for m in third] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert second[:2] == first and third[:4] == second
    assert second[2]["content"] == NB201_ANSWERS[0]
    # GENIUS's turn: the result of "this model" (the one just proposed) and a request for a rationale
    space = create_space("nas-bench-201")
    first_key = space.key(space.validate([3, 1, 3, 1, 3, 3]))
    accuracy = json.loads((BENCHMARKS / "nasbench201_cifar10.json").read_text())[first_key]["val_acc_200"]
    assert second[3]["content"].startswith(f"By using this model, we achieved an accuracy of {accuracy:.3f}%")
    assert "provide a rationale" in second[3]["content"]
    assert [key for _, key, _, _ in journal(tmp_path)] == [
        space.key(space.validate(json.loads(a[a.rindex("["):a.rindex("]") + 1]))) for a in NB201_ANSWERS]


class FlopsEvaluator(Evaluator):
    """Accuracy grows with FLOPs: enough to drive a search through the constraint."""

    name = "flops-synthetic"

    def evaluate(self, space, genotype, *, seed):
        flops = space.flops(genotype)
        return EvalResult(metrics={"accuracy": 60 + flops / 3e7}, cost_s=0.0, flops=flops)


STAGES = ("Stage 1 (Layer 2 to Layer 7): [1, 0, 0, 0, 1, 0]\nStage 2 (Layer 8 to Layer 13): [1, 0, 1, 1, 0, 0]\n"
          "Stage 3 (Layer 14 to Layer 19): [{}]\nStage 4 (Layer 20 to Layer 25): [5, 5, 0, 5, 5, 0]\n"
          "Stage 5 (Layer 26 to Layer 31): [{}]\nThis design balances depth and cost.")


def test_flops_violations_are_fed_back_without_spending_an_evaluation(tmp_path):
    too_big = STAGES.format("4, 0, 4, 4, 0, 0", "6, 0, 6, 6, 6, 6")
    fits = STAGES.format("2, 0, 2, 2, 0, 0", "4, 0, 4, 4, 0, 0")
    fits_too = STAGES.format("2, 0, 2, 2, 0, 0", "4, 0, 4, 4, 4, 0")
    space = create_space("genius-imagenet", flops_limits=[270, 330], flops_count="genius")
    with ScriptedServer(scripted([text(too_big), text(fits), text(fits_too)])) as server:
        _, strategy = search(tmp_path, 2, server, space=space, evaluator=FlopsEvaluator())
    feedback = server.requests[1]["messages"][3]["content"]
    assert feedback.startswith("The design fails to meet the FLOPS constraint, resulting 362 FLOPS, "
                               "which is 32 FLOPS higher the upper bound of 330.")
    assert strategy.stats()["rejections"] == {"constraint": 1} and len(journal(tmp_path)) == 2
    second_iteration = server.requests[2]["messages"][1]["content"]
    assert "- Experiment 1\nStage 1 (Layer 2 to Layer 7): [1, 1, 0, 0, 0, 0]" in second_iteration
    assert "This design has a total of 293 FLOPS. With this model we achieved an accuracy of" in second_iteration


@needs_macro
def test_hidden_benchmark_names_never_reach_the_server(tmp_path):
    with ScriptedServer(hill_climb(8, 3)) as server:
        search(tmp_path, 3, server)  # hidden is the default (GENIUS never names the benchmark)
    sent = json.dumps([r["messages"] for r in server.requests])
    assert "bench" not in sent.lower() and "CIFAR10" in sent


@needs_macro
def test_several_proposals_per_iteration(tmp_path):
    def two(body, n):
        history = evaluated(body)
        pool = [[1] * 8, [2] * 8, [2, 2, 2, 1, 2, 2, 2, 0], [1, 2, 1, 2, 1, 2, 1, 2]]
        fresh = [p for p in pool if tuple(p) not in history][:2]
        return text("\n".join(json.dumps(p) for p in fresh))

    with ScriptedServer(two) as server:
        search(tmp_path, 4, server, proposals_per_iteration=2)
    assert len(server.requests) == 2 and "Please suggest 2 different architectures" in \
        server.requests[0]["messages"][1]["content"]
    assert [(step, gen) for step, _, gen, _ in journal(tmp_path)] == [(1, 1), (2, 1), (3, 2), (4, 2)]


@needs_macro
def test_hybrid_alternates_llm_and_evolution(tmp_path):
    runs = []
    for name in ("a", "b"):
        with ScriptedServer(hill_climb(8, 3)) as server:
            _, strategy = search(tmp_path / name, 12, server, strategy="genius-hybrid", population=4, llm_every=3)
        runs.append(journal(tmp_path / name))
    # asks 1-4: LLM (it replaces RE's random start); then every 3rd ask (6, 9, 12) is the LLM's;
    # mutants are never evaluated genotypes, so each ask is one evaluation
    assert strategy.stats()["asks_by_source"] == {"llm": 7, "evolution": 5} and len(server.requests) == 7
    assert runs[0] == runs[1] and len(runs[0]) == 12
    assert strategy.settings()["name"] == "genius-hybrid" and strategy.settings()["llm_every"] == 3
    with pytest.raises(LmnasError, match="accepted settings"):
        create_strategy("genius-hybrid", space=create_space("nas-bench-macro"), seed=0, no_such_setting=1)


@needs_nb201
def test_conversation_mode_resumes_from_its_transcript(tmp_path):
    with ScriptedServer(lambda body, n: text(NB201_ANSWERS[len(body["messages"]) // 2 - 1])) as server:
        search(tmp_path, 2, server, space="nas-bench-201")
        _, resumed = search(tmp_path, 3, server, space="nas-bench-201")  # replays 2 turns, asks 1
        hashes = server.request_hashes()
    assert len(hashes) == 3 == len(set(hashes)) and resumed.stats()["served_from_transcript"] == 2
    assert [r["chat_start"] for r in transcript(tmp_path, "request")] == [True, False, False]


@needs_macro
def test_a_local_transformers_model_drives_the_search(tmp_path):
    from test_llm_backends import tiny_chat_model

    model = tiny_chat_model(tmp_path / "tiny")  # random weights: its answers are noise, so it falls back
    outcome, strategy = search(tmp_path / "run", 2, backend="transformers", model=str(model), max_tokens=8,
                               max_retries=1)
    assert len(outcome.journal) == 2 and strategy.stats()["live_requests"] == 4
    assert {r["backend"] for r in transcript(tmp_path / "run", "request")} == {"transformers"}
    assert len(transcript(tmp_path / "run", "fallback")) == strategy.stats()["fallbacks"]
