"""The statistics every benchmark reports, one definition each: percentiles, medians, ratios and the
range of a ratio over repeated runs.

Percentiles interpolate linearly between the two nearest ranks: ``statistics.quantiles``' "inclusive"
method, numpy's default, which puts p0 at the smallest value and p100 at the largest. p99 of 200
latencies is thus 1% of the way from the 198th smallest to the 199th, and p99 of 100,000 lies within
two neighbouring samples, so the definition matters only for small samples.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p999": 0.999}
_STEPS = 1000  # quantiles are cut in 0.1% steps: every share in PERCENTILES is one of them


def percentiles(values: Iterable[float], shares: Mapping[str, float] = PERCENTILES) -> dict[str, float]:
    """Each named share's percentile of ``values`` (shares in 0.1% steps); NaN for no values."""
    ordered = sorted(values)
    if len(ordered) < 2:
        only = ordered[0] if ordered else float("nan")
        return dict.fromkeys(shares, only)
    cuts = [ordered[0], *statistics.quantiles(ordered, n=_STEPS, method="inclusive"), ordered[-1]]
    result = {}
    for name, share in shares.items():
        step = round(share * _STEPS)
        if abs(step - share * _STEPS) > 1e-9:
            raise ValueError(f"{name}: {share} is not a multiple of 1/{_STEPS}")
        result[name] = cuts[step]
    return result


def distribution(values: Iterable[float]) -> dict[str, float]:
    """How many values there are, the smallest, ``PERCENTILES`` and the largest."""
    ordered = sorted(values)
    return {
        "samples": len(ordered),
        "min": ordered[0] if ordered else float("nan"),
        **percentiles(ordered),
        "max": ordered[-1] if ordered else float("nan"),
    }


def median(values: Iterable[float]) -> float:
    """The middle value, or the mean of the two in the middle of an even number of values."""
    return statistics.median(values)


def median_of(runs: Iterable[Mapping[str, Any]], key: str) -> float:
    """The ``median`` of ``key`` over ``runs``."""
    return median(run[key] for run in runs)


def ratio(part: float, whole: float) -> float:
    """``part / whole``; NaN when ``whole`` is 0."""
    return part / whole if whole else float("nan")


def per_repeat(
    runs: Sequence[Mapping[str, Any]], others: Sequence[Mapping[str, Any]], key: str
) -> list[float]:
    """``key`` of each run over that of ``others``' run in the same repeat (runs that followed each other
    within seconds)."""
    return [ratio(a[key], b[key]) for a, b in zip(runs, others, strict=False) if b[key]]


def span(values: Sequence[float]) -> tuple[float, float] | None:
    """The smallest and largest of ``values``; ``None`` for fewer than two, which make no range."""
    return (min(values), max(values)) if len(values) > 1 else None
