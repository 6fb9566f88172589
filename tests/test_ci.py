"""CI runs what the README says it runs, and that command lints the workflow."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    text = (REPO / "README.md").read_text()
    intro = text.index("Run the tests (what CI runs, `.ci/run`")
    block = re.search(r"```bash\n(.+?)\n```", text[intro:], re.S)
    assert block, "README: no bash block after 'Run the tests'"
    return block.group(1).strip()


def ci_command() -> str:
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    return lines[-1].strip()  # the command itself; the lines before set the shell up


def test_ci_runs_exactly_the_readme_test_command():
    assert ci_command() == readme_test_command()


def test_the_ci_command_lints_and_checks_the_format_before_the_tests():
    steps = [step.strip() for step in ci_command().split("&&")]
    for step in ("snakemake --lint", "snakefmt --check Snakefile workflow"):
        assert step in steps, f".ci/run: {step!r} is not a step of {steps}"
        pytest_step = next(i for i, s in enumerate(steps) if s.split()[0] == "pytest")
        assert steps.index(step) < pytest_step, f".ci/run: {step!r} runs after pytest"
