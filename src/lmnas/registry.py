"""Name → factory registries (timm style): a new space/strategy/evaluator/backend is one file."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from lmnas.errors import LmnasError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise LmnasError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = factory
            return factory

        return decorator

    def create(self, name: str, /, **kwargs: object) -> T:
        """Build by name; unknown or missing settings are a clear error, not a TypeError."""
        self.check_settings(name, kwargs)
        missing = [p.name for p in self.parameters(name) if p.default is p.empty and p.name not in kwargs]
        if missing:
            raise LmnasError(f"{self.kind} {name!r}: missing settings {missing}")
        return self.get(name)(**kwargs)

    def parameters(self, name: str) -> list[inspect.Parameter]:
        """Keyword parameters of the factory, following `**kwargs` into base-class __init__s (first wins)."""
        factory = self.get(name)
        chain = [c.__init__ for c in factory.__mro__ if "__init__" in vars(c)] if inspect.isclass(factory) else [factory]
        found: dict[str, inspect.Parameter] = {}
        for function in chain:
            params = inspect.signature(function).parameters.values()
            for p in params:
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                    found.setdefault(p.name, p)
            if not any(p.kind == p.VAR_KEYWORD for p in params):
                break
        return list(found.values())

    def accepted_settings(self, name: str) -> list[str]:
        return [p.name for p in self.parameters(name)]

    def defaults(self, name: str) -> dict[str, object]:
        """The factory's default settings (what an omitted setting means)."""
        return {p.name: p.default for p in self.parameters(name) if p.default is not p.empty}

    def check_settings(self, name: str, settings: dict[str, object]) -> None:
        accepted = self.accepted_settings(name)
        unknown = sorted(set(settings) - set(accepted))
        if unknown:
            raise LmnasError(f"{self.kind} {name!r}: unknown settings {unknown}; accepted settings: {accepted}")

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name]
        except KeyError:
            raise LmnasError(
                f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def import_submodules(package_name: str, package_path: list[str]) -> None:
    """Import every module of a package, so each file's `@register` runs: a new entry is one file."""
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{package_name}.{info.name}")
