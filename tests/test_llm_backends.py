"""LLM backends through one interface: openai against a real local HTTP server, replay, transformers."""

import json
import string
import sys
from pathlib import Path

import pytest

from lmnas.errors import LmnasError
from lmnas.llm import LLM_BACKENDS, RetryingBackend, TransientLLMError
from lmnas.llm.transcript import Transcript, TranscriptCursor, read_transcript, request_hash

sys.path.insert(0, str(Path(__file__).parent))
from llm_server import Reply, ScriptedServer, messages_sha256, scripted, text  # noqa: E402

KEY = "sk-lmnas-FAKE-backends-0123456789abcdef"
MESSAGES = [{"role": "system", "content": "You are an expert."}, {"role": "user", "content": "Propose [0, 1, 2]."}]


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("LMNAS_TEST_KEY", KEY)
    return "LMNAS_TEST_KEY"


def openai_backend(server, key_env, timeout_s=5.0):
    return LLM_BACKENDS.create("openai", model="scripted-model", base_url=server.base_url, api_key_env=key_env,
                               timeout_s=timeout_s)


def test_registry_has_every_backend():
    assert LLM_BACKENDS.names() == ["openai", "replay", "transformers"]


def test_openai_backend_sends_settings_and_reads_usage(key_env):
    with ScriptedServer(scripted([text("[1, 2, 0]")])) as server:
        response = openai_backend(server, key_env).complete(MESSAGES, temperature=0.0, seed=7, max_tokens=64)
    assert response.text == "[1, 2, 0]"
    assert response.model == "scripted-model" and response.raw_finish_reason == "stop"
    assert response.usage == {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}  # words, as the server counts
    sent = server.requests[0]
    assert (sent["temperature"], sent["seed"], sent["max_tokens"], sent["n"]) == (0.0, 7, 64, 1)
    assert sent["messages"] == MESSAGES
    assert server.authorization == [f"Bearer {KEY}"]  # the key goes to the server, and only there


@pytest.mark.parametrize("reply, fragment", [
    (Reply("status", status=429), "HTTP 429"),
    (Reply("status", status=500), "HTTP 500"),
    (Reply("status", status=503), "HTTP 503"),
    (Reply("slow", "[1]", delay_s=1.0), "timed out"),
    (Reply("drop"), "connection failed"),
    (Reply("empty_body"), "unreadable response body"),
])
def test_transient_failures_are_classified(key_env, reply, fragment):
    with ScriptedServer(scripted([reply])) as server:
        with pytest.raises(TransientLLMError, match=fragment):
            openai_backend(server, key_env, timeout_s=0.3).complete(MESSAGES, temperature=0, seed=None, max_tokens=None)


def test_permanent_failures_are_clear_and_never_show_the_key(key_env):
    echo = Reply("status", text=f"Incorrect API key provided: {KEY}.", status=401)
    with ScriptedServer(scripted([echo])) as server:
        with pytest.raises(LmnasError) as info:
            openai_backend(server, key_env).complete(MESSAGES, temperature=0, seed=None, max_tokens=None)
    assert not isinstance(info.value, TransientLLMError)
    message = str(info.value)
    assert "HTTP 401" in message and "[REDACTED]" in message and KEY not in message
    assert "LMNAS_TEST_KEY" in message  # says where the key comes from


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("LMNAS_NO_SUCH_KEY", raising=False)
    with pytest.raises(LmnasError, match="LMNAS_NO_SUCH_KEY is not set"):
        LLM_BACKENDS.create("openai", model="m", base_url="http://127.0.0.1:9/v1", api_key_env="LMNAS_NO_SUCH_KEY")


def test_retries_back_off_exponentially_then_succeed(key_env):
    replies = [Reply("status", status=429), Reply("status", status=500), Reply("drop"), text("[2, 2, 2]")]
    sleeps, errors = [], []
    with ScriptedServer(scripted(replies)) as server:
        backend = RetryingBackend(openai_backend(server, key_env), retries=5, backoff_s=0.01, backoff_max_s=0.03,
                                  on_error=lambda a, e, d: errors.append((a, d)), sleep=sleeps.append)
        response = backend.complete(MESSAGES, temperature=0, seed=None, max_tokens=None)
    assert response.text == "[2, 2, 2]" and backend.attempts == 4 and len(server.requests) == 4
    assert sleeps == [0.01, 0.02, 0.03]  # doubled each time, capped at backoff_max_s
    assert errors == [(1, 0.01), (2, 0.02), (3, 0.03)]


def test_retries_give_up_with_a_resumable_error(key_env):
    with ScriptedServer(scripted([Reply("status", status=500)])) as server:
        backend = RetryingBackend(openai_backend(server, key_env), retries=2, backoff_s=0.0)
        with pytest.raises(LmnasError, match=r"failed 3 times \(api_retries=2\).*HTTP 500.*rerun the same command"):
            backend.complete(MESSAGES, temperature=0, seed=None, max_tokens=None)
    assert len(server.requests) == 3


# -- transcripts and replay --------------------------------------------------------------------------
def recorded(tmp_path, answers):
    transcript = Transcript(tmp_path / "transcript.jsonl")
    transcript.append({"event": "session", "at": 0.0})
    for i, answer in enumerate(answers):
        messages = MESSAGES + [{"role": "user", "content": f"round {i}"}]
        transcript.append({"event": "request", "request_sha256": request_hash(messages), "response": answer,
                           "model": "m", "usage": {"prompt_tokens": 1}, "finish_reason": "stop"})
    return transcript.path


def test_request_hash_is_canonical():
    assert request_hash(MESSAGES) == messages_sha256(MESSAGES)
    assert request_hash([dict(reversed(list(m.items()))) for m in MESSAGES]) == request_hash(MESSAGES)
    assert request_hash(MESSAGES[:1]) != request_hash(MESSAGES)


def test_replay_serves_in_order_and_rejects_mismatches(tmp_path):
    path = recorded(tmp_path, ["[0, 1]", "[1, 1]"])
    replay = LLM_BACKENDS.create("replay", path=str(path))
    ask = lambda i: replay.complete(MESSAGES + [{"role": "user", "content": f"round {i}"}],  # noqa: E731
                                    temperature=0, seed=None, max_tokens=None)
    assert ask(0).text == "[0, 1]" and ask(1).text == "[1, 1]"
    with pytest.raises(LmnasError, match="ends after 2 requests"):
        ask(2)
    fresh = LLM_BACKENDS.create("replay", path=str(path))
    with pytest.raises(LmnasError, match="request 1 does not match the recording"):
        fresh.complete(MESSAGES, temperature=0, seed=None, max_tokens=None)
    with pytest.raises(LmnasError, match="does not exist"):
        LLM_BACKENDS.create("replay", path=str(tmp_path / "nope.jsonl"))


def test_torn_last_line_is_dropped_and_a_corrupt_one_is_an_error(tmp_path):
    path = recorded(tmp_path, ["[0, 1]"])
    with path.open("a") as f:
        f.write('{"event": "request", "respo')  # a kill mid-write
    assert len(read_transcript(path)) == 2
    Transcript(path).append({"event": "fallback", "key": "01"})
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["event"] for r in records] == ["session", "request", "fallback"]
    path.write_text('{"event": "session"}\nnot json\n{"event": "session"}\n')
    with pytest.raises(LmnasError, match="transcript.jsonl:2: corrupt"):
        read_transcript(path)


def test_cursor_matches_requests_and_fallbacks_in_order(tmp_path):
    records = read_transcript(recorded(tmp_path, ["[0, 1]"])) + [{"event": "fallback", "key": "22"}]
    cursor = TranscriptCursor(records, "t.jsonl")
    first = MESSAGES + [{"role": "user", "content": "round 0"}]
    with pytest.raises(LmnasError, match="recorded a 'request' event"):
        TranscriptCursor(records, "t.jsonl").take_fallback("22")
    assert cursor.take_request(request_hash(first))["response"] == "[0, 1]"
    with pytest.raises(LmnasError, match="recorded the random fallback '22'"):
        TranscriptCursor(records[:1] + records[2:], "t.jsonl").take_fallback("11")
    assert cursor.take_fallback("22")["key"] == "22"
    assert cursor.exhausted and cursor.take_request("anything") is None


# -- a local chat model ----------------------------------------------------------------------------
def tiny_chat_model(folder: Path) -> Path:
    """A randomly initialised 1-layer GPT-2 with a character tokenizer and a chat template."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>"]
    vocab = {t: i for i, t in enumerate(specials + list(string.printable))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>",
                                        eos_token="<eos>", additional_special_tokens=specials[3:])
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<eos>{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=8192, n_embd=16, n_layer=1, n_head=2,
                        eos_token_id=2, bos_token_id=2, pad_token_id=1)
    tokenizer.save_pretrained(folder)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def test_transformers_backend_chats_with_a_local_model(tmp_path):
    backend = LLM_BACKENDS.create("transformers", model=str(tiny_chat_model(tmp_path / "tiny")))
    greedy = [backend.complete(MESSAGES, temperature=0.0, seed=None, max_tokens=8) for _ in range(2)]
    sampled = [backend.complete(MESSAGES, temperature=1.0, seed=s, max_tokens=8) for s in (3, 3, 4)]
    assert greedy[0] == greedy[1] and sampled[0] == sampled[1] and sampled[0].text != sampled[2].text
    # one token per character of the contents, plus 3 role markers and 2 <eos>
    assert greedy[0].usage["prompt_tokens"] == len("You are an expert.") + len("Propose [0, 1, 2].") + 5
    for response in greedy + sampled:  # one token per character: the answer's length, capped at max_tokens
        tokens = response.usage["completion_tokens"]
        assert tokens <= 8 and response.raw_finish_reason == ("length" if tokens == 8 else "stop")
        assert len(response.text) <= tokens
    with pytest.raises(LmnasError, match=r"plus max_tokens \(8200\) exceeds the model's context of 8192"):
        backend.complete(MESSAGES, temperature=0.0, seed=None, max_tokens=8200)
    with pytest.raises(LmnasError, match="not a saved model folder"):
        LLM_BACKENDS.create("transformers", model=str(tmp_path / "missing"))
