"""`dvc exp run -S seed=2` (the short form) edits config/config.yaml, the one config, and only the
line of the value it sets: params.yaml, DVC's default params file, is a link to it, and the config
is written the way DVC's YAML round trip writes it (comments kept, no re-wrapping, re-quoting)."""

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config/config.yaml"


def test_params_yaml_is_the_config():
    link = REPO / "params.yaml"
    assert link.is_symlink() and os.readlink(link) == "config/config.yaml"
    assert link.read_bytes() == CONFIG.read_bytes()


def changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


@pytest.mark.parametrize("override,lines", [
    ("seed=2", ["-seed: 0", "+seed: 2"]),
    ("search.budget.evaluations=10", ["-  budget: {evaluations: 40, wall_time_s: null}",
                                      "+  budget: {evaluations: 10, wall_time_s: null}"]),
    ("retrain.recipe.epochs=3", ["-    epochs: 15", "+    epochs: 3"]),
])
def test_dvc_set_param_changes_only_the_line_it_sets(tmp_path, override, lines):
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` calls on the params file

    copy = tmp_path / "config.yaml"
    shutil.copy(CONFIG, copy)
    apply_overrides(copy, [override])
    assert changed_lines(CONFIG.read_text(), copy.read_text()) == lines


@pytest.mark.slow
def test_dvc_exp_run_short_form_reaches_the_stage(tmp_path):
    """A real `dvc exp run -S seed=2` in a git repository holding the config, the link and a stage
    that reads `seed` from config/config.yaml, as every stage of dvc.yaml does."""
    (tmp_path / "config").mkdir()
    shutil.copy(CONFIG, tmp_path / "config/config.yaml")
    os.symlink("config/config.yaml", tmp_path / "params.yaml")
    show = "import yaml; print(yaml.safe_load(open('config/config.yaml'))['seed'])"
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"show": {
        "cmd": f'{sys.executable} -c "{show}" > seed.txt',
        "params": [{"config/config.yaml": ["seed"]}], "outs": ["seed.txt"]}}}))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    dvc = [sys.executable, "-m", "dvc"]

    def run(*cmd):
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, (cmd, out.stdout, out.stderr)
        return out

    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    run(*dvc, "config", "core.analytics", "false")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "init")
    run(*dvc, "exp", "run", "-S", "seed=2")
    assert (tmp_path / "seed.txt").read_text().strip() == "2"
    assert (tmp_path / "params.yaml").is_symlink()
    assert changed_lines(CONFIG.read_text(), (tmp_path / "config/config.yaml").read_text()) == ["-seed: 0", "+seed: 2"]
