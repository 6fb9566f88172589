"""A proxy table per space: scores computed once, kept as Parquet, resumed where they stopped.

`ProxyTable(space, spec, cache_dir)` answers `scores(keys)`: keys already in the cache file are
read, the others computed (tqdm progress) and appended, the file rewritten atomically every
`flush_every` scores, so a killed computation loses at most that many. The file name carries a
hash of everything a score depends on: the space's settings (with `space_overrides`, e.g. a
narrower NAS-Bench-201 network for speed), the proxy, the sha256 of the batch itself (noise or
the search's data), the proxy seed and the version of the code a score runs (the proxy's own
module, `proxies/base.py` and the spaces package: editing one proxy leaves the others' tables
valid). Another setting is another file, never a mix. Each row also keeps the CPU seconds its
score took, so the cost of a prior is known even when it was paid in an earlier run.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lmnas.errors import LmnasError
from lmnas.io import write_json, write_with
from lmnas.proxies import PROXIES
from lmnas.proxies.base import Proxy, ProxyBatch, score_genotype
from lmnas.proxies.batch import NOISE, make_batch
from lmnas.spaces import create_space
from lmnas.spaces.base import SearchSpace



@dataclass(frozen=True)
class ProxySpec:
    """How one proxy scores architectures of a space (also `search.warm_start`'s proxy part)."""

    proxy: str
    batch_size: int = 32
    seed: int = 0  # the proxy's own seed (init + batch), apart from the search seed: one table serves every seed
    data: str | None = None  # prepared dataset folder; None: seeded noise
    space_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.proxy not in PROXIES:
            raise LmnasError(f"search.warm_start.proxy: unknown proxy {self.proxy!r}; known: {PROXIES.names()}")


def score_code_version(proxy: Proxy) -> str:
    """sha256 (16 hex) of the code one proxy's scores depend on."""
    from lmnas.identity import code_version
    from lmnas.proxies import base

    digest = hashlib.sha256()
    for module in (inspect.getsourcefile(type(proxy)), inspect.getsourcefile(base)):
        digest.update(Path(module).read_bytes())
    digest.update(code_version("spaces").encode())
    return digest.hexdigest()[:16]


def scoring_space(space: SearchSpace, overrides: dict[str, Any]) -> SearchSpace:
    """The space whose networks the proxy scores: the search's, with `overrides` over its settings."""
    if not overrides:
        return space
    settings = {**space.settings(), **overrides}
    return create_space(settings.pop("name"), **settings)


class ProxyTable:
    def __init__(self, space: SearchSpace, spec: ProxySpec, cache_dir: str | Path | None,
                 flush_every: int = 50) -> None:
        self.space = scoring_space(space, spec.space_overrides)
        self.spec = spec
        self.proxy = PROXIES.create(spec.proxy)
        self.flush_every = flush_every
        self._batch: ProxyBatch | None = None
        self.identity = self._identity()
        digest = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(cache_dir) / self.space.name / f"{spec.proxy}-{digest}.parquet" if cache_dir else None
        self.rows: dict[str, tuple[float, float]] = self._read()  # key -> (score, cpu seconds)
        self.computed = 0  # scores computed by this object (not read from the cache)
        self.computed_cpu_s = 0.0

    def _identity(self) -> dict[str, Any]:
        data = NOISE if self.spec.data is None else str(self.spec.data)  # for the reader: the batch hash decides
        return {"space": self.space.settings(), "proxy": self.proxy.settings(), "data": data,
                "batch_size": self.spec.batch_size, "batch_sha256": self.batch().sha256(), "seed": self.spec.seed,
                "code": score_code_version(self.proxy)}

    def _read(self) -> dict[str, tuple[float, float]]:
        if self.path is None or not self.path.exists():
            return {}
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.path).to_pydict()
        except Exception as exc:  # a torn or foreign file: recompute rather than trust it
            raise LmnasError(f"{self.path}: unreadable proxy cache ({exc}); delete it to recompute") from None
        return {k: (s, c) for k, s, c in zip(table["key"], table["score"], table["cpu_s"])}

    def _write(self) -> None:
        if self.path is None:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        keys = sorted(self.rows)
        table = pa.table({"key": keys, "score": [self.rows[k][0] for k in keys],
                          "cpu_s": [self.rows[k][1] for k in keys]})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_with(self.path, lambda tmp: pq.write_table(table, tmp))
        write_json(self.path.with_suffix(".json"), {**self.identity, "spec": asdict(self.spec), "rows": len(keys)})

    def batch(self) -> ProxyBatch:
        if self._batch is None:
            self._batch = make_batch(self.space, self.spec.batch_size, self.spec.seed, self.spec.data)
        return self._batch

    def scores(self, keys: list[str], progress: bool = False) -> dict[str, float]:
        """Score of every key (the search space's canonical keys), computing the missing ones."""
        todo = [k for k in dict.fromkeys(keys) if k not in self.rows]
        if todo:
            batch = self.batch()
            bar = tqdm(todo, desc=f"proxy {self.spec.proxy} on {self.space.name}", unit="arch", disable=not progress)
            try:
                for n, key in enumerate(bar, 1):
                    start = time.process_time()
                    value = score_genotype(self.proxy, self.space, self.space.parse(key), batch, self.spec.seed)
                    cpu_s = time.process_time() - start
                    self.rows[key] = (value, cpu_s)
                    self.computed += 1
                    self.computed_cpu_s += cpu_s
                    if n % self.flush_every == 0:
                        self._write()
            finally:
                bar.close()
                self._write()
        return {k: self.rows[k][0] for k in keys}

    def cpu_s(self, keys: list[str]) -> float:
        """CPU seconds the scores of `keys` took when they were computed (now or in an earlier run)."""
        return sum(self.rows[k][1] for k in dict.fromkeys(keys) if k in self.rows)
