"""Any OpenAI-compatible chat server (OpenAI, Azure, vLLM, Ollama, llama.cpp) via the `openai` client.

The key comes from the environment variable named by `api_key_env`, never from config; it is
redacted from every error message. The client's own retries are off (`max_retries=0`):
`RetryingBackend` owns retries, so each attempt can be recorded in the transcript.
"""

from __future__ import annotations

import json
import os
from typing import Any

from lmnas.errors import LmnasError
from lmnas.llm import LLM_BACKENDS
from lmnas.llm.base import LLMBackend, Message, Response, TransientLLMError, redact

TRANSIENT_STATUS = {408, 409, 425, 429}  # and every 5xx


@LLM_BACKENDS.register("openai")
class OpenAIBackend(LLMBackend):
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
    ) -> None:
        import openai  # imported here: `import lmnas` stays fast where no LLM is used

        key = os.environ.get(api_key_env)
        if not key:
            raise LmnasError(
                f"search.strategy.api_key_env: environment variable {api_key_env} is not set; the openai "
                f"backend reads the API key from the environment only (use any non-empty value for local "
                f"servers that need none, e.g. {api_key_env}=EMPTY)"
            )
        self.model, self.base_url, self.api_key_env, self.timeout_s = model, base_url, api_key_env, timeout_s
        self._key = key
        self._openai = openai
        self.client = openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout_s, max_retries=0)

    def complete(
        self, messages: list[Message], *, temperature: float, seed: int | None, max_tokens: int | None
    ) -> Response:
        openai = self._openai
        optional: dict[str, Any] = {}
        if seed is not None:
            optional["seed"] = seed
        if max_tokens is not None:
            optional["max_tokens"] = max_tokens
        try:
            out = self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=temperature, n=1, **optional  # type: ignore[arg-type]
            )
        except openai.APIStatusError as exc:
            message = self._redact(f"HTTP {exc.status_code}: {exc.message}")
            if exc.status_code in TRANSIENT_STATUS or exc.status_code >= 500:
                raise TransientLLMError(message) from None
            raise LmnasError(
                f"{self.describe()}: the server refused the request ({message}); check the model name, "
                f"base_url and the key in ${self.api_key_env}"
            ) from None
        except openai.APIConnectionError as exc:  # includes APITimeoutError; dropped connections
            kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "connection failed"
            raise TransientLLMError(self._redact(f"{kind} ({type(exc).__name__}: {exc}; timeout_s={self.timeout_s})")) from None
        except (json.JSONDecodeError, openai.APIResponseValidationError) as exc:  # a broken body from a proxy
            raise TransientLLMError(self._redact(f"unreadable response body ({type(exc).__name__}: {exc})")) from None
        if not out.choices:
            raise TransientLLMError("the response has no choices")
        choice = out.choices[0]
        content = choice.message.content or getattr(choice.message, "refusal", None) or ""
        usage = out.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"}) if out.usage else {}
        return Response(text=content, usage=usage, model=out.model or self.model, raw_finish_reason=choice.finish_reason)

    def _redact(self, text: str) -> str:
        return redact(text, [self._key])

    def describe(self) -> str:
        return f"openai backend at {self.base_url or 'the OpenAI API'} (model {self.model!r})"

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "base_url": self.base_url,
                "api_key_env": self.api_key_env, "timeout_s": self.timeout_s}
