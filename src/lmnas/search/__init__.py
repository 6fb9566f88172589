"""Run a search: space × strategy × evaluator under a budget, with a resumable journal."""

from lmnas.search.request import SearchRequest, search
from lmnas.search.runner import Budget, run_search

__all__ = ["Budget", "SearchRequest", "run_search", "search"]
