"""Numbers as the HTML reports print them (kept free of heavy imports: the user-study report
runs without torch)."""

from __future__ import annotations

import html
import math


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for the tables ("–" when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value: three decimals, or "<0.001"."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def cluster_number(index: int) -> int:
    """How every view (explanation report, label report, naming studio, explanation pages) numbers
    the INV cluster stored at ``index`` of its layer: from 1, heaviest first (index 0 is cluster 1)."""
    return int(index) + 1


def breakable_name(name: str) -> str:
    """A layer name as escaped HTML that may wrap after its dots (``<wbr>``), never inside a word,
    so a narrow column shows ``features.`` / ``block4.`` / ``conv3`` instead of single letters."""
    return ".<wbr>".join(html.escape(part) for part in str(name).split("."))
