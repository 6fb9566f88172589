"""The registries' catalog (lmnas.catalog): the same names and settings as the registries, kept per
code version, and what the workflow asks at every start without importing torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

from lmnas import catalog as catalog_module
from lmnas.catalog import KINDS, cache_dir, catalog
from lmnas.evaluation import EVALUATORS
from lmnas.identity import code_version
from lmnas.spaces import SPACES
from lmnas.strategies import STRATEGIES

REPO = Path(__file__).resolve().parents[1]
REGISTRIES = {"space": SPACES, "strategy": STRATEGIES, "evaluator": EVALUATORS}


def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    catalog_module._snapshot.cache_clear()


def test_the_catalog_is_the_registries(monkeypatch, tmp_path):
    fresh(monkeypatch, tmp_path)
    for kind in KINDS:
        view, registry = catalog(kind), REGISTRIES[kind]
        assert view.names() == registry.names() and view.kind == registry.kind
        for name in registry.names():
            assert view.accepted_settings(name) == registry.accepted_settings(name)
    assert (tmp_path / "lmnas" / f"registries-{code_version()}.json").is_file()
    catalog_module._snapshot.cache_clear()


def test_a_damaged_snapshot_is_rebuilt_and_errors_read_as_the_registrys(monkeypatch, tmp_path):
    fresh(monkeypatch, tmp_path)
    path = cache_dir() / f"registries-{code_version()}.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"space": ')  # a half-written file from a killed job
    view = catalog("strategy")
    assert view.names() == STRATEGIES.names()
    assert json.loads(path.read_text())["strategy"]["settings"]["ga"] == STRATEGIES.accepted_settings("ga")
    for call in (lambda r: r.accepted_settings("nope"), lambda r: r.check_settings("ga", {"nope": 1})):
        messages = []
        for registry in (view, STRATEGIES):
            try:
                call(registry)
            except Exception as error:  # noqa: BLE001 (both must raise the same error)
                messages.append((type(error), str(error)))
        assert len(messages) == 2 and messages[0] == messages[1], messages
    catalog_module._snapshot.cache_clear()


def test_the_workflow_checks_a_config_without_importing_torch(tmp_path):
    """What common.smk runs at every snakemake start (and every SLURM job): no registry, no torch."""
    code = (
        "import sys; from pathlib import Path\n"
        "from lmnas.config import load_yaml, resolve\n"
        "from lmnas.search import wiring\n"
        f"config = load_yaml({str(REPO / 'config' / 'config.yaml')!r})\n"
        f"resolve(config, Path({str(REPO)!r}), source='config')\n"
        "assert wiring.reads_data(config['search']['evaluator'])\n"
        "wiring.needs_archgpt(config['search']['strategy'])\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith('lmnas.spaces'))\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    warm = "from lmnas.catalog import catalog; catalog('space')"  # the first start of this code version
    for source in (warm, code):
        run = subprocess.run([sys.executable, "-c", source], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
