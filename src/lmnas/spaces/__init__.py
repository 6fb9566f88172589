"""Search spaces, registered by name: `SPACES.create(name, **settings)`."""

from lmnas.registry import Registry
from lmnas.spaces.base import Genotype, SearchSpace

SPACES: Registry[SearchSpace] = Registry("search space")

# Importing the modules registers them.
from lmnas.spaces import gptnas_blocks  # noqa: E402,F401

__all__ = ["SPACES", "Genotype", "SearchSpace", "create_space"]


def create_space(name: str, **settings: object) -> SearchSpace:
    from lmnas.errors import LmnasError

    try:
        return SPACES.create(name, **settings)
    except TypeError as exc:  # unknown or missing settings keys
        raise LmnasError(f"search.space ({name}): {exc}") from None
