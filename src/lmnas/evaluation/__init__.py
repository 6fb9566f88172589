"""Evaluators, registered by name: `EVALUATORS.create(name, **settings)`."""

from lmnas.evaluation.base import EvalResult, Evaluator
from lmnas.registry import Registry, import_submodules

EVALUATORS: Registry[Evaluator] = Registry("evaluator")

import_submodules(__name__, __path__)

__all__ = ["EVALUATORS", "EvalResult", "Evaluator"]
