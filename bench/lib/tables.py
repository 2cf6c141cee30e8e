"""Markdown for the sections of bench/README.md: tables, and the formats of figures several reports
share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bench.lib import stats


def table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "lr") -> list[str]:
    """A markdown table's lines: the header, the alignment row and a line per row (cells as ``str``).

    ``align`` has a letter per column, ``l`` (left, for text) or ``r`` (right, for figures), and its
    last letter holds for the columns after it: "lr" (one column of labels, then figures), "llr" (two,
    then figures), "lrrrl" (a column of text at the end)."""
    letters = align + align[-1] * (len(header) - len(align))
    return [
        _line(header),
        "|" + "|".join("---" if letter == "l" else "---:" for letter in letters) + "|",
        *(_line(str(cell) for cell in row) for row in rows),
    ]


def _line(cells: Iterable[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def ms(seconds: float) -> str:
    """Seconds as milliseconds with three decimals."""
    return f"{seconds * 1000:.3f}"


def times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def codes(rcodes: Mapping[str, int]) -> str:
    """Response codes and their counts, the most frequent first; "none" for none."""
    return ", ".join(f"{name} {n:,}" for name, n in sorted(rcodes.items(), key=lambda kv: -kv[1])) or "none"


def span(values: Sequence[float]) -> str:
    """``stats.span``: "0.95 to 1.02", or "n/a" for fewer than two values."""
    bounds = stats.span(values)
    return "n/a" if bounds is None else f"{bounds[0]:.3g} to {bounds[1]:.3g}"
