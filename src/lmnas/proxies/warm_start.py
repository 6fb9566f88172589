"""A zero-cost warm start for any strategy: rank a pool of sampled architectures by a proxy and
let the strategy's random start spend its first queries on the best of them.

`search.warm_start: {proxy: naswot, pool: 1000, top: 10}`: `pool` distinct architectures are drawn
with the search seed (from a generator of their own, so the strategy's random stream is
untouched), scored by the proxy (through the proxy cache: a table computed once serves every
seed), ranked (score, then key: no ties left to chance), and the `top` best become the first
`Strategy.initial_candidates`. The ranking is a deterministic function of the settings and the
seed, so a resumed run recomputes (or re-reads) the same list and replays the same path.

Its cost is kept apart from the evaluation budget: `warm_start.json` beside the journal (CPU
seconds of the scores this run computed, and of all it used, cached ones included); nothing of it
enters the journal or best.json.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.fields import check_keys
from lmnas.io import write_json
from lmnas.proxies.cache import ProxySpec, ProxyTable
from lmnas.spaces.base import Genotype, SearchSpace

STATS = "warm_start.json"
POOL_TRIES = 100  # draws per wanted pool member before a small space is taken as exhausted


@dataclass(frozen=True)
class WarmStart:
    proxy: str
    pool: int = 1000
    top: int = 10
    batch_size: int = 32
    seed: int = 0  # the proxy's seed; the pool is drawn with the search seed
    space_overrides: dict[str, Any] = field(default_factory=dict)
    cache_dir: str | None = "data/cache/proxies"
    data: str | None = None  # the search's prepared dataset (proxy searches); None: noise

    def __post_init__(self) -> None:
        if self.pool < 1 or not 1 <= self.top <= self.pool:
            raise LmnasError(f"search.warm_start: need pool >= 1 and 1 <= top <= pool, got pool {self.pool}, "
                             f"top {self.top}")

    @classmethod
    def from_dict(cls, section: dict[str, Any], data: str | None = None) -> WarmStart:
        check_keys(cls, section, "search.warm_start", noun="settings", internal=("data",))
        if "proxy" not in section:
            raise LmnasError("search.warm_start: missing 'proxy' (a registered proxy: lmnas.proxies.PROXIES)")
        return cls(**section, data=data)

    def spec(self) -> ProxySpec:
        return ProxySpec(self.proxy, batch_size=self.batch_size, seed=self.seed, data=self.data,
                         space_overrides=dict(self.space_overrides))

    def identity(self) -> dict[str, Any]:
        """What the ranking depends on (for the run's fingerprint): not where the cache lives."""
        return {k: v for k, v in asdict(self).items() if k != "cache_dir"}


@dataclass
class Ranked:
    candidates: list[Genotype]  # the top ones, best first
    stats: dict[str, Any]


def draw_pool(space: SearchSpace, size: int, seed: int) -> list[str]:
    """`size` distinct keys in draw order (fewer if the space has fewer)."""
    rng = random.Random(f"lmnas-warm-start/{seed}")
    keys: dict[str, None] = {}
    for _ in range(size * POOL_TRIES):
        if len(keys) == size:
            break
        keys.setdefault(space.key(space.sample(rng)), None)
    return list(keys)


def rank(space: SearchSpace, warm: WarmStart, seed: int, progress: bool = False) -> Ranked:
    start = time.perf_counter()
    keys = draw_pool(space, warm.pool, seed)
    table = ProxyTable(space, warm.spec(), warm.cache_dir)
    scores = table.scores(keys, progress=progress)
    ranked = sorted(keys, key=lambda k: (-scores[k], k))[: warm.top]
    stats = {
        "settings": asdict(warm),
        "seed": seed,
        "pool": len(keys),
        "top": [{"key": k, "score": _json_float(scores[k])} for k in ranked],
        "scored_space": table.space.settings(),
        "cache": str(table.path) if table.path else None,
        "computed": table.computed,
        "from_cache": len(keys) - table.computed,
        "proxy_cpu_s": table.computed_cpu_s,  # spent by this run
        "proxy_cpu_s_all": table.cpu_s(keys),  # of every score used, cached ones at their first cost
        "wall_s": time.perf_counter() - start,
    }
    return Ranked([space.parse(k) for k in ranked], stats)


def warm_start_strategy(strategy: Any, space: SearchSpace, warm: WarmStart, seed: int, out_dir: Path | None,
                        progress: bool = False) -> dict[str, Any]:
    """Rank, hand the top ones to the strategy, write the stats file; returns the stats."""
    if not strategy.warm_startable:
        strategy.set_warm_start([])  # raises the clear refusal before any proxy is computed
    ranked = rank(space, warm, seed, progress=progress)
    strategy.set_warm_start(ranked.candidates)
    if out_dir is not None:
        write_json(Path(out_dir) / STATS, ranked.stats)
    return ranked.stats


def _json_float(value: float) -> float | None:
    return value if value not in (float("inf"), float("-inf")) and value == value else None
