"""Zero-cost proxies, registered by name: a score of an untrained network, computed in milliseconds.

`PROXIES.create(name)` gives a `Proxy`; `score_genotype(proxy, space, genotype, ...)` builds the
space's network at a fixed per-genotype init and scores it. Data-free proxies (synflow, zen) see
no data; minibatch ones (naswot, grad_norm, snip) see one `ProxyBatch` (the search's own data,
or seeded Gaussian noise where there is none). `lmnas.proxies.cache` keeps a table per space.
"""

from lmnas.registry import Registry, import_submodules
from lmnas.proxies.base import Proxy, ProxyBatch, score_genotype
from lmnas.proxies.batch import make_batch

PROXIES: Registry[Proxy] = Registry("proxy")

import_submodules(__name__, __path__)

__all__ = ["PROXIES", "Proxy", "ProxyBatch", "make_batch", "score_genotype"]
