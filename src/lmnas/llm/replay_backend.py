"""Answers from a recorded transcript.jsonl: no network; a search replayed with it is identical.

Requests must come in the recorded order with the recorded messages (sha256); anything else is
a clear error, never a silent mismatch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.llm import LLM_BACKENDS
from lmnas.llm.base import LLMBackend, Message, Response
from lmnas.llm.transcript import read_transcript, request_hash


@LLM_BACKENDS.register("replay")
class ReplayBackend(LLMBackend):
    name = "replay"

    def __init__(self, path: str, model: str = "") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise LmnasError(f"search.strategy.replay: transcript {self.path} does not exist")
        self.turns = [r for r in read_transcript(self.path) if r.get("event") == "request"]
        if not self.turns:
            raise LmnasError(f"search.strategy.replay: {self.path} holds no recorded requests")
        self.model = model or str(self.turns[0].get("model", ""))
        self.position = 0

    def complete(
        self, messages: list[Message], *, temperature: float, seed: int | None, max_tokens: int | None
    ) -> Response:
        if self.position >= len(self.turns):
            raise LmnasError(
                f"{self.path}: the transcript ends after {len(self.turns)} requests but the replayed search "
                f"asked for more: it was recorded with a smaller budget or different settings"
            )
        record = self.turns[self.position]
        sha = request_hash(messages)
        if record.get("request_sha256") != sha:
            raise LmnasError(
                f"{self.path}: request {self.position + 1} does not match the recording (sha256 {sha[:12]}…, "
                f"recorded {str(record.get('request_sha256'))[:12]}…): the prompts, settings or results differ "
                f"from the recorded run"
            )
        self.position += 1
        return Response(text=record["response"], usage=record.get("usage") or {},
                        model=record.get("model", self.model), raw_finish_reason=record.get("finish_reason"))

    def advance(self, turns: int) -> None:
        self.position += turns

    def describe(self) -> str:
        return f"replay backend from {self.path}"

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "replay": str(self.path)}
