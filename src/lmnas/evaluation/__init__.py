"""Evaluators, registered by name: `EVALUATORS.create(name, **settings)`."""

from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.registry import Registry

EVALUATORS: Registry[Evaluator] = Registry("evaluator")

from lmnas.evaluation import proxy  # noqa: E402,F401  (registers "proxy")

__all__ = ["EVALUATORS", "EvalResult", "Evaluator"]
