"""Search strategies, registered by name: `create_strategy(name, space=..., seed=..., **settings)`."""

from lmnas.registry import Registry, import_submodules
from lmnas.strategies.base import Strategy

STRATEGIES: Registry[Strategy] = Registry("strategy")

import_submodules(__name__, __path__)

__all__ = ["STRATEGIES", "Strategy", "create_strategy"]


create_strategy = STRATEGIES.create
