"""The workflow config: one YAML, checked against a JSON schema, resolved into typed sections.

The schema (schemas/config.schema.json) catches types, ranges and enums and names the
field's path; cross-field checks (dataset names, input paths) are done here. The resolved,
validated dict is saved beside every result it produced (`config.json`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lmnas.errors import LmnasError

NEEDS_ROOT = {"cifar10", "cifar100", "imagenet"}


def schema() -> dict[str, Any]:
    return json.loads(resources.files("lmnas.schemas").joinpath("config.schema.json").read_text())


def validate(config: dict[str, Any], source: str = "config") -> None:
    """Raise one LmnasError naming the field's path and what is allowed."""
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise LmnasError(f"{source}: {where}: {_describe(error)}")
    _check_references(config, source)


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        return f"{error.instance!r} is not allowed; allowed values: {error.validator_value}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys: {allowed}"
    return error.message


def _check_references(config: dict[str, Any], source: str) -> None:
    from lmnas.evaluation import EVALUATORS
    from lmnas.spaces import SPACES
    from lmnas.strategies import STRATEGIES

    search = config["search"]
    registries = {"space": SPACES, "strategy": STRATEGIES, "evaluator": EVALUATORS}
    known = set().union(*(r.names() for r in registries.values()))
    for name in search.get("options", {}):
        if name not in known:
            raise LmnasError(f"{source}: search.options.{name}: not a registered space, strategy or evaluator; "
                             f"registered: {sorted(known)}")
    for what, registry in registries.items():
        name = search[what]
        if name not in registry:
            raise LmnasError(f"{source}: search.{what}: {name!r} is not allowed; allowed values: {registry.names()}")
        try:  # the settings must fit the factory's signature (values are checked when it runs)
            registry.check_settings(name, search.get("options", {}).get(name, {}))
        except LmnasError as exc:
            raise LmnasError(f"{source}: search.options.{name}: {exc}") from None
    names = sorted(config["datasets"])
    needs = ["transfer"] if config["transfer"].get("enabled", True) and config["retrain"].get("enabled", True) else []
    if search["evaluator"] != "table" or config["retrain"].get("enabled", True):
        needs.insert(0, "search")
    if config["retrain"].get("enabled", True) and "dataset" in config["retrain"]:
        needs.append("retrain")  # retrain on another dataset than the search's
    for section in needs:
        name = config[section].get("dataset")
        if name not in config["datasets"]:
            raise LmnasError(f"{source}: {section}.dataset: {name!r} is not defined; defined datasets: {names}")


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise LmnasError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise LmnasError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise LmnasError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge like Snakemake's --configfile does (mappings merge, other values replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class Config:
    """The validated config with paths resolved against the project root."""

    raw: dict[str, Any]
    root: Path
    run_name: str
    seed: int
    device: str
    progress: bool
    benchmarks_dir: Path
    results_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "results_dir", Path("results") / self.run_name)

    def nasbench101_path(self) -> Path | None:
        path = self.raw["corpus"]["nasbench101"].get("path")
        if path is None:
            return None
        return self.resolve(path.format(benchmarks_dir=self.benchmarks_dir))

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        p = Path(os.path.expanduser(os.fspath(path)))
        return p if p.is_absolute() else (self.root / p)


def resolve(config: dict[str, Any], root: str | os.PathLike[str], source: str = "config") -> Config:
    """Validate `config` and resolve it; `root` is where relative paths start (the repo)."""
    validate(config, source)
    root = Path(root).resolve()
    cfg = Config(
        raw=config,
        root=root,
        run_name=config["run_name"],
        seed=config["seed"],
        device=config.get("device", "auto"),
        progress=config.get("progress", True),
        benchmarks_dir=_resolve_path(root, config.get("benchmarks_dir", "../shared/benchmarks")),
    )
    check_inputs(cfg, source)
    return cfg


def _resolve_path(root: Path, path: str) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else (root / p).resolve()


def check_inputs(cfg: Config, source: str = "config") -> None:
    """Fail before any job starts when a local input the config names is missing."""
    for name, spec in cfg.raw["datasets"].items():
        if spec["source"] not in NEEDS_ROOT or spec.get("download", False):
            continue
        root = spec.get("root")
        if not root:
            raise LmnasError(
                f"{source}: datasets.{name}.root: {spec['source']} needs a local root "
                "(or set download: true on a machine with internet)"
            )
        if not cfg.resolve(root).exists():
            raise LmnasError(
                f"{source}: datasets.{name}.root: dataset folder not found: {cfg.resolve(root)} "
                "(point it at the extracted dataset, or set download: true)"
            )
    nb = cfg.raw["corpus"]["nasbench101"]
    path = cfg.nasbench101_path()
    if path is not None and not path.exists() and nb.get("generate_if_missing", 0) == 0:
        raise LmnasError(
            f"{source}: corpus.nasbench101.path: file not found: {path} "
            "(set generate_if_missing > 0 to generate valid cells instead)"
        )


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LmnasError(f"device: {device!r} requested but CUDA is not available on this machine")
    return device
