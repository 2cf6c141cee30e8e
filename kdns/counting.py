"""Counters cheap enough for the hot path: a histogram is a list of bucket counts and a sum.

The Prometheus exposition reads these at scrape time (``kdns.ops.metrics``); nothing here takes a lock,
formats a label or allocates per observation.
"""

from __future__ import annotations

from bisect import bisect_left

# CoreDNS's request duration buckets: 0.25 ms doubling to 8.192 s
DURATION_BOUNDS = tuple(0.00025 * 2**i for i in range(16))
# CoreDNS's DNS programming latency buckets: 1 ms doubling to 524 s
PROGRAMMING_BOUNDS = tuple(0.001 * 2**i for i in range(20))
# CoreDNS's request and response size buckets, in bytes
SIZE_BOUNDS = (0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3, 64e3)


class Histogram:
    __slots__ = ("bounds", "buckets", "sum")

    def __init__(self, bounds: tuple[float, ...] = DURATION_BOUNDS) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float, times: int = 1) -> None:
        self.buckets[bisect_left(self.bounds, value)] += times
        self.sum += value * times

    def merge(self, other: Histogram) -> None:
        for i, count in enumerate(other.buckets):
            self.buckets[i] += count
        self.sum += other.sum

    @property
    def count(self) -> int:
        return sum(self.buckets)

    def cumulative(self) -> list[tuple[str, int]]:
        """``(upper bound, count of observations at or below it)`` pairs, as Prometheus wants them."""
        total, pairs = 0, []
        for bound, count in zip((*(repr(b) for b in self.bounds), "+Inf"), self.buckets, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


class Sizes:
    """The sizes of queries and of their responses, in bytes (CoreDNS's buckets)."""

    __slots__ = ("requests", "responses")

    def __init__(self) -> None:
        self.requests = Histogram(SIZE_BOUNDS)
        self.responses = Histogram(SIZE_BOUNDS)

    def observe(self, request: int, response: int) -> None:
        self.requests.observe(request)
        self.responses.observe(response)

    def merge(self, other: Sizes) -> None:
        self.requests.merge(other.requests)
        self.responses.merge(other.responses)
