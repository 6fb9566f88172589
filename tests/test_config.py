import json
import re
from pathlib import Path

import pytest

from lmnas.config import load_yaml, merge, resolve
from lmnas.errors import LmnasError

REPO = Path(__file__).resolve().parents[1]


def default_config():
    return load_yaml(REPO / "config" / "config.yaml")


def test_default_config_is_valid():
    cfg = resolve(default_config(), REPO)
    assert cfg.run_name == "default"
    assert cfg.results_dir == Path("results/default")


@pytest.mark.parametrize("paper", sorted((REPO / "config" / "paper").glob("*.yaml")), ids=lambda p: p.name)
def test_paper_configs_merge_into_valid_configs(paper, tmp_path):
    paper_values = load_yaml(paper)
    merged = merge(default_config(), paper_values)
    # Paper configs point at real datasets that are not on this machine: only the schema is checked.
    from lmnas.config import validate

    validate(merged, str(paper))

    def leaves(tree, path=()):
        for k, v in tree.items():
            yield from leaves(v, path + (k,)) if isinstance(v, dict) else [(path + (k,), v)]

    def at(tree, path):
        for k in path:
            tree = tree[k]
        return tree

    # every value the paper config sets is the merged config's value (nothing dropped or shadowed)
    for path, value in leaves(paper_values):
        assert at(merged, path) == value, ".".join(map(str, path))


def test_negative_population_names_the_field():
    config = default_config()
    config["search"]["options"]["ga-gpt"]["population"] = -3
    with pytest.raises(LmnasError, match=r"search\.options\.ga-gpt\.population: -3 is less than the minimum of 2"):
        resolve(config, REPO)


def test_bad_enum_lists_allowed_values():
    config = default_config()
    config["datasets"]["digits04"]["source"] = "mnist"
    with pytest.raises(LmnasError, match=r"datasets\.digits04\.source: 'mnist' is not allowed; allowed values: \['digits'"):
        resolve(config, REPO)


def test_unknown_key_lists_allowed_keys():
    config = default_config()
    config["retrain"]["recipe"]["epoch"] = 3
    with pytest.raises(LmnasError, match=r"retrain\.recipe: .*'epoch'.*allowed keys"):
        resolve(config, REPO)


def test_undefined_dataset_reference():
    config = default_config()
    config["transfer"]["dataset"] = "cifar10"
    with pytest.raises(LmnasError, match=r"transfer\.dataset: 'cifar10' is not defined"):
        resolve(config, REPO)


def test_missing_dataset_root_names_the_path(tmp_path):
    config = default_config()
    config["datasets"]["cifar"] = {"source": "cifar10", "root": str(tmp_path / "nowhere"), "download": False}
    with pytest.raises(LmnasError, match=r"datasets\.cifar\.root: dataset folder not found: .*nowhere"):
        resolve(config, REPO)


def test_missing_corpus_file_without_fallback(tmp_path):
    config = default_config()
    config["corpus"]["nasbench101"] = {"path": str(tmp_path / "nb101.json"), "generate_if_missing": 0}
    with pytest.raises(LmnasError, match=r"corpus\.nasbench101\.path: file not found: .*nb101\.json"):
        resolve(config, REPO)


def test_merge_is_deep():
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}


def test_unknown_strategy_lists_registered_ones():
    config = default_config()
    config["search"]["strategy"] = "simulated-annealing"
    with pytest.raises(LmnasError, match=r"search\.strategy: 'simulated-annealing' is not allowed; allowed values: \[.*'ga'"):
        resolve(config, REPO)


def test_settings_the_factory_does_not_take_are_named():
    config = default_config()
    config["search"]["options"]["ga-gpt"]["populaton"] = 5
    with pytest.raises(LmnasError, match=r"search\.options\.ga-gpt: .*'populaton'"):
        resolve(config, REPO)


def test_switching_space_in_an_override_ignores_the_other_spaces_options():
    override = {"search": {"space": "nas-bench-201", "strategy": "regularized-evolution", "evaluator": "table"},
                "retrain": {"enabled": False}}
    config = merge(default_config(), override)
    assert config["search"]["options"]["gptnas-blocks"]  # the default space's options are still there...
    cfg = resolve(config, REPO)  # ...and ignored: they do not fit nas-bench-201, yet nothing is refused
    search = cfg.raw["search"]
    assert (search["space"], search["strategy"], search["evaluator"]) == ("nas-bench-201", "regularized-evolution", "table")
    assert cfg.raw["retrain"]["enabled"] is False
    # the selected names' own options are still checked
    bad = merge(config, {"search": {"options": {"regularized-evolution": {"populaton": 5}}}})
    with pytest.raises(LmnasError, match=r"search\.options\.regularized-evolution: .*'populaton'"):
        resolve(bad, REPO)


def test_options_for_unregistered_names_are_rejected():
    config = default_config()
    config["search"]["options"]["nas-bench-999"] = {}
    with pytest.raises(LmnasError, match=r"search\.options\.nas-bench-999: not a registered"):
        resolve(config, REPO)


# config/README.md: one `## ` section per config section, each with a key table (first column).
CONFIG_README = REPO / "config" / "README.md"
SCHEMA = json.loads((REPO / "src" / "lmnas" / "schemas" / "config.schema.json").read_text())


def _schema_node(ref_or_node: dict) -> dict:
    ref = ref_or_node.get("$ref")
    return SCHEMA["$defs"][ref.rsplit("/", 1)[1]] if ref else ref_or_node


def _readme_tables() -> dict[str, list[str]]:
    """Section heading → the backticked keys of its table's first column."""
    tables: dict[str, list[str]] = {}
    for section in CONFIG_README.read_text().split("\n## ")[1:]:
        heading, body = section.split("\n", 1)
        tables[heading.strip()] = re.findall(r"^\| `([^`]+)` \|", body, re.M)
    return tables


def _readme_sections() -> dict[str, tuple[dict, list[str]]]:
    """Section heading → (the schema nodes it describes, its documented keys)."""
    props, defs = SCHEMA["properties"], SCHEMA["$defs"]
    nodes = {"Top level": [SCHEMA], "`datasets`": [defs["dataset"]], "Training recipe": [defs["recipe"]],
             "`resources`": [defs["resources"], defs["multinode_resources"]]}
    nodes |= {f"`{name}`": [props[name]] for name in ("corpus", "archgpt", "search", "retrain", "transfer", "trials")}
    tables = _readme_tables()
    assert set(tables) == set(nodes), f"config/README.md sections {sorted(tables)}, expected {sorted(nodes)}"
    return {heading: (nodes[heading], tables[heading]) for heading in nodes}


def _has_key(node: dict, dotted: str) -> bool:
    for part in dotted.split("."):
        node = _schema_node(node).get("properties", {}).get(part)
        if node is None:
            return False
    return True


def test_config_readme_names_every_top_level_section():
    tables = _readme_tables()
    documented = set(tables["Top level"]) | {h.strip("`") for h in tables if h.startswith("`")}
    missing = set(SCHEMA["properties"]) - documented
    assert not missing, f"config/README.md does not describe the config sections {sorted(missing)}"


def test_config_readme_keys_are_the_schema_keys():
    """Every key of a described section is in its table (itself or a dotted sub-key), and every key
    in a table is in the schema: the README stays true when the schema changes."""
    for heading, (nodes, keys) in _readme_sections().items():
        stale = [key for key in keys if not any(_has_key(node, key) for node in nodes)]
        assert not stale, f"config/README.md, {heading}: keys not in the schema: {stale}"
        if heading == "Top level":
            continue  # the object sections have sections of their own
        schema_keys = {k for node in nodes for k in node.get("properties", {})}
        undocumented = {k for k in schema_keys if not any(key == k or key.startswith(f"{k}.") for key in keys)}
        assert not undocumented, f"config/README.md, {heading}: schema keys not described: {sorted(undocumented)}"
