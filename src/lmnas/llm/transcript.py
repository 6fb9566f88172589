"""`transcript.jsonl`: every LLM request/response of a search, appended as it happens.

One JSON object per line, flushed and fsync'ed, so a killed run keeps every finished turn:
- `{"event": "request", ...}`: one chat request and its answer: model, temperature, seed,
  max_tokens, timestamps, latency, usage, `request_sha256`, the messages new since the last
  request of the same chat (`new_messages`; concatenating them rebuilds every request), the
  response text and the validation outcome (accepted keys, or each rejection with its reason).
- `{"event": "fallback", ...}`: a random genotype used after the retry cap (recorded as such).
- `{"event": "api_error", ...}`, `{"event": "session", ...}`: transport failures and (re)starts;
  informational, never replayed.

`TranscriptCursor` walks the request/fallback events of an existing transcript in order: a
resumed search is served from it (each request must hash the same as the one recorded) and
goes live only after the last recorded turn.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.jsonl import append_jsonl, read_jsonl
from lmnas.llm.base import Message

REPLAYED_EVENTS = ("request", "fallback")


def request_hash(messages: list[Message]) -> str:
    """sha256 of the request messages (roles and contents, canonical JSON)."""
    canonical = json.dumps([{"role": m["role"], "content": m["content"]} for m in messages],
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_transcript(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records; a torn last line (a kill mid-write) is dropped, any other bad line is an error."""
    return read_jsonl(path, "transcript")


class Transcript:
    """Append-only writer; `path=None` keeps records in memory only (no resume possible)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self.records: list[dict[str, Any]] = read_transcript(self.path) if self.path else []

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.path is not None:
            append_jsonl(self.path, record)


class TranscriptCursor:
    """Serve the recorded turns of `records` in order; `None` once they are used up (go live)."""

    def __init__(self, records: list[dict[str, Any]], source: str) -> None:
        self.events = [r for r in records if r.get("event") in REPLAYED_EVENTS]
        self.source = source
        self.position = 0

    @property
    def exhausted(self) -> bool:
        return self.position >= len(self.events)

    def take_request(self, sha256: str) -> dict[str, Any] | None:
        record = self._next("request", f"a request with sha256 {sha256[:12]}…")
        if record is not None and record.get("request_sha256") != sha256:
            raise LmnasError(
                f"{self.source}: turn {self.position} was recorded for a different request (sha256 "
                f"{str(record.get('request_sha256'))[:12]}…, now {sha256[:12]}…): the prompts, the "
                f"settings or the results changed since it was recorded. Use a fresh output folder, "
                f"or restore the settings it was recorded with."
            )
        return self._advance(record)

    def take_fallback(self, key: str) -> dict[str, Any] | None:
        record = self._next("fallback", f"a random fallback {key!r}")
        if record is not None and record.get("key") != key:
            raise LmnasError(
                f"{self.source}: turn {self.position} recorded the random fallback {record.get('key')!r}, "
                f"the replayed search drew {key!r}: the seed or the settings changed since it was recorded"
            )
        return self._advance(record)

    def _next(self, event: str, wanted: str) -> dict[str, Any] | None:
        if self.exhausted:
            return None
        record = self.events[self.position]
        if record["event"] != event:
            raise LmnasError(
                f"{self.source}: turn {self.position} recorded a {record['event']!r} event where the "
                f"replayed search made {wanted}: the search path changed since it was recorded"
            )
        return record

    def _advance(self, record: dict[str, Any] | None) -> dict[str, Any] | None:
        if record is not None:
            self.position += 1
        return record
