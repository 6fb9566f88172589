"""Name → factory registries (timm style): a new space/strategy/evaluator/backend is one file."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from lmnas.errors import LmnasError

T = TypeVar("T")


class _Names:
    """Names and accepted settings: what the config check and the workflow's wiring ask of a registry."""

    kind: str

    def names(self) -> list[str]:
        raise NotImplementedError

    def accepted_settings(self, name: str) -> list[str]:
        raise NotImplementedError

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def check_settings(self, name: str, settings: dict[str, object]) -> None:
        accepted = self.accepted_settings(name)
        unknown = sorted(set(settings) - set(accepted))
        if unknown:
            raise LmnasError(f"{self.kind} {name!r}: unknown settings {unknown}; accepted settings: {accepted}")

    def _unknown(self, name: str) -> LmnasError:
        return LmnasError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")


class Catalog(_Names):
    """A registry's names and each factory's accepted settings, without the factories (lmnas.catalog)."""

    def __init__(self, kind: str, settings: dict[str, list[str]]) -> None:
        self.kind = kind
        self._settings = settings

    def names(self) -> list[str]:
        return sorted(self._settings)

    def accepted_settings(self, name: str) -> list[str]:
        if name not in self._settings:
            raise self._unknown(name)
        return list(self._settings[name])


class Registry(_Names, Generic[T]):
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

    def catalog(self) -> dict[str, list[str]]:
        return {name: self.accepted_settings(name) for name in self.names()}

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name]
        except KeyError:
            raise self._unknown(name) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def import_submodules(package_name: str, package_path: list[str]) -> None:
    """Import every module of a package, so each file's `@register` runs: a new entry is one file."""
    for info in pkgutil.iter_modules(package_path):
        if not info.name.startswith("_") and info.name != "base":
            importlib.import_module(f"{package_name}.{info.name}")
