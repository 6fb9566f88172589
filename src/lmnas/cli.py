"""`lmnas`: the library's stages from the command line, without Snakemake."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise LmnasError(f"{flag}: expected a whole number >= 1, got {value}")


def _writable_folder(out: str) -> Path:
    if not out.strip():
        raise LmnasError("--out: empty path; name the folder for the results")
    path = Path(out)
    probe = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if probe.exists() and not probe.is_dir():
        raise LmnasError(f"--out {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LmnasError(f"--out {out}: {probe} is not writable")
    return path


def _search(args: argparse.Namespace) -> None:
    """Build the `search:` section from the config file and the flags, let the library validate and run it."""
    from lmnas.search.from_config import search_from_config

    for value, flag in ((args.budget, "--budget"), (args.workers, "--workers"), (args.threads, "--threads")):
        _positive(value, flag)
    out = _writable_folder(args.out)
    source = args.config or "command line"
    summary = search_from_config(
        _section_from_flags(args),
        data_dir=Path(args.data) if args.data else None,
        archgpt_dir=Path(args.archgpt) if args.archgpt else None,
        out_dir=out,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
        policy="restart" if args.restart else "refuse",
        source=source,
        check=lambda section: _check_inputs(section, args),
    )
    _print_summary(summary)


def _section_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The config file's `search:` section (if any) with the flags written over it; not yet validated."""
    from lmnas.config import load_yaml

    section = load_yaml(args.config).get("search", {}) if args.config else {}
    if not isinstance(section, dict):
        raise LmnasError(f"{args.config}: search: expected a mapping")
    section = dict(section)
    for what in ("space", "strategy", "evaluator"):
        if getattr(args, what):
            section[what] = getattr(args, what)
    section.setdefault("evaluator", "table" if args.data is None else "proxy")
    for what in ("space", "strategy"):
        if what not in section:
            raise LmnasError(f"--{what} is required (or a config file with search.{what})")
    section["budget"] = dict(section.get("budget", {}))
    if args.budget:
        section["budget"]["evaluations"] = args.budget
    flags = {"workers": args.workers, "threads_per_evaluation": args.threads, "executor": args.executor}
    section.update({key: value for key, value in flags.items() if value})
    for key, flag in (("executor_settings", "--executor-settings"), ("warm_start", "--warm-start")):
        if getattr(args, key):  # the attribute is the section's key
            section[key] = _json_flag(getattr(args, key), flag)
    _add_llm_flags(section, args)
    return section


def _add_llm_flags(section: dict[str, Any], args: argparse.Namespace) -> None:
    """The --llm-* and --replay flags go into the chosen strategy's options (a copy: the file's stay as read)."""
    llm = {"base_url": args.llm_base_url, "model": args.llm_model, "api_key_env": args.llm_api_key_env,
           "replay": args.replay}
    llm = {k: v for k, v in llm.items() if v is not None}
    if llm:
        options = section["options"] = {k: dict(v) for k, v in section.get("options", {}).items()}
        options.setdefault(section["strategy"], {}).update(llm)


def _json_flag(text: str, flag: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise LmnasError(f"{flag}: not valid JSON ({error})") from None


def _check_inputs(section: dict[str, Any], args: argparse.Namespace) -> None:
    """The --archgpt and --data refusals, naming the flag rather than the library's setting; run on the
    validated section (so a bad config is reported first) before the data or the GPT is read."""
    from lmnas.search.wiring import needs_archgpt

    if needs_archgpt(section["strategy"]) and not args.archgpt:
        chose = "--strategy" if args.strategy else f"{args.config}: search.strategy"
        raise LmnasError(f"{chose} {section['strategy']} needs a fine-tuned architecture GPT: pass --archgpt DIR "
                         f"(the workflow's train_archgpt stage writes one to results/<run_name>/archgpt/finetuned)")
    if args.data:
        from lmnas.data.shards import MANIFEST_NAME, prepare_command

        if not (Path(args.data) / MANIFEST_NAME).is_file():
            name = Path(args.data).name
            raise LmnasError(f"--data {args.data}: no prepared dataset there (no {MANIFEST_NAME}); make it with "
                             f"`{prepare_command(args.data)}` in the checkout (for a dataset {name!r} under `datasets:` "
                             f"in config/config.yaml), then pass --data data/prepared/{name}")


def _print_summary(summary: dict[str, Any]) -> None:
    keys = ("genotype", "accuracy", "test_accuracy", "evaluations", "stopped_because")
    print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))


def _arch(args: argparse.Namespace) -> None:
    from lmnas.config import check_options
    from lmnas.models import measure
    from lmnas.spaces import create_space

    try:
        settings = json.loads(args.settings) if args.settings else {}
    except json.JSONDecodeError as exc:
        raise LmnasError(f"--settings: not valid JSON ({exc}); e.g. '{{\"min_blocks\": 4}}'") from None
    if not isinstance(settings, dict):
        raise LmnasError(f"--settings: expected a JSON object of space settings, got {args.settings!r}")
    check_options(args.space, settings, "--settings")
    try:
        space = create_space(args.space, **settings)
    except (TypeError, ValueError) as exc:
        raise LmnasError(f"--settings: {exc}") from None
    genotype = space.parse(args.genotype)
    model = space.build(genotype)
    measured = measure(model, space.input_shape)  # "flops" there = torch's multiply-adds
    key = space.key(genotype)
    out = {"space": space.name, "genotype": key, "params": measured["params"],
           "flops": measured["flops"], "macs": measured["flops"], "input_shape": list(space.input_shape)}
    if "".join(args.genotype.split()).strip("[]") != key:  # the key is not the text given (spacing aside)
        out["given"] = args.genotype
        out["canonical"] = f"genotype is the canonical form of the one given: {space.canonical_form}"
        print(f"lmnas: printing the canonical form of --genotype: {space.canonical_form}", file=sys.stderr)
    paper_flops = space.flops(genotype)  # a paper-convention count (GENIUS: thop at 224 px), if the space has one
    if paper_flops is not None:
        out["flops"] = paper_flops
        out["flops_convention"] = {k: v for k, v in space.settings().items() if k.startswith("flops_")}
    print(json.dumps(out, indent=2))


def _list(args: argparse.Namespace) -> None:
    from lmnas.evaluation import EVALUATORS
    from lmnas.proxies import PROXIES
    from lmnas.spaces import SPACES
    from lmnas.strategies import STRATEGIES

    for registry in (SPACES, STRATEGIES, EVALUATORS, PROXIES):
        print(f"{registry.kind}: {', '.join(registry.names())}")


def _nb101(args: argparse.Namespace) -> None:
    from lmnas.nasbench101.commands import nb101_command

    print(json.dumps(nb101_command(args), indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmnas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="run a search and write journal.parquet, best.json, curve.png")
    s.add_argument("--config", help="YAML whose `search:` section (as in config/config.yaml) gives names, options and budget")
    s.add_argument("--space")
    s.add_argument("--strategy")
    s.add_argument("--evaluator", help="default: table lookup, or proxy training when --data is given")
    s.add_argument("--budget", type=int, help="evaluations (default 100)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output folder (resumes a run with the same settings in it)")
    s.add_argument("--restart", action="store_true",
                   help="the folder holds another run: move it aside (<out>.old-<time>, nothing deleted) and start afresh")
    s.add_argument("--data", help="prepared dataset folder (for the proxy evaluator)")
    s.add_argument("--archgpt", help="fine-tuned architecture GPT folder (for ga-gpt)")
    s.add_argument("--workers", type=int, help="evaluate candidates in N parallel processes")
    s.add_argument("--threads", type=int, help="torch threads per evaluation (default 1; part of the run's identity)")
    s.add_argument("--executor", choices=["local", "slurm"],
                   help="where candidates are evaluated: local processes (default) or one SLURM job each (submitit)")
    s.add_argument("--executor-settings", help="JSON, for slurm: partition, account, gpus_per_candidate, gpu_model, "
                   "cpus_per_candidate, mem_mb, timeout_min, candidates_per_job, max_retries, status (sacct|squeue), ...")
    s.add_argument("--warm-start", help='JSON, e.g. \'{"proxy": "naswot", "pool": 1000, "top": 10}\': rank pool '
                   "sampled architectures by a zero-cost proxy; the strategy's random start takes the top ones first")
    s.add_argument("--llm-base-url", help="OpenAI-compatible server for genius strategies (OpenAI, vLLM, Ollama, ...)")
    s.add_argument("--llm-model", help="model name on that server")
    s.add_argument("--llm-api-key-env", help="environment variable holding the API key (default OPENAI_API_KEY)")
    s.add_argument("--replay", help="answer from a recorded transcript.jsonl: no network, no key")
    s.add_argument("--device", default="auto")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_search)

    a = sub.add_parser("arch", help="params, FLOPs (the space's paper convention, else multiply-adds) and torch multiply-adds (macs) of one genotype's network")
    a.add_argument("--space", required=True)
    a.add_argument("--genotype", required=True, help="the canonical key, as the benchmark tables write it")
    a.add_argument("--settings", help="space settings as JSON, e.g. '{\"min_blocks\": 4}'")
    a.set_defaults(func=_arch)

    from lmnas.nasbench101.commands import add_nb101_parser

    add_nb101_parser(sub).set_defaults(func=_nb101)

    ls = sub.add_parser("list", help="registered spaces, strategies and evaluators")
    ls.set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except LmnasError as error:
        print(f"lmnas: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a folder that vanished or lost its permissions mid-run
        print(f"lmnas: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
