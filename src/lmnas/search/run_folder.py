"""A search's output folder is bound to the settings that produced it.

`fingerprint.json` holds everything that determines the journal's rows: space, strategy and
evaluator settings (factory defaults filled in, so an explicit default equals an omitted one;
input paths replaced by the sha256 of what they hold), the seed, the torch threads per
evaluation, and the version of the code that searches. The budget is not in it: a larger
budget extends a run. `status.json` says whether the run in the folder finished.

Opening a folder (`prepare_run_folder`) decides, before anything reads or writes in it:
- empty or new, or holding only the bookkeeping of a run that made no evaluation → a fresh run;
- same fingerprint → resume (a killed run, or a finished one under a larger budget);
- anything else → by policy: "refuse" (the CLI default: one line naming the keys that differ),
  "restart" (always: move the old folder aside as `<name>.old-<timestamp>`, nothing
  deleted, then fresh), or "workflow" (as restart, and also when a finished run is rerun with no larger
  budget: the stage was forced or an input changed, so Snakemake/DVC expect a recomputation).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.identity import FINGERPRINT_FILE, code_version, differences, read_fingerprint, sha256_file, sha256_tree
from lmnas.io import read_json, write_json
from lmnas.registry import Registry
from lmnas.search.outputs import KEPT_DIR, restore_outputs

STATUS_FILE = "status.json"
POLICIES = ("refuse", "restart", "workflow")
# The lmnas code that decides which genotypes are proposed and what they score.
SEARCH_CODE = ("search", "spaces", "proxies", "strategies", "evaluation", "training", "models", "llm", "prompts",
               "archgpt", "nasbench101", "encoding", "data", "nas_tables.py")
# Settings that name inputs on disk: their content, not their location, is the identity.
PATH_SETTINGS = {"prepared_dir", "archgpt_dir", "benchmarks_dir", "replay", "prompt_dir", "candidates_path"}
# Settings with no effect on results (where output goes, how progress shows, how long to wait).
IGNORED_SETTINGS = {"out_dir", "weights_dir", "progress", "timeout_s", "api_retries", "backoff_s", "api_key_env"}


def content_id(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, of a prepared dataset's manifest (which holds its shards' sha256), or of a folder."""
    p = Path(path).expanduser()
    if not p.exists():
        raise LmnasError(f"{p}: input not found")
    if p.is_dir() and (p / "manifest.json").is_file():
        return sha256_file(p / "manifest.json")
    return sha256_file(p) if p.is_file() else sha256_tree(p)


def resolved_settings(registry: Registry[Any], section: dict[str, Any]) -> dict[str, Any]:
    """A {"name": ..., **settings} section with the factory's defaults filled in and paths hashed."""
    settings = dict(section)
    name = settings.pop("name")
    defaults = registry.defaults(name)
    out: dict[str, Any] = {"name": name}
    for key, value in sorted({**defaults, **settings}.items()):
        if key in IGNORED_SETTINGS or key in ("space", "seed"):
            continue
        if key in PATH_SETTINGS and value is not None:
            value = {"sha256": content_id(value)}
        out[key] = value
    return out


def search_fingerprint(
    *, space: dict[str, Any], strategy: dict[str, Any], evaluator: dict[str, Any], seed: int,
    threads_per_evaluation: int, inputs: dict[str, str] | None = None,
    warm_start: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`warm_start`: the warm start's identity (lmnas.proxies.warm_start.WarmStart.identity), recorded
    only when set, so runs without one keep their fingerprint."""
    from lmnas.evaluation import EVALUATORS
    from lmnas.spaces import SPACES
    from lmnas.strategies import STRATEGIES

    fingerprint = {
        "space": resolved_settings(SPACES, space),
        "strategy": resolved_settings(STRATEGIES, strategy),
        "evaluator": resolved_settings(EVALUATORS, evaluator),
        "seed": seed,
        "threads_per_evaluation": threads_per_evaluation,
        "inputs": {k: content_id(v) for k, v in sorted((inputs or {}).items())},
        "code": code_version(*SEARCH_CODE),
    }
    if warm_start is not None:
        data = warm_start.get("data")
        fingerprint["warm_start"] = {**warm_start, "data": None if data is None else {"sha256": content_id(data)}}
    return json.loads(json.dumps(fingerprint, default=str))  # as read back from disk: tuples → lists


def prepare_run_folder(out: Path, fingerprint: dict[str, Any], budget: int, policy: str) -> str:
    """Make `out` ready for this run; return "fresh", "resume", or "restart (old run moved to …)"."""
    if policy not in POLICIES:
        raise LmnasError(f"unknown folder policy {policy!r}; expected one of {list(POLICIES)}")
    if out.exists() and not out.is_dir():
        raise LmnasError(f"--out {out}: exists and is not a folder")
    entries = [p for p in out.iterdir() if not p.name.startswith(".")] if out.is_dir() else []
    if not entries:
        _start(out, fingerprint)
        return "fresh"
    if _made_no_evaluation(entries):
        # A run that stopped before its first evaluation (an unreadable table, a bad setting) left
        # only bookkeeping: nothing to protect, so the corrected rerun starts here, whatever changed.
        for p in entries:
            p.unlink()
        shutil.rmtree(out / KEPT_DIR, ignore_errors=True)  # kept outputs of a journal no longer there
        _start(out, fingerprint)
        return "fresh (the folder's earlier run made no evaluation: started afresh in it)"
    recorded = read_fingerprint(out)
    status = _read_status(out)
    if policy == "restart":
        reason = "--restart"
    elif recorded is None:
        reason = (f"{out} holds a search without a fingerprint (made by an older lmnas)"
                  if (out / "journal.jsonl").exists() else f"{out} is not empty and holds no lmnas search")
    elif differ := differences(recorded, fingerprint):
        reason = f"{out} holds a search with other settings (differ: {', '.join(differ)})"
    elif policy == "workflow" and status.get("finished") and budget <= status.get("budget", 0):
        reason = f"{out} holds a finished search"  # forced rerun: recompute
    else:
        write_json(out / STATUS_FILE, {**status, "finished": False, "budget": budget})
        return "resume"
    if policy == "refuse":
        raise LmnasError(f"{reason}; to keep it, choose another --out; to start afresh, add --restart "
                         "(moves the old folder aside, deletes nothing)")
    aside = move_aside(out)
    _start(out, fingerprint)
    return f"restart ({reason}; moved to {aside})"


def move_aside(out: Path) -> Path:
    """Rename `out` to `<name>.old-<time>`, whole: the result files a rerun's Snakemake/DVC removed
    before starting it come back from the finished run's `.outputs/` (lmnas.search.outputs)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = out.with_name(f"{out.name}.old-{stamp}")
    n = 1
    while aside.exists():
        aside, n = out.with_name(f"{out.name}.old-{stamp}-{n}"), n + 1
    out.rename(aside)
    restore_outputs(aside)
    return aside


def mark_finished(out: Path, budget: int, stopped_because: str, evaluations: int) -> None:
    write_json(out / STATUS_FILE, {"finished": True, "budget": budget, "stopped_because": stopped_because,
                                   "evaluations": evaluations})


def _start(out: Path, fingerprint: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / FINGERPRINT_FILE, fingerprint)
    write_json(out / STATUS_FILE, {"finished": False})


def _made_no_evaluation(entries: list[Path]) -> bool:
    """Only the files a search writes before its first evaluation, and a journal with no row."""
    bookkeeping = {FINGERPRINT_FILE, STATUS_FILE, "config.json", "journal.jsonl"}
    if any(p.name not in bookkeeping or not p.is_file() for p in entries):
        return False
    journal = next((p for p in entries if p.name == "journal.jsonl"), None)
    return journal is None or not journal.read_text(encoding="utf-8", errors="replace").strip()


def _read_status(out: Path) -> dict[str, Any]:
    path = out / STATUS_FILE
    try:
        value = read_json(path) if path.exists() else {}
    except LmnasError:
        value = {}  # a status torn by a kill: the run did not finish
    return value if isinstance(value, dict) else {}
