"""LLM backends (openai, transformers, replay), prompts, answer parsing and transcripts.

`LLM_BACKENDS.create(name, **settings)` builds a backend; each backend is one file here.
"""

from lmnas.llm.base import LLMBackend, Message, Response, RetryingBackend, TransientLLMError
from lmnas.registry import Registry, import_submodules

LLM_BACKENDS: Registry[LLMBackend] = Registry("LLM backend")

import_submodules(__name__, __path__)

__all__ = ["LLM_BACKENDS", "LLMBackend", "Message", "Response", "RetryingBackend", "TransientLLMError"]
