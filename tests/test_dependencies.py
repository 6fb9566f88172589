"""pyproject's dependency lists match what the code imports (no undeclared, no unused)."""

import ast
import functools
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# Declared for their command-line tools or as plugins, never imported by our code.
TOOLS = {"snakemake", "snakemake-executor-plugin-slurm", "dvc", "pillow"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _optional_imports(tree: ast.AST) -> set[int]:
    """Line numbers of imports guarded by `except ImportError` (optional accelerators)."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            lines |= {n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom)}
    return lines


def third_party_imports(*folders: str) -> dict[str, str]:
    """Top-level module → one file importing it, for imports that are not stdlib, ours or optional."""
    local = {p.stem for folder in folders for p in (REPO / folder).rglob("*.py")} | {"lmnas", "__future__"}
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            optional = _optional_imports(tree)
            for node in ast.walk(tree):
                if getattr(node, "lineno", None) in optional:
                    continue
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in local:
                        found.setdefault(top, str(path.relative_to(REPO)))
    return found


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return packages_distributions()  # scans every installed distribution: once


def _distributions(module: str) -> set[str]:
    return {_name(d) for d in _module_distributions().get(module, [module])}


def test_library_imports_are_runtime_dependencies():
    declared = {_name(d) for d in PYPROJECT["project"]["dependencies"]}
    imports = third_party_imports("src", "workflow/scripts")
    missing = {m: f for m, f in imports.items() if not _distributions(m) & declared}
    assert not missing, f"imported but not in [project].dependencies: {missing}"
    used = set().union(*(_distributions(m) for m in imports))
    assert declared - used - TOOLS == set(), "declared in [project].dependencies but never imported"


def test_test_and_benchmark_imports_are_dev_dependencies():
    declared = {_name(d) for d in PYPROJECT["project"]["dependencies"]}
    declared |= {_name(d) for d in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    imports = third_party_imports("tests", "benchmarks")
    missing = {m: f for m, f in imports.items() if not _distributions(m) & declared}
    assert not missing, f"imported by tests/benchmarks but not declared (add to the dev extra): {missing}"


def _timeout_marks() -> dict[str, object]:
    """`file:line` → the first argument of every `pytest.mark.timeout(...)` in tests/."""
    found = {}
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "timeout"
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "mark"):
                arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "timeout"), None)
                found[f"{path.name}:{node.lineno}"] = arg.value if isinstance(arg, ast.Constant) else arg
    return found


def test_every_test_has_a_timeout(pytestconfig):
    """pytest-timeout is declared and loaded, its default limit is positive, and no test's own
    `@pytest.mark.timeout` switches it off (0 or None) or sets a limit that is not a number."""
    assert "pytest-timeout" in {_name(d) for d in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pytest-timeout is not loaded: no test has a timeout"
    assert float(pytestconfig.getini("timeout")) > 0
    marks = _timeout_marks()
    assert marks, "no @pytest.mark.timeout found: the scan is broken (the chain tests set their own)"
    off = {where: value for where, value in marks.items() if not (isinstance(value, int | float) and value > 0)}
    assert not off, f"tests whose timeout is off or not a positive number: {off}"
