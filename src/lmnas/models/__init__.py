"""Network measurements shared by every space."""

from lmnas.models.measure import count_macs, count_params, measure

__all__ = ["count_macs", "count_params", "measure"]
