"""A local chat model from a folder (HF `save_pretrained` layout): for compute nodes without internet.

The tokenizer's chat template turns the messages into a prompt; greedy decoding at temperature 0,
sampling otherwise, with the seed applied inside a forked RNG so no global state leaks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.llm import LLM_BACKENDS
from lmnas.llm.base import LLMBackend, Message, Response

DEFAULT_MAX_NEW_TOKENS = 1024


@LLM_BACKENDS.register("transformers")
class TransformersBackend(LLMBackend):
    name = "transformers"

    def __init__(self, model: str, device: str = "cpu", dtype: str = "auto") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(model)
        if not (path / "config.json").is_file():
            raise LmnasError(f"search.strategy.model: {path} is not a saved model folder (no config.json)")
        self.model, self.device = str(path), device
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if not getattr(self.tokenizer, "chat_template", None):
            raise LmnasError(f"search.strategy.model: the tokenizer in {path} has no chat_template")
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.net = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device).eval()
        self._torch = torch

    def complete(
        self, messages: list[Message], *, temperature: float, seed: int | None, max_tokens: int | None
    ) -> Response:
        torch = self._torch
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        prompt_len = inputs["input_ids"].shape[1]
        limit = max_tokens or DEFAULT_MAX_NEW_TOKENS
        context = getattr(self.net.config, "max_position_embeddings", None)
        if context is not None and prompt_len + limit > context:
            raise LmnasError(
                f"{self.describe()}: the prompt ({prompt_len} tokens) plus max_tokens ({limit}) exceeds the model's "
                f"context of {context} tokens; use a model with a longer context or a smaller max_tokens"
            )
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        devices = [torch.device(self.device)] if torch.device(self.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            if seed is not None:
                torch.manual_seed(seed)
            out = self.net.generate(**inputs, max_new_tokens=limit, pad_token_id=pad, **sampling)
        new = out[0, prompt_len:]  # [generated tokens]
        eos = self.tokenizer.eos_token_id
        stopped = eos is not None and len(new) > 0 and int(new[-1]) == eos
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Response(
            text=text,
            usage={"prompt_tokens": prompt_len, "completion_tokens": len(new), "total_tokens": prompt_len + len(new)},
            model=self.model,
            raw_finish_reason="stop" if stopped or len(new) < limit else "length",
        )

    def describe(self) -> str:
        return f"transformers backend ({self.model} on {self.device})"

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "device": self.device}
