"""A scripted OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, stdlib only.

`ScriptedServer(script)` serves `POST /v1/chat/completions` from a thread; `script(body, n)`
gets the decoded request and its 0-based index and returns a `Reply`: assistant text in the
OpenAI schema (with `usage`), an HTTP error status, a reply slower than the client's timeout,
a dropped connection, or an empty body. Every request is kept in `server.requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    kind: str = "text"  # text | status | slow | drop | empty_body
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    finish_reason: str = "stop"


def text(content: str) -> Reply:
    return Reply("text", content)


def messages_sha256(messages: list[dict[str, str]]) -> str:
    """Same canonical form as lmnas.llm.transcript.request_hash (checked by a test)."""
    canonical = json.dumps([{"role": m["role"], "content": m["content"]} for m in messages],
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class ScriptedServer:
    def __init__(self, script: Callable[[dict[str, Any], int], Reply]) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.authorization: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server._lock:
                    n = len(server.requests)
                    server.requests.append(body)
                    server.authorization.append(self.headers.get("Authorization", ""))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                reply = server.script(body, n)
                if reply.kind == "drop":  # close the socket without a response
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.kind == "slow":
                    time.sleep(reply.delay_s)
                if reply.kind == "empty_body":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if reply.kind == "status":
                    return self._json(reply.status, {"error": {"message": reply.text or f"scripted {reply.status}",
                                                               "type": "scripted", "code": reply.status}})
                prompt_tokens = sum(len(m["content"].split()) for m in body.get("messages", []))
                completion_tokens = len(reply.text.split())
                self._json(200, {
                    "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "scripted"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                                 "finish_reason": reply.finish_reason, "logprobs": None}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens},
                })

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def request_hashes(self) -> list[str]:
        return [messages_sha256(r["messages"]) for r in self.requests]


# -- answer policies ---------------------------------------------------------------------------

HISTORY_LINE = re.compile(r"^\s*(\[[^\]]*\])\s+gives an accuracy of\s+([\d.]+)%", re.M)
LIST = re.compile(r"\[([0-9,\s]+)\]")


def evaluated(body: dict[str, Any]) -> dict[tuple[int, ...], float]:
    """The `[..] gives an accuracy of X%` lines of the chat's user messages."""
    users = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
    return {tuple(json.loads(arch)): float(acc) for arch, acc in HISTORY_LINE.findall(users)}


def seen_in_chat(body: dict[str, Any]) -> set[tuple[int, ...]]:
    """Every list the assistant already proposed in this chat (accepted or rejected)."""
    seen = set()
    for m in body["messages"]:
        if m["role"] == "assistant":
            seen.update(tuple(int(v) for v in x.split(",")) for x in LIST.findall(m["content"]) if x.strip())
    return seen


def hill_climb(length: int, choices: int) -> Callable[[dict[str, Any], int], Reply]:
    """A deterministic 'LLM': change one position of the best architecture whose neighbours are
    not all tried yet (the best so far first)."""

    def script(body: dict[str, Any], n: int) -> Reply:
        history = evaluated(body)
        avoid = set(history) | seen_in_chat(body)
        ranked = sorted(history, key=lambda a: (-history[a], a)) or [tuple([1] * length)]
        for best in ranked:
            for i in range(length):
                for delta in range(1, choices):
                    cand = list(best)
                    cand[i] = (cand[i] + delta) % choices
                    if tuple(cand) not in avoid:
                        return text(json.dumps(cand))
        return text("I cannot improve on these results.")

    return script


ADVERSARIAL_KINDS = [
    "good", "prose", "wrong_length", "out_of_range", "duplicate", "refusal", "fenced", "empty",
    "status_429", "garbage", "good", "code_injection", "status_500", "floats", "negative", "slow",
    "nested_json", "drop", "too_many", "empty_body", "unicode", "good", "huge",
]


def adversarial(length: int, choices: int, *, slow_s: float) -> tuple[Callable[[dict[str, Any], int], Reply], list[str]]:
    """Cycle through bad answers of every kind, with some good ones; returns (script, kinds served)."""
    served: list[str] = []
    good = hill_climb(length, choices)

    def script(body: dict[str, Any], n: int) -> Reply:
        kind = ADVERSARIAL_KINDS[n % len(ADVERSARIAL_KINDS)]
        served.append(kind)
        history = evaluated(body)
        some = list(next(iter(history))) if history else [0] * length
        proposal = good(body, n)
        if kind == "good":
            return proposal
        if kind == "prose":
            return text(f"Looking at the results, I would go with {proposal.text} because deeper is better.")
        if kind == "fenced":
            return text(f"```json\n{{\"architecture\": {proposal.text}}}\n```")
        if kind == "wrong_length":
            return text(json.dumps([1] * (length - 1)))
        if kind == "out_of_range":
            return text(json.dumps([choices + 3] * length))
        if kind == "duplicate":
            return text(json.dumps(some))
        if kind == "refusal":
            return text("I'm sorry, but I cannot improve on these results any further.")
        if kind == "empty":
            return text("")
        if kind == "garbage":
            return text("}{][ \x00 not an answer ][")
        if kind == "code_injection":
            return text("__import__('os').system('touch /tmp/lmnas_pwned') or [1] * %d" % length)
        if kind == "floats":
            return text(json.dumps([1.5] * length))
        if kind == "negative":
            return text(json.dumps([-1] * length))
        if kind == "nested_json":
            return text(json.dumps({"a": {"b": [[1, 2], [3]]}}))
        if kind == "too_many":
            return text(json.dumps([1] * (length * 3)))
        if kind == "unicode":
            return text("Архитектура: [１, ２] 🙂")
        if kind == "huge":
            return text("[" + ", ".join(["1"] * 20000) + "]")
        if kind == "slow":
            return Reply("slow", proposal.text, delay_s=slow_s)
        if kind == "drop":
            return Reply("drop")
        if kind == "empty_body":
            return Reply("empty_body")
        status = int(kind.split("_")[1])
        return Reply("status", status=status)

    return script, served


def scripted(replies: list[Reply]) -> Callable[[dict[str, Any], int], Reply]:
    """Answer the n-th request with replies[n]; past the end, the last reply repeats."""
    return lambda body, n: replies[min(n, len(replies) - 1)]


def iter_records(path: Any) -> Iterator[dict[str, Any]]:
    with open(path) as f:
        for line in f:
            if line.strip():
                yield json.loads(line)
