"""The workflow config: one YAML, checked against a JSON schema, resolved into typed sections.

The schema (schemas/config.schema.json) catches types, ranges and enums and names the
field's path; cross-field checks (dataset names, input paths) are done here. The schema is
also the one home of every default: validation fills unset keys in place (like
`snakemake.utils.validate(..., set_default=True)`), so rules, scripts and the CLI all see the
same complete config and hold no fallbacks of their own. The resolved, validated dict is saved
beside every result it produced (`config.json`).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lmnas.device import resolve_device  # noqa: F401 (re-exported: callers import it from here)
from lmnas.errors import LmnasError

NEEDS_ROOT = {"cifar10", "cifar100", "imagenet"}


def schema() -> dict[str, Any]:
    return json.loads(resources.files("lmnas.schemas").joinpath("config.schema.json").read_text())


def _set_defaults(validator_class: type) -> type:
    """A validator that fills each unset property with a copy of its schema default, then checks it."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, properties, instance, schema):  # noqa: ANN001 (jsonschema's hook)
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


_DefaultingValidator = _set_defaults(jsonschema.Draft202012Validator)


def validate(config: dict[str, Any], source: str = "config") -> None:
    """Fill the schema's defaults into `config` (in place); raise one LmnasError naming the
    field's path and what is allowed."""
    check_schema(config, schema(), source, fill_defaults=True)
    _check_references(config, source)


def check_schema(value: Any, spec: dict[str, Any], source: str, prefix: str = "", fill_defaults: bool = False) -> None:
    """Check `value` against a (sub)schema (filling its defaults in place if asked); the error
    names `prefix` + the field's path."""
    validator = (_DefaultingValidator if fill_defaults else jsonschema.Draft202012Validator)(spec)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is not None:
        where = (prefix + ".".join(str(p) for p in error.absolute_path)).rstrip(".") or "(top level)"
        raise LmnasError(f"{source}: {where}: {_describe(error)}")


def check_options(name: str, settings: dict[str, Any], source: str) -> None:
    """Settings of one registered name against `search.options.<name>` in the schema, where it has one."""
    full = schema()
    spec = full["properties"]["search"]["properties"]["options"]["properties"].get(name)
    if spec is not None:
        check_schema(settings, {"$defs": full["$defs"], **spec}, source)


def option_defaults(name: str) -> dict[str, Any]:
    """The schema's defaults of `search.options.<name>`: the one place a strategy's defaults are
    written (its signature reads them from here, so the registry and the fingerprint see them)."""
    spec = schema()["properties"]["search"]["properties"]["options"]["properties"].get(name, {})
    return {key: copy.deepcopy(prop["default"]) for key, prop in spec.get("properties", {}).items()
            if "default" in prop}


def validate_search_section(section: dict[str, Any], source: str) -> None:
    """The `search:` section alone (lmnas search --config), against the workflow's schema."""
    full = schema()
    check_schema(section, {"$defs": full["$defs"], **full["properties"]["search"]}, source, "search.",
                 fill_defaults=True)


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        return f"{error.instance!r} is not allowed; allowed values: {error.validator_value}"
    if error.validator == "additionalProperties":
        allowed = sorted(k for k, v in error.schema.get("properties", {}).items() if "not" not in v)
        return f"{error.message}; allowed keys: {allowed}"
    if error.validator == "not" and "description" in error.schema:
        return error.schema["description"]  # a retired key: its description says what replaced it
    return error.message


def _check_references(config: dict[str, Any], source: str) -> None:
    from lmnas.catalog import KINDS, catalog
    from lmnas.search.wiring import reads_data

    search = config["search"]
    registries = {kind: catalog(kind) for kind in KINDS}
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
    needs = ["transfer"] if config["transfer"]["enabled"] and config["retrain"]["enabled"] else []
    if reads_data(search["evaluator"]) or config["retrain"]["enabled"]:
        needs.insert(0, "search")
    if config["retrain"]["enabled"] and config["retrain"].get("dataset") is not None:
        needs.append("retrain")  # retrain.dataset defaults to search.dataset
    for section in needs:
        value = config[section].get("dataset")
        for name in value if isinstance(value, list) else [value]:
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
        device=config["device"],
        progress=config["progress"],
        benchmarks_dir=_benchmarks_dir(root, config["benchmarks_dir"]),
    )
    check_inputs(cfg, source)
    return cfg


def _resolve_path(root: Path, path: str) -> Path:
    # Normalised, not resolved: symlinks stay as written, so paths relative to the repo stay
    # stable wherever the checkout lives (dvc.yaml records them relative to the root).
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else Path(os.path.normpath(root / p))


def _benchmarks_dir(root: Path, setting: str | None) -> Path:
    """The config's folder, else $LMNAS_BENCHMARKS_DIR, else ../shared/benchmarks beside the repo
    (the config's root, which is where the Snakefile is, installed package or not)."""
    from lmnas.nas_tables import ENV_VAR

    return _resolve_path(root, setting or os.environ.get(ENV_VAR) or "../shared/benchmarks")


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
