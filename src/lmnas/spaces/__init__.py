"""Search spaces, registered by name: `SPACES.create(name, **settings)`."""

from lmnas.registry import Registry, import_submodules
from lmnas.spaces.base import Genotype, SearchSpace

SPACES: Registry[SearchSpace] = Registry("search space")

import_submodules(__name__, __path__)

__all__ = ["SPACES", "Genotype", "SearchSpace", "create_space"]


create_space = SPACES.create
