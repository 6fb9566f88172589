"""The chat-backend contract, and the retry-with-backoff wrapper every backend is used through.

A backend answers one chat request in one attempt. Failures that may pass by themselves (rate
limits, 5xx, timeouts, dropped connections, a broken body) are raised as `TransientLLMError`;
everything else (bad key, unknown model, a request the server rejects) as `LmnasError`.
`RetryingBackend` retries the transient ones with exponential backoff and gives up with an
`LmnasError` that says nothing was lost, so a rerun resumes from the journal and transcript.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lmnas.errors import LmnasError

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}

REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class Response:
    text: str
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    model: str = ""
    raw_finish_reason: str | None = None  # "stop", "length", "content_filter", … as the server said


class TransientLLMError(LmnasError):
    """A failure worth retrying; its message is already redacted."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Remove every secret (API keys) from text that may be logged or raised."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


class LLMBackend(ABC):
    name: str = ""
    model: str = ""

    @abstractmethod
    def complete(
        self, messages: list[Message], *, temperature: float, seed: int | None, max_tokens: int | None
    ) -> Response:
        """One attempt; raise TransientLLMError for failures worth retrying."""

    def advance(self, turns: int) -> None:
        """`turns` requests were answered elsewhere (a resumed transcript); only replay counts them."""

    def describe(self) -> str:
        """Where requests go, for error messages (never the key)."""
        return f"{self.name} backend, model {self.model!r}"

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model}


ErrorHook = Callable[[int, TransientLLMError, float | None], None]  # (attempt, error, next delay or None)


class RetryingBackend(LLMBackend):
    """Retry transient failures: `retries` more attempts, sleeping backoff_s * 2**k (capped)."""

    def __init__(
        self,
        inner: LLMBackend,
        *,
        retries: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
        on_error: ErrorHook | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 0 or backoff_s < 0:
            raise LmnasError(f"search.strategy.api_retries/backoff_s: need >= 0, got {retries}, {backoff_s}")
        self.inner = inner
        self.name, self.model = inner.name, inner.model
        self.retries, self.backoff_s, self.backoff_max_s = retries, backoff_s, backoff_max_s
        self.on_error = on_error
        self.sleep = sleep
        self.attempts = 0  # attempts of the last complete() call

    def complete(
        self, messages: list[Message], *, temperature: float, seed: int | None, max_tokens: int | None
    ) -> Response:
        for attempt in range(self.retries + 1):
            self.attempts = attempt + 1
            try:
                return self.inner.complete(messages, temperature=temperature, seed=seed, max_tokens=max_tokens)
            except TransientLLMError as exc:
                last = attempt == self.retries
                delay = None if last else min(self.backoff_s * 2**attempt, self.backoff_max_s)
                if self.on_error is not None:
                    self.on_error(attempt + 1, exc, delay)
                if last:
                    raise LmnasError(
                        f"{self.inner.describe()}: the request failed {self.retries + 1} times "
                        f"(api_retries={self.retries}); last error: {exc}. Nothing was lost: the journal "
                        f"and transcript.jsonl hold every finished step, rerun the same command to resume."
                    ) from None
                self.sleep(delay)  # type: ignore[arg-type]
        raise AssertionError("unreachable")

    def advance(self, turns: int) -> None:
        self.inner.advance(turns)

    def describe(self) -> str:
        return self.inner.describe()

    def settings(self) -> dict[str, Any]:
        return {**self.inner.settings(), "api_retries": self.retries, "backoff_s": self.backoff_s,
                "backoff_max_s": self.backoff_max_s}
