"""lmnas: reproducible neural architecture search guided by language models."""

__version__ = "0.1.0"
