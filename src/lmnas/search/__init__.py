"""Run a search: space × strategy × evaluator under a budget, with a resumable journal
(`lmnas.search.request.search`, `lmnas.search.runner.run_search`). Nothing is imported here, so the
workflow's wiring (`lmnas.search.wiring`) loads without the registries and torch."""
