"""Which lmnas code a workflow stage runs: the top-level packages its script imports, transitively.

Read from the source (ast), not from a hand-kept list, so a new import is a new dependency
without anyone remembering it. The unit is a top-level entry of the lmnas package (a
sub-package folder such as `spaces` or a module such as `retrain.py`): registries import their
members by package, and prompt/schema files are read as package data, so a package counts
whole. Imports anywhere in a module count (also the lazy ones inside functions), as do
`resources.files("lmnas.x")` strings. The result feeds both the Snakemake code-version param
(`lmnas.identity.code_version`) and the DVC code deps (`lmnas.dvcgen`).
"""

from __future__ import annotations

import ast
import os
import re
from functools import lru_cache
from pathlib import Path

import lmnas

_PACKAGE_STRING = re.compile(r"^lmnas(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def lmnas_root() -> Path:
    return Path(lmnas.__file__).resolve().parent


def _entry(dotted: str, root: Path) -> str | None:
    """`lmnas.spaces.base` → "spaces"; `lmnas.retrain` → "retrain.py"; `lmnas` → None."""
    parts = dotted.split(".")
    if parts[0] != "lmnas" or len(parts) < 2:
        return None
    name = parts[1]
    if (root / name).is_dir():
        return name
    if (root / f"{name}.py").is_file():
        return f"{name}.py"
    return None


def _imports(path: Path, root: Path) -> set[str]:
    """Top-level lmnas entries one Python file names (imports and `lmnas.x` package strings)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from lmnas import corpus` names the module lmnas.corpus
            if node.module == "lmnas":
                names.update(f"lmnas.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _PACKAGE_STRING.match(node.value):
            names.add(node.value)
        elif _is_package_data(node):  # resources.files("lmnas") / "prompts"
            names.add(f"lmnas.{node.right.value}")
    return {entry for name in names if (entry := _entry(name, root)) is not None}


def _is_package_data(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
        and isinstance(node.left, ast.Call) and getattr(node.left.func, "attr", getattr(node.left.func, "id", None)) == "files"
        and [getattr(a, "value", None) for a in node.left.args] == ["lmnas"]
        and isinstance(node.right, ast.Constant) and isinstance(node.right.value, str)
    )


def _files(entry: str, root: Path) -> list[Path]:
    target = root / entry
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


@lru_cache(maxsize=None)
def code_packages(script: str | os.PathLike[str]) -> tuple[str, ...]:
    """The lmnas entries `script` depends on, sorted; always includes the package's own
    `__init__.py` (imported first by every `import lmnas.x`)."""
    root = lmnas_root()
    todo = sorted(_imports(Path(script), root))
    seen: set[str] = set()
    while todo:
        entry = todo.pop()
        if entry in seen:
            continue
        seen.add(entry)
        for file in _files(entry, root):
            todo.extend(_imports(file, root) - seen)
    return tuple(sorted(seen | {"__init__.py"}))
