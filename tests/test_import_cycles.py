"""No import circles in lmnas: a module, or a sub-package as a whole, never imports (directly or
through others) what imports it. Module-level imports are what runs on import; imports inside
functions and under TYPE_CHECKING are also counted between modules, since a circle there is the
same knot for a reader, only deferred."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in (SRC / "lmnas").rglob("*.py"):
        parts = f.relative_to(SRC).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def _graph(mods: dict[str, Path], lazy: bool) -> dict[str, set[str]]:
    """Module → the lmnas modules it imports (a submodule importing its own package is not counted:
    Python runs the package's __init__ first anyway)."""

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, f in mods.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for top in ast.parse(f.read_text()).body:
            if isinstance(top, ast.If) and not lazy:
                continue  # `if TYPE_CHECKING:` blocks do not run
            for node in ast.walk(top) if lazy else [top]:
                if isinstance(node, ast.Import):
                    targets.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                        base = ".".join(up + ([node.module] if node.module else []))
                    targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names)
        deps = {resolve(t) for t in targets if t.startswith("lmnas")}
        graph[name] = {d for d in deps if d and d != name and not name.startswith(d + ".")}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph with each lmnas.<sub-package> as one node."""
    top = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    out: dict[str, set[str]] = {}
    for a, deps in graph.items():
        out.setdefault(top(a), set()).update(top(d) for d in deps if top(d) != top(a))
    return out


def test_no_module_imports_itself_back_even_lazily() -> None:
    assert _circles(_graph(_modules(), lazy=True)) == []


def test_no_subpackage_circle_on_import() -> None:
    assert _circles(_packages(_graph(_modules(), lazy=False))) == []


def test_the_circle_finder_finds_one() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
