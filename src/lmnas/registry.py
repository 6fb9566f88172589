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
        """Build by name; settings that the factory does not take are a clear error, not a TypeError."""
        factory = self.get(name)
        try:
            inspect.signature(factory).bind(**kwargs)
        except TypeError as exc:
            accepted = [p for p in inspect.signature(factory).parameters if p not in ("self", "kwargs")]
            raise LmnasError(f"{self.kind} {name!r}: {exc}; accepted settings: {accepted}") from None
        return factory(**kwargs)

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
