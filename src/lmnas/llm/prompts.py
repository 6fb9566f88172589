"""GENIUS-style prompts from template files (`lmnas/prompts/<space>/*.txt`, `settings.json`).

A space's folder holds its expert `system.txt`, `task.txt` (the task and the space: layers,
choices, skeleton), `format.txt` (the strict answer format), and may override any template of
`prompts/default/`: `history.txt` (the `<genotype> gives an accuracy of X%` block and "suggest a
better one"), `history_line.txt`, `results.txt` (conversation mode's per-round message),
`rejected.txt` / `constraint.txt` (feedback on a bad answer), `refusal.txt`, `multi.txt`, `screened.txt`
(the note on a result a zero-cost proxy picked among several proposals), and the
opening's reasoning block: `first.txt` (the first chat, e.g. "think step by step: …") and
`principles.txt` (every later fresh chat: GENIUS ImageNet's "design principles" from session 2 on);
both are empty by default.
Templates are `string.Template` text (`$name`): braces in code skeletons need no escaping.
Variables: the space's settings, `space_description` (`space.describe()`), `benchmark_note`,
`answer_noun`, `proposals`, and per line `number`, `architecture`, `accuracy`, `mflops`, `note`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from lmnas.errors import LmnasError
from lmnas.llm.answers import AnswerFormat, Rejection
from lmnas.llm.base import Message
from lmnas.spaces.base import SearchSpace

TEMPLATES = ("system", "task", "first", "principles", "format", "history", "history_line", "results", "rejected",
             "constraint", "refusal", "multi", "screened")
DEFAULT_FOLDER = "default"
MODES = ("fresh", "conversation")
# Contamination guard: benchmark names a model may have memorised results for.
BENCHMARK_NAMES = re.compile(
    r"\b(?:NAS[- ]?Bench[- ]?(?:Macro|101|201|301|1Shot1|ASR|NLP)?|NATS[- ]?Bench|TransNAS[- ]?Bench(?:[- ]?101)?|"
    r"Channel[- ]?Bench[- ]?Macro|GENIUS)\b", re.I)


def prompts_root() -> Path:
    return Path(str(resources.files("lmnas") / "prompts"))


@dataclass(frozen=True)
class PromptSet:
    space_name: str
    templates: dict[str, Template]
    answer: AnswerFormat
    mode: str  # the space's GENIUS default
    answer_noun: str  # "operation ID list", "channel list", …
    benchmark: str  # the benchmark's public name (only said when name_benchmark is set)
    sha256: str  # of every template file used: recorded with the settings
    accuracy_decimals: int = 2  # how results are written (GENIUS: 2, NAS-Bench-201 3)
    modes: tuple[str, ...] = MODES  # modes the templates support (NAS-Bench-201: one conversation)


def load_prompts(space_name: str, root: str | Path | None = None) -> PromptSet:
    """Templates of `space_name`, falling back to `default/` for the shared ones."""
    base = Path(root) if root is not None else prompts_root()
    folder = base / space_name
    if not (folder / "settings.json").is_file():
        known = sorted(p.name for p in base.iterdir() if (p / "settings.json").is_file()) if base.is_dir() else []
        raise LmnasError(f"no GENIUS prompts for space {space_name!r} in {base} (need {folder}/settings.json); "
                         f"spaces with prompts: {known}")
    digest = hashlib.sha256()
    templates = {}
    for name in TEMPLATES:
        path = folder / f"{name}.txt"
        if not path.is_file():
            path = base / DEFAULT_FOLDER / f"{name}.txt"
        if not path.is_file():
            raise LmnasError(f"prompt template {name}.txt is missing from {folder} and {base / DEFAULT_FOLDER}")
        text = path.read_text()
        digest.update(f"{name}\0{text}\0".encode())
        templates[name] = Template(text)
    raw = (folder / "settings.json").read_text()
    digest.update(raw.encode())
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LmnasError(f"{folder / 'settings.json'}: not JSON ({exc})") from None
    mode = data.get("mode", "fresh")
    if mode not in MODES:
        raise LmnasError(f"{folder / 'settings.json'}: mode {mode!r}, expected one of {list(MODES)}")
    return PromptSet(
        space_name=space_name,
        templates=templates,
        answer=AnswerFormat.from_dict(data["answer"] if "answer" in data else {}, str(folder / "settings.json")),
        mode=mode,
        answer_noun=data.get("answer_noun", "architecture"),
        benchmark=data.get("benchmark", ""),
        sha256=digest.hexdigest(),
        accuracy_decimals=int(data.get("accuracy_decimals", 2)),
        modes=tuple(data.get("modes", MODES)),
    )


@dataclass(frozen=True)
class Result:
    """One evaluated architecture as the prompts show it."""

    key: str
    accuracy: float
    mflops: float | None = None
    random: bool = False  # a fallback sample, not an LLM proposal
    screened: bool = False  # picked by a zero-cost proxy among the turn's proposals


class PromptBuilder:
    """Build every message of a GENIUS chat for one space.

    The benchmark is not named unless `name_benchmark` (GENIUS never names it, to limit recall
    of memorised results): its name is then scrubbed from every rendered template as well.
    """

    def __init__(self, space: SearchSpace, prompts: PromptSet, *, name_benchmark: bool = False,
                 proposals: int = 1) -> None:
        self.space, self.prompts = space, prompts
        self.hide_benchmark_names = not name_benchmark
        self.proposals = proposals
        settings = {k: _text(v) for k, v in space.settings().items()}
        note = "" if self.hide_benchmark_names or not prompts.benchmark else (
            f" (This search space is the public benchmark {prompts.benchmark}.)")
        self.variables = {**settings, "space_description": space.describe(), "benchmark_note": note,
                          "answer_noun": prompts.answer_noun, "proposals": str(proposals)}

    def render(self, name: str, **extra: str) -> str:
        try:
            text = self.prompts.templates[name].substitute({**self.variables, **extra})
        except (KeyError, ValueError) as exc:
            raise LmnasError(f"prompt template {self.prompts.space_name}/{name}.txt: unknown or bad placeholder {exc}") from None
        return BENCHMARK_NAMES.sub("the search space", text) if self.hide_benchmark_names else text

    def system(self) -> Message:
        return {"role": "system", "content": self.render("system").strip()}

    def answer_format(self) -> str:
        text = self.render("format").strip()
        return text + ("\n" + self.render("multi").strip() if self.proposals > 1 else "")

    def opening(self, history: list[Result]) -> list[Message]:
        """A new chat: the task, how to reason (first chat) or the design principles (later
        chats), the history so far (fresh mode), the answer format."""
        parts = [self.render("task").strip()]
        reasoning = self.render("principles" if history else "first").strip()
        if reasoning:
            parts.append(reasoning)
        if history:
            parts.append(self.render("history", history=self.lines(history)).strip())
        parts.append(self.answer_format())
        return [self.system(), {"role": "user", "content": "\n\n".join(parts)}]

    def results(self, latest: list[Result], first_number: int) -> Message:
        """Conversation mode: the results of the last round, and ask for a better one."""
        text = self.render("results", results=self.lines(latest, first_number)).strip()
        return {"role": "user", "content": text + "\n\n" + self.answer_format()}

    def rejected(self, rejections: list[Rejection]) -> Message:
        if rejections and all(r.reason == "constraint" for r in rejections):
            text = self.render("constraint", detail=rejections[0].detail)
        else:
            reasons = "\n".join(f"- {r.detail}" for r in rejections)
            text = self.render("rejected", reasons=reasons)
        return {"role": "user", "content": text.strip() + "\n\n" + self.answer_format()}

    def refusal(self) -> Message:
        return {"role": "user", "content": self.render("refusal").strip() + "\n\n" + self.answer_format()}

    def lines(self, results: list[Result], first_number: int = 1) -> str:
        fmt = self.prompts.answer
        return "\n".join(
            self.render(
                "history_line",
                number=str(first_number + i),
                architecture=fmt.display(fmt.values_of(r.key)),
                accuracy=f"{r.accuracy:.{self.prompts.accuracy_decimals}f}",
                mflops="" if r.mflops is None else f"{r.mflops:.0f}",
                note=self._note(r),
            ).rstrip("\n")
            for i, r in enumerate(results)
        )


    def _note(self, result: Result) -> str:
        shown = self.prompts.answer.display(self.prompts.answer.values_of(result.key))
        if result.random:
            return f" (a random architecture, {shown}, tried because no valid answer came)"
        if result.screened:
            return " " + self.render("screened", architecture=shown).strip()
        return ""


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)
