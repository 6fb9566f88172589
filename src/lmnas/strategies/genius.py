"""GENIUS (Zheng et al., 2023, "Can GPT-4 Perform Neural Architecture Search?"): an LLM proposes.

One `ask()` is one GENIUS iteration: a chat request (the task, the space, the strict answer
format and, in `fresh` mode, every result so far as `<genotype> gives an accuracy of X%`), the
answer parsed and validated; a bad answer is fed back with its reason in the same chat and asked
again, at most `max_retries` times per iteration (counted apart from the evaluation budget; 10 by
default: GENIUS needed 7 FLOPS corrections in one ImageNet session, 329M.json). The benchmark is
not named unless `name_benchmark` (GENIUS never names it).
Modes (default per space, as GENIUS ran them): `fresh` starts a new chat each iteration with the
whole history (NAS-Bench-Macro, Channel-Bench-Macro, and ImageNet, whose recorded chats restart
every iteration and continue only for FLOPs feedback); `conversation` keeps one multi-turn chat
and reports each result in it (NAS-Bench-201).

Reproducible and resumable: every request and answer goes to `out_dir/transcript.jsonl` as it
happens. The runner resumes a killed search by replaying the strategy from the start; requests
already in the transcript are answered from it (their sha256 must match, in order) and the
backend is called only after the last recorded turn. `replay=<transcript>` answers every
request from a recorded transcript: the same journal again, with no network.

Screening (`screen: {proposals_per_turn: k, by: <proxy>}`): each turn asks for k architectures;
a zero-cost proxy (lmnas.proxies) scores the valid ones and only the best is evaluated, so one
turn costs one evaluation of the budget. The scores and the pick are kept in the request's
transcript record (`outcome.screen`) and checked again on replay; their CPU time is counted
in llm_stats.json (`screened`, `screen_cpu_s`), apart from the budget.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.evaluation.base import EvalResult
from lmnas.io import write_json
from lmnas.llm import LLM_BACKENDS
from lmnas.llm.answers import Rejection, validate_answer
from lmnas.llm.base import LLMBackend, Message, Response, RetryingBackend, TransientLLMError
from lmnas.llm.prompts import MODES, PromptBuilder, Result, load_prompts
from lmnas.llm.transcript import Transcript, TranscriptCursor, request_hash
from lmnas.spaces.base import Genotype, SearchSpace
from lmnas.strategies import STRATEGIES
from lmnas.strategies.base import Strategy

log = logging.getLogger(__name__)

TRANSCRIPT = "transcript.jsonl"
STATS = "llm_stats.json"
ON_REFUSAL = ("reask", "stop")
ON_EXHAUSTED = ("random", "stop")
FALLBACK_TRIES = 10_000


@dataclass
class LLMCounters:
    """What the LLM cost, apart from the evaluation budget."""

    requests: int = 0  # chat requests answered (live + served from the transcript)
    live_requests: int = 0
    served_from_transcript: int = 0
    retries: int = 0  # re-asks after a rejected or refused answer
    rejections: dict[str, int] = field(default_factory=dict)  # rejected answers by (first) reason
    api_errors: int = 0  # transient transport failures, retried with backoff
    fallbacks: int = 0  # random genotypes used after the retry cap
    proposals: int = 0  # genotypes returned by ask()
    evaluations: int = 0  # results told
    prompt_tokens: int = 0
    completion_tokens: int = 0
    screened: int = 0  # proposals scored by the screening proxy
    screen_cpu_s: float = 0.0  # CPU seconds of the scores computed (cached ones cost nothing here)


@dataclass(frozen=True)
class GeniusSettings:
    """search.options.genius, with what an omitted setting means; checked when made (the mode
    against the space's prompts and the screen against the space are checked by the strategy)."""

    backend: str = "openai"
    model: str = "gpt-4"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    llm_seed: int | None = None  # None → the search seed
    max_tokens: int | None = None
    timeout_s: float = 120.0
    mode: str | None = None  # None → the mode GENIUS ran the space's prompts in
    name_benchmark: bool = False
    proposals_per_iteration: int = 1
    max_retries: int = 10
    on_refusal: str = "reask"
    on_exhausted: str = "random"
    api_retries: int = 5
    backoff_s: float = 1.0
    replay: str | None = None
    out_dir: str | None = None
    prompt_dir: str | None = None
    screen: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, (*MODES, None))
        _check_choice("on_refusal", self.on_refusal, ON_REFUSAL)
        _check_choice("on_exhausted", self.on_exhausted, ON_EXHAUSTED)
        if self.proposals_per_iteration < 1 or self.max_retries < 0 or self.temperature < 0:
            raise LmnasError(
                "search.strategy: need proposals_per_iteration >= 1, max_retries >= 0, temperature >= 0; got "
                f"{self.proposals_per_iteration}, {self.max_retries}, {self.temperature}"
            )

    @classmethod
    def parameters(cls) -> list[inspect.Parameter]:
        """The settings as keyword parameters with their defaults: the signature the registry reads
        (what genius and genius-hybrid accept, and what an omitted setting means in the fingerprint)."""
        return [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
                for f in fields(cls)]


class GeniusStrategy(Strategy):
    name = "genius"

    def __init__(self, space: SearchSpace, seed: int, config: GeniusSettings | None = None) -> None:
        super().__init__(space, seed)
        self.config = config = config or GeniusSettings()
        self.screen = Screen.from_dict(space, config.screen, config.proposals_per_iteration) if config.screen else None
        asked = self.screen.proposals if self.screen else config.proposals_per_iteration  # per LLM answer
        self.prompts = load_prompts(space.name, config.prompt_dir)
        self.mode = config.mode or self.prompts.mode
        if self.mode not in self.prompts.modes:
            raise LmnasError(f"search.strategy.mode: {self.mode!r} is not supported by the {space.name} prompts "
                             f"(they support {list(self.prompts.modes)})")
        self.builder = PromptBuilder(space, self.prompts, name_benchmark=config.name_benchmark, proposals=asked)
        self.backend_name = "replay" if config.replay else config.backend
        self.llm_seed = config.llm_seed if config.llm_seed is not None else seed
        self.out_dir = Path(config.out_dir) if config.out_dir is not None else None
        self.transcript = Transcript(self.out_dir / TRANSCRIPT if self.out_dir else None)
        self.cursor = TranscriptCursor(self.transcript.records, str(self.transcript.path or TRANSCRIPT))
        self.backend = RetryingBackend(_make_backend(self.backend_name, config), retries=config.api_retries,
                                       backoff_s=config.backoff_s, on_error=self._on_api_error)
        self.counters = LLMCounters()
        self.history: list[Result] = []  # every told result, in order
        self.evaluated: dict[str, float] = {}  # canonical key → accuracy
        self.unreported: list[Result] = []  # told since the last request (conversation mode)
        self.pending: dict[str, str] = {}  # key → "llm" | "screened" | "random", awaiting tell()
        self.chat: list[Message] = []  # conversation mode's running chat
        self.iteration = 0
        self.finished = False
        self._last_sent: list[Message] = []
        self._live = False
        self._served: dict[str, Any] | None = None  # the transcript record that answered the last request

    # -- ask/tell ----------------------------------------------------------------------------
    def ask(self) -> list[Genotype]:
        if self.pending:
            raise RuntimeError("ask() called before every genotype of the last batch was told")
        if self.finished:
            return []
        self.iteration += 1
        self.generation = self.iteration
        proposals = self._iterate()
        self.pending = {self.space.key(g): source for g, source in proposals}
        self.counters.proposals += len(proposals)
        self._write_stats()
        return [g for g, _ in proposals]

    def tell(self, genotype: Genotype, result: EvalResult) -> None:
        key = self.space.key(genotype)
        source = self.pending.pop(key, None)
        self.counters.evaluations += 1
        if key in self.evaluated:  # told again (a hybrid's duplicate): the history has it
            return
        entry = Result(key, result.accuracy, self._mflops(genotype, result), random=source == "random",
                       screened=source == "screened")
        self.history.append(entry)
        self.evaluated[key] = result.accuracy
        self.unreported.append(entry)

    # -- one GENIUS iteration ------------------------------------------------------------------
    def _iterate(self) -> list[tuple[Genotype, str]]:
        messages = self._open_chat()
        wanted = self.builder.proposals
        for attempt in range(self.config.max_retries + 1):
            response, record = self._request(messages)
            verdict = validate_answer(response.text, self.prompts.answer, self.space, self.evaluated, wanted=wanted)
            accepted = verdict.accepted
            outcome = ({"status": "accepted", "keys": [k for _, k in accepted]} if accepted else
                       {"status": "refused" if verdict.refused else "rejected",
                        "rejections": [r.as_dict() for r in verdict.rejections]})
            if accepted and self.screen is not None:
                accepted = self._screen(accepted, outcome)
            if record is not None:
                record.update(iteration=self.iteration, attempt=attempt, outcome=outcome)
                self.transcript.append(record)
            messages = messages + [{"role": "assistant", "content": response.text}]
            if accepted:
                self._keep_chat(messages)
                source = "screened" if self.screen is not None else "llm"
                return [(g, source) for g, _ in accepted]
            self._count_rejection(verdict.rejections[0])
            if verdict.refused and self.config.on_refusal == "stop":
                log.info("iteration %d: the model declined to propose; on_refusal=stop ends the search", self.iteration)
                self.finished = True
                return []
            if attempt == self.config.max_retries:
                break
            self.counters.retries += 1
            feedback = self.builder.refusal() if verdict.refused else self.builder.rejected(verdict.rejections)
            messages = messages + [feedback]
        self._keep_chat(messages)
        return self._exhausted()

    def _screen(self, accepted: list[tuple[Genotype, str]], outcome: dict[str, Any]) -> list[tuple[Genotype, str]]:
        """Keep the proposal the proxy scores best (ties: the earlier one); note the scores in `outcome`."""
        scores, cpu_s = self.screen.scores([k for _, k in accepted])
        self.counters.screened += len(accepted)
        self.counters.screen_cpu_s += cpu_s
        best = max(range(len(accepted)), key=lambda i: (scores[i], -i))
        picked = accepted[best][1]
        outcome["screen"] = {"by": self.screen.spec.proxy, "scores": [_finite(v) for v in scores], "picked": picked}
        recorded = (self._served or {}).get("outcome", {}).get("screen")
        if recorded is not None and recorded.get("picked") != picked:
            raise LmnasError(f"{self.transcript.path or TRANSCRIPT}: iteration {self.iteration} recorded the screen's "
                             f"pick {recorded.get('picked')!r}, the replayed search picked {picked!r}: the proxy, its "
                             "settings or its code changed since it was recorded")
        log.info("iteration %d: screened %d proposals by %s, picked %s", self.iteration, len(accepted),
                 self.screen.spec.proxy, picked)
        return [accepted[best]]

    def _open_chat(self) -> list[Message]:
        latest, self.unreported = self.unreported, []
        if self.mode == "fresh" or not self.chat:
            return self.builder.opening(self.history)
        return self.chat + [self.builder.results(latest, first_number=len(self.history) - len(latest) + 1)]

    def _keep_chat(self, messages: list[Message]) -> None:
        if self.mode == "conversation":
            self.chat = messages

    def _exhausted(self) -> list[tuple[Genotype, str]]:
        log.info("iteration %d: no valid answer after %d retries (on_exhausted=%s)",
                 self.iteration, self.config.max_retries, self.config.on_exhausted)
        if self.config.on_exhausted == "stop":
            self.finished = True
            return []
        genotype = self._random_genotype()
        if genotype is None:
            self.finished = True
            return []
        key = self.space.key(genotype)
        if self.cursor.take_fallback(key) is None:
            self._go_live()
            self.transcript.append({"event": "fallback", "iteration": self.iteration, "key": key,
                                    "reason": f"no valid answer after {self.config.max_retries} retries",
                                    "at": time.time()})
        self.counters.fallbacks += 1
        return [(genotype, "random")]

    def _random_genotype(self) -> Genotype | None:
        """A random genotype not evaluated yet and within the space's constraints."""
        for _ in range(FALLBACK_TRIES):
            genotype = self.space.sample(self.rng)
            if self.space.key(genotype) not in self.evaluated and not self.space.check_constraints(genotype):
                return genotype
        return None

    # -- requests: from the transcript while it lasts, then live --------------------------------
    def _request(self, messages: list[Message]) -> tuple[Response, dict[str, Any] | None]:
        """The answer, and the transcript record to complete (None when served from the transcript)."""
        sha = request_hash(messages)
        last = self._last_sent
        chat_start = not last or messages[: len(last)] != last
        new = messages if chat_start else messages[len(last):]
        self._last_sent = messages
        self.counters.requests += 1
        recorded = self._served = self.cursor.take_request(sha)
        if recorded is not None:
            self.counters.served_from_transcript += 1
            response = Response(recorded["response"], recorded.get("usage") or {}, recorded.get("model", ""),
                                recorded.get("finish_reason"))
            self._count_usage(response)
            return response, None
        self._go_live()
        config = self.config
        started, t0 = time.time(), time.perf_counter()
        response = self.backend.complete(messages, temperature=config.temperature, seed=self.llm_seed,
                                         max_tokens=config.max_tokens)
        latency = time.perf_counter() - t0
        self.counters.live_requests += 1
        self._count_usage(response)
        record = {
            "event": "request", "turn": self.counters.requests, "backend": self.backend_name,
            "model": response.model or config.model, "requested_model": config.model,
            "temperature": config.temperature, "seed": self.llm_seed, "max_tokens": config.max_tokens,
            "started_at": started, "finished_at": started + latency, "latency_s": latency,
            "api_attempts": self.backend.attempts, "usage": response.usage,
            "finish_reason": response.raw_finish_reason, "request_sha256": sha,
            "chat_start": chat_start, "new_messages": new, "response": response.text,
        }
        return response, record

    def _go_live(self) -> None:
        if self._live:
            return
        self._live = True
        self.backend.advance(self.counters.served_from_transcript)
        self.transcript.append({"event": "session", "at": time.time(), "resumed_after_requests":
                                self.counters.served_from_transcript, "backend": self.backend.settings(),
                                "settings": self.settings()})

    def _on_api_error(self, attempt: int, error: TransientLLMError, retry_in_s: float | None) -> None:
        self.counters.api_errors += 1
        log.warning("LLM request failed (attempt %d): %s%s", attempt, error,
                    f"; retrying in {retry_in_s:.3g} s" if retry_in_s is not None else "; giving up")
        self.transcript.append({"event": "api_error", "iteration": self.iteration, "attempt": attempt,
                                "error": str(error), "retry_in_s": retry_in_s, "at": time.time()})

    # -- bookkeeping ---------------------------------------------------------------------------
    def _count_rejection(self, rejection: Rejection) -> None:
        self.counters.rejections[rejection.reason] = self.counters.rejections.get(rejection.reason, 0) + 1
        log.info("iteration %d: answer rejected (%s): %s", self.iteration, rejection.reason, rejection.detail[:200])

    def _count_usage(self, response: Response) -> None:
        self.counters.prompt_tokens += int(response.usage.get("prompt_tokens", 0) or 0)
        self.counters.completion_tokens += int(response.usage.get("completion_tokens", 0) or 0)

    def _mflops(self, genotype: Genotype, result: EvalResult) -> float | None:
        flops = self.space.flops(genotype)
        if flops is None:
            flops = result.flops
        return flops / 1e6 if flops is not None else None

    def stats(self) -> dict[str, Any]:
        return asdict(self.counters)

    def _write_stats(self) -> None:
        if self.out_dir is not None:
            write_json(self.out_dir / STATS, self.stats())

    def settings(self) -> dict[str, Any]:
        """The settings as resolved (backend, LLM seed, mode), the prompts' sha256 and the screen's
        settings; saved with every result (the run folder is no setting, so out_dir is left out)."""
        resolved = {"backend": self.backend_name, "llm_seed": self.llm_seed, "mode": self.mode}
        options = {k: resolved.get(k, v) for k, v in asdict(self.config).items() if k not in ("out_dir", "screen")}
        return {"name": self.name, **options, "prompts_sha256": self.prompts.sha256,
                "screen": self.screen.settings() if self.screen else None}


def _create_genius(space: SearchSpace, seed: int, **settings: Any) -> GeniusStrategy:
    """search.options.genius → the strategy (the registry has refused keys that are no GeniusSettings field)."""
    return GeniusStrategy(space, seed, GeniusSettings(**settings))


_create_genius.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [*list(inspect.signature(_create_genius).parameters.values())[:2], *GeniusSettings.parameters()])
STRATEGIES.register("genius")(_create_genius)


class Screen:
    """The proxy that picks one of each turn's proposals (scores through the proxy cache)."""

    def __init__(self, space: SearchSpace, proposals: int, spec: Any, cache_dir: str | None) -> None:
        from lmnas.proxies.cache import ProxyTable

        self.proposals = proposals
        self.spec = spec
        self.cache_dir = cache_dir
        self.table = ProxyTable(space, spec, cache_dir)

    @classmethod
    def from_dict(cls, space: SearchSpace, section: dict[str, Any], proposals_per_iteration: int) -> Screen:
        from lmnas.proxies.cache import ProxySpec

        known = {"proposals_per_turn", "by", "batch_size", "seed", "space_overrides", "cache_dir"}
        unknown = sorted(set(section) - known)
        if unknown or "proposals_per_turn" not in section or "by" not in section:
            raise LmnasError(f"search.strategy.screen: needs proposals_per_turn and by (a proxy); accepted settings "
                             f"{sorted(known)}{f', unknown {unknown}' if unknown else ''}")
        k = section["proposals_per_turn"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise LmnasError(f"search.strategy.screen.proposals_per_turn: need a whole number >= 2, got {k!r}")
        if proposals_per_iteration != 1:
            raise LmnasError("search.strategy: screen evaluates one proposal per turn; leave proposals_per_iteration "
                             f"at 1 (got {proposals_per_iteration})")
        spec = ProxySpec(section["by"], batch_size=section.get("batch_size", 32), seed=section.get("seed", 0),
                         space_overrides=dict(section.get("space_overrides", {})))
        return cls(space, k, spec, section.get("cache_dir", "data/cache/proxies"))

    def scores(self, keys: list[str]) -> tuple[list[float], float]:
        """Scores of `keys` in order, and the CPU seconds spent computing the uncached ones."""
        before = self.table.computed_cpu_s
        scores = self.table.scores(keys)
        return [scores[k] for k in keys], self.table.computed_cpu_s - before

    def settings(self) -> dict[str, Any]:
        return {"proposals_per_turn": self.proposals, "by": self.spec.proxy, "batch_size": self.spec.batch_size,
                "seed": self.spec.seed, "space_overrides": self.spec.space_overrides}


def _finite(value: float) -> float | None:
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _check_choice(name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise LmnasError(f"search.strategy.{name}: {value!r}, expected one of {list(allowed)}")


def _make_backend(name: str, config: GeniusSettings) -> LLMBackend:
    model, base_url, replay = config.model, config.base_url, config.replay
    if name == "replay":
        if not replay:
            raise LmnasError("search.strategy.replay: the replay backend needs the path of a transcript.jsonl")
        return LLM_BACKENDS.create("replay", path=replay)
    if name == "openai":
        return LLM_BACKENDS.create("openai", model=model, base_url=base_url, api_key_env=config.api_key_env,
                                   timeout_s=config.timeout_s)
    if base_url is not None:
        raise LmnasError(f"search.strategy.base_url: only the openai backend takes a base_url, not {name!r}")
    return LLM_BACKENDS.create(name, model=model)
