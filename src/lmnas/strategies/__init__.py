"""Search strategies, registered by name: `create_strategy(name, space=..., seed=..., **settings)`."""

from lmnas.errors import LmnasError
from lmnas.registry import Registry
from lmnas.strategies.base import Strategy

STRATEGIES: Registry[Strategy] = Registry("strategy")

from lmnas.strategies import ga, ga_gpt, random_search  # noqa: E402,F401

__all__ = ["STRATEGIES", "Strategy", "create_strategy"]


def create_strategy(name: str, **settings: object) -> Strategy:
    try:
        return STRATEGIES.create(name, **settings)
    except TypeError as exc:  # unknown or missing settings keys
        raise LmnasError(f"search.strategy ({name}): {exc}") from None
