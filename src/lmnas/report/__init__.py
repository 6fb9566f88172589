"""The run report: paper-style Markdown tables and plots from every stage's artefacts."""

from lmnas.report.markdown import write_report

__all__ = ["write_report"]
