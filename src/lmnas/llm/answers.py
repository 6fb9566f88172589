"""Read genotypes out of LLM answers and validate them; nothing in an answer is ever executed.

An `AnswerFormat` (from the space's prompt folder, `settings.json`) says what the model writes:
how many values, which values each position allows (operation ids, channel numbers, op names),
how a position's value becomes a token of the space's key, and how tokens join into the key.
Validation ends in `space.parse(key)`, so the space stays the one authority on its genotypes.

Extraction, in priority order: a JSON answer (list, object holding lists, fenced code),
GENIUS ImageNet's stage-wise prose (`Stage 1 (Layer 2 to Layer 7): [1, 0, 0, 0, 0, 0]`, one list
per stage, concatenated), any bracketed list, `op0: nor_conv_3x3`-style assignments, and the
space key itself (`|nor_conv_3x3~0|+|…`, `22212220`). JSON goes through `json.loads`, lists
through a regex and `int()`. With `prefer: "last"` (free-text reasoning answers, GENIUS on
NAS-Bench-201) every form is tried in the order of where it ends in the text, last first: the
design a reasoning answer settles on comes after the designs it discusses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmnas.errors import LmnasError
from lmnas.spaces.base import Genotype, SearchSpace

Value = int | str
MAX_ANSWER_CHARS = 100_000  # longer answers are read only this far (regexes stay linear anyway)

# Reasons a proposal is rejected; `empty` and `refusal` go to the on_refusal policy.
REASONS = ("empty", "refusal", "unparseable", "wrong_length", "out_of_range", "invalid", "duplicate", "constraint")
REFUSAL = re.compile(
    r"\b(sorry|apolog\w*|can ?not|can't|unable|won't|will not|refuse|not possible|impossible|"
    r"no (?:further|better)|as an ai)\b", re.I)
FENCED = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
BRACKETED = re.compile(r"\[([^\[\]]*)\]")
STAGE_LIST = re.compile(r"stage\s*(\d+)[^\[\n]{0,80}?[:=]\s*\[([^\[\]]*)\]", re.I)
INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class AnswerFormat:
    choices: tuple[tuple[Value, ...], ...]  # allowed answer values per position (len = max length)
    tokens: tuple[tuple[str, ...], ...]  # key token of each choice, per position
    min_length: int
    max_length: int
    key_join: str | None = ""  # tokens joined with this string …
    key_template: str | None = None  # … or placed into a template with one `{}` per position
    names: Mapping[str, Value] = field(default_factory=dict)  # lower-case alias → answer value
    stages: tuple[tuple[str, int], ...] = ()  # (label, length): GENIUS ImageNet's per-stage lists
    position_label: str = ""  # prose like `layer2: 1` / `op0 = nor_conv_3x3`
    position_offset: int = 0  # the label number of position 0 (GENIUS macro: layer2)
    position_name: str = "position {}"  # how feedback names a position: "layer{}", "channels[{}]"
    prefer_last: bool = False  # free-text answers: the list written last is the proposal

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "settings.json") -> AnswerFormat:
        try:
            length = data["length"]
            lo, hi = (length, length) if isinstance(length, int) else (int(length[0]), int(length[1]))
            per_position, token_lists = _positions(data, hi)
            stages = _stages(data, hi)
            return cls(
                choices=tuple(tuple(c) for c in per_position),
                tokens=tuple(tuple(str(t) for t in ts) for ts in token_lists),
                min_length=lo, max_length=hi,
                key_join=data.get("key_join", "" if "key_template" not in data else None),
                key_template=data.get("key_template"),
                names={str(k).lower(): v for k, v in data.get("names", {}).items()},
                stages=stages,
                position_label=data.get("position_label", ""),
                position_offset=int(data.get("position_offset", 0)),
                position_name=data.get("position_name", "position {}"),
                prefer_last=_prefer_last(data.get("prefer", "first")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise LmnasError(f"{source}: bad answer format ({exc}); expected length, choices, tokens, key_join|key_template") from None

    # -- key <-> values --------------------------------------------------------------------
    def key_of(self, values: Sequence[Value]) -> str:
        tokens = [self.tokens[i][self.choices[i].index(v)] for i, v in enumerate(values)]
        if self.key_template is not None:
            return self.key_template.format(*tokens)
        return (self.key_join or "").join(tokens)

    def values_of(self, key: str) -> list[Value]:
        """Invert `key_of` (the history shows genotypes as the model writes them)."""
        if self.key_template is not None:
            match = self._key_regex().fullmatch(key)
            tokens = list(match.groups()) if match else []
        else:
            tokens = key.split(self.key_join) if self.key_join else list(key)
        try:
            if not self.min_length <= len(tokens) <= self.max_length:
                raise ValueError
            return [self.choices[i][self.tokens[i].index(t)] for i, t in enumerate(tokens)]
        except ValueError:
            raise LmnasError(f"genotype key {key!r} does not fit the answer format") from None

    def _key_regex(self) -> re.Pattern[str]:
        parts = re.split(r"\{\}", self.key_template or "")
        alternatives = ["(" + "|".join(re.escape(t) for t in sorted(ts, key=len, reverse=True)) + ")" for ts in self.tokens]
        return re.compile("".join(re.escape(p) + (alternatives[i] if i < len(alternatives) else "") for i, p in enumerate(parts)))

    def key_form_regex(self) -> re.Pattern[str] | None:
        """The key as the tables write it, found inside prose (fixed-length formats only)."""
        if self.min_length != self.max_length:
            return None
        if self.key_template is not None:
            return self._key_regex()
        alternatives = ["(" + "|".join(re.escape(t) for t in sorted(ts, key=len, reverse=True)) + ")" for ts in self.tokens]
        body = re.escape(self.key_join or "").join(alternatives)
        return re.compile(r"(?<![\w,])" + body + r"(?![\w,])")

    def display(self, values: Sequence[Value]) -> str:
        """How a genotype is shown to the model: one list, or one list per stage."""
        if not self.stages:
            return _list_text(values)
        lines, start = [], 0
        for label, n in self.stages:
            lines.append(f"{label}: {_list_text(values[start:start + n])}")
            start += n
        return "\n".join(lines)

    def value_of(self, item: str) -> Value:
        """One list item as written by the model → an answer value (int, alias or raw text)."""
        text = item.strip().strip("'\"`").strip()
        if INT.fullmatch(text):
            return int(text)
        return self.names.get(text.lower(), text)


def _prefer_last(prefer: str) -> bool:
    if prefer not in ("first", "last"):
        raise ValueError(f"prefer={prefer!r}, expected 'first' or 'last'")
    return prefer == "last"


def _list_text(values: Sequence[Value]) -> str:
    return "[" + ", ".join(str(v) if isinstance(v, int) else json.dumps(v) for v in values) + "]"


# -- extraction ------------------------------------------------------------------------------
def extract_candidates(text: str, fmt: AnswerFormat) -> list[list[Value]]:
    """Every list of values the answer holds, without repeats: most explicit forms first, or
    (`fmt.prefer_last`) the one ending last in the text first."""
    text = text[:MAX_ANSWER_CHARS]
    found: list[tuple[int, list[Value]]] = []  # (where it ends in the text, values)

    def add(end: int, values: list[Value]) -> None:
        if values:
            found.append((end, values))

    for values in _json_lists(text.strip(), fmt):
        add(len(text), values)
    for block in FENCED.finditer(text):
        for values in _json_lists(block.group(1), fmt):
            add(block.end(), values)
    for end, values in _stage_lists(text, fmt):
        add(end, values)
    for match in BRACKETED.finditer(text):
        if match.group(1).strip():
            add(match.end(), _values(match.group(1).split(","), fmt))
    add(*_assignments(text, fmt))
    key_form = fmt.key_form_regex()
    if key_form is not None:
        for match in key_form.finditer(text):
            add(match.end(), [fmt.choices[i][fmt.tokens[i].index(t)] for i, t in enumerate(match.groups())])
    if fmt.prefer_last:
        found.sort(key=lambda item: -item[0])  # stable: equal ends keep the explicit-first order
    unique: list[list[Value]] = []
    for _, values in found:
        if values not in unique:
            unique.append(values)
    return unique


def _json_lists(block: str, fmt: AnswerFormat) -> list[list[Value]]:
    """Lists of scalars inside a JSON answer; a list of per-stage lists is concatenated."""
    try:
        data = json.loads(block)
    except (json.JSONDecodeError, RecursionError):
        return []
    out: list[list[Value]] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 20:
            return
        if isinstance(node, dict):
            for value in node.values():
                walk(value, depth + 1)
        elif isinstance(node, list):
            if node and all(isinstance(x, list) for x in node) and all(_scalars(x) for x in node):
                out.append(_values([v for x in node for v in x], fmt))
            elif _scalars(node):
                out.append(_values(node, fmt))
            else:
                for value in node:
                    walk(value, depth + 1)

    walk(data, 0)
    return out


def _values(items: list[Any], fmt: AnswerFormat) -> list[Value]:
    """Answer values of list items; past any plausible length items stay raw (only the count matters)."""
    head = items[: fmt.max_length + 8]
    values = [item if isinstance(item, int) and not isinstance(item, bool)
              else fmt.value_of(item) if isinstance(item, str) else str(item) for item in head]
    return values + items[len(head):]


def _scalars(node: list[Any]) -> bool:
    return bool(node) and all(isinstance(x, (int, float, str)) and not isinstance(x, bool) for x in node)


def _stage_lists(text: str, fmt: AnswerFormat) -> list[tuple[int, list[Value]]]:
    """`Stage k …: [..]` lines; a new design starts whenever the stage number does not increase.
    Each design with where its last line ends."""
    if not fmt.stages:
        return []
    designs: list[list[tuple[int, str, int]]] = []
    for match in STAGE_LIST.finditer(text):
        stage = int(match.group(1))
        if not designs or stage <= designs[-1][-1][0]:
            designs.append([])
        designs[-1].append((stage, match.group(2), match.end()))
    return [(design[-1][2], _values([item for _, body, _ in design for item in body.split(",")], fmt))
            for design in designs]


def _assignments(text: str, fmt: AnswerFormat) -> tuple[int, list[Value]]:
    """`op0: 3`, `op_list[1] = skip_connect`, `layer2: 1` … (every position once, in order), and
    where the last assignment used ends. A later complete set of assignments replaces an earlier
    one when the answer prefers its last design."""
    if not fmt.position_label:
        return 0, []
    pattern = re.compile(
        rf"\b{re.escape(fmt.position_label)}(?:_list)?\s*\[?\s*(\d+)\s*\]?\s*(?:[:=]|is|->)\s*([^\n,;]+)", re.I)
    assigned: dict[int, Value] = {}
    end = 0
    for match in pattern.finditer(text):
        position = int(match.group(1)) - fmt.position_offset
        if not 0 <= position < fmt.max_length:
            continue
        if position not in assigned or fmt.prefer_last:
            assigned[position] = _named_value(match.group(2), fmt)
            end = match.end()
    if len(assigned) < fmt.min_length or sorted(assigned) != list(range(len(assigned))):
        return 0, []
    return end, [assigned[i] for i in range(len(assigned))]


def _named_value(text: str, fmt: AnswerFormat) -> Value:
    head = text.strip().strip("'\"`")
    number = INT.match(head)
    if number:
        return int(number.group())
    lowered = head.lower()
    for alias in sorted(fmt.names, key=len, reverse=True):  # longest alias first: nor_conv_3x3 before conv
        if alias in lowered:
            return fmt.names[alias]
    return head.split()[0] if head.split() else head


# -- validation ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rejection:
    reason: str  # one of REASONS
    detail: str  # said to the model and written to the transcript

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "detail": self.detail}


@dataclass
class Verdict:
    accepted: list[tuple[Genotype, str]]  # (genotype, canonical key), at most `wanted`
    rejections: list[Rejection]

    @property
    def refused(self) -> bool:
        return not self.accepted and bool(self.rejections) and self.rejections[0].reason in ("empty", "refusal")


def validate_answer(
    text: str,
    fmt: AnswerFormat,
    space: SearchSpace,
    evaluated: Mapping[str, float],
    *,
    wanted: int = 1,
    taken: frozenset[str] = frozenset(),
) -> Verdict:
    """Accept up to `wanted` new, valid genotypes from the answer; say why each other one fails.

    `evaluated` maps canonical keys to accuracies (a duplicate's feedback quotes its result);
    `taken` holds keys already accepted this iteration.
    """
    if not text.strip():
        return Verdict([], [Rejection("empty", "the answer is empty")])
    candidates = extract_candidates(text, fmt)
    if not candidates:
        if REFUSAL.search(text[:MAX_ANSWER_CHARS]):
            return Verdict([], [Rejection("refusal", "the answer declines to propose an architecture")])
        return Verdict([], [Rejection("unparseable", f"no list of {_length_text(fmt)} values was found in the answer")])
    accepted: list[tuple[Genotype, str]] = []
    rejections: list[Rejection] = []
    keys = set(taken)
    for values in candidates:
        outcome = check_values(values, fmt, space, evaluated, keys)
        if isinstance(outcome, Rejection):
            rejections.append(outcome)
            continue
        accepted.append(outcome)
        keys.add(outcome[1])
        if len(accepted) == wanted:
            break
    if accepted:
        return Verdict(accepted, [])
    # Lists of the right length are the model's proposals; shorter ones are usually quotes.
    proposals = [r for r in rejections if r.reason != "wrong_length"] or rejections
    return Verdict([], proposals[:3])


def check_values(
    values: list[Value], fmt: AnswerFormat, space: SearchSpace, evaluated: Mapping[str, float], taken: set[str]
) -> tuple[Genotype, str] | Rejection:
    if not fmt.min_length <= len(values) <= fmt.max_length:
        return Rejection("wrong_length", f"{_short(values)} has {len(values)} values, expected {_length_text(fmt)}")
    for i, v in enumerate(values):
        if v not in fmt.choices[i]:
            allowed = ", ".join(map(str, fmt.choices[i]))
            where = fmt.position_name.format(i + fmt.position_offset)
            return Rejection("out_of_range", f"value {v!r} for {where} is not one of [{allowed}]")
    try:
        genotype = space.parse(fmt.key_of(values))
        key = space.key(genotype)
    except LmnasError as exc:
        return Rejection("invalid", str(exc))
    shown = fmt.display(values)
    if key in evaluated:
        return Rejection("duplicate", f"{shown} was already evaluated: it gives an accuracy of {evaluated[key]:.2f}%")
    if key in taken:
        return Rejection("duplicate", f"{shown} was already proposed in this answer")
    problem = space.check_constraints(genotype)
    if problem:
        return Rejection("constraint", problem)
    return genotype, key


def _length_text(fmt: AnswerFormat) -> str:
    return str(fmt.max_length) if fmt.min_length == fmt.max_length else f"{fmt.min_length} to {fmt.max_length}"


def _short(values: list[Value], limit: int = 12) -> str:
    return _list_text(values) if len(values) <= limit else _list_text(values[:limit])[:-1] + ", …]"


def _positions(data: Mapping[str, Any], hi: int) -> tuple[list[list[Any]], list[list[Any]]]:
    """Choices and tokens per position (one list given for all positions is repeated); tokens default
    to the choices written as text. ValueError when a position or a token is missing."""
    choices = data["choices"]
    per_position = choices if choices and isinstance(choices[0], list) else [choices] * hi
    tokens = data.get("tokens")
    if tokens is None:
        token_lists = [[str(c) for c in cs] for cs in per_position]
    else:
        token_lists = tokens if tokens and isinstance(tokens[0], list) else [tokens] * hi
    if len(per_position) != hi or len(token_lists) != hi:
        raise ValueError(f"choices/tokens need {hi} positions")
    if any(len(c) != len(t) for c, t in zip(per_position, token_lists)):
        raise ValueError("each position needs one token per choice")
    return per_position, token_lists


def _stages(data: Mapping[str, Any], hi: int) -> tuple[tuple[str, int], ...]:
    """(label, length) per stage; their lengths must cover the `hi` positions."""
    stages = tuple((str(s["label"]), int(s["length"])) for s in data.get("stages", []))
    if stages and sum(n for _, n in stages) != hi:
        raise ValueError(f"stage lengths sum to {sum(n for _, n in stages)}, not {hi}")
    return stages
