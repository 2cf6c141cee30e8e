"""The cache of forwarded answers (CoreDNS's ``cache``), on cachetools' time-aware LRU.

Positive answers live for their smallest TTL, negative ones for their SOA's negative TTL (RFC 2308
section 5), SERVFAIL briefly; each capped and floored by the settings. Served answers, the first one
included (as CoreDNS's cache caps it), carry every record's TTL counted down to what remains,
re-packed at most once a second. With ``serve_stale`` an
expired answer is kept that much longer, to answer (with TTL 0) when every upstream fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dnslib
from cachetools import TLRUCache

from kdns.codes import NOERROR, NXDOMAIN, OPT, SERVFAIL, SOA
from kdns.config import CacheSettings
from kdns.wire.packed import Packed


class Entry:
    """One cached answer: packed once, re-packed with a lower TTL as it ages."""

    __slots__ = ("_second", "_view", "expires", "keep_until", "packed", "stored", "ttl")

    def __init__(self, packed: Packed, ttl: int, now: float, stale: float) -> None:
        self.packed, self.ttl, self.stored = packed, ttl, now
        self.expires = now + ttl
        self.keep_until = self.expires + stale
        self._second = -1
        self._view = packed

    def view(self, now: float) -> Packed:
        remaining = max(0, self.ttl - int(now - self.stored))  # whole seconds gone, no float error
        if remaining != self._second:
            self._second = remaining
            self._view = self.packed.with_ttl(remaining)
        return self._view


def _expiry(key: bytes, entry: Entry, now: float) -> float:
    return entry.keep_until


class ResponseCache:
    def __init__(self, settings: CacheSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.success: TLRUCache = TLRUCache(settings.success_capacity, _expiry, timer=clock)
        self.denial: TLRUCache = TLRUCache(settings.denial_capacity, _expiry, timer=clock)
        self.hits = {"success": 0, "denial": 0}
        self.misses = 0
        self.stale_hits = 0

    def get(self, key: bytes) -> Packed | None:
        """A fresh answer, TTLs counted down; ``None`` on a miss or an expired entry."""
        now = self.clock()
        for kind, table in (("success", self.success), ("denial", self.denial)):
            entry = table.get(key)
            if entry is not None and now < entry.expires:
                self.hits[kind] += 1
                return entry.view(now)
        self.misses += 1
        return None

    def stale(self, key: bytes) -> Packed | None:
        """An expired answer still within ``serve_stale``, with TTL 0 (for when upstreams fail)."""
        for table in (self.success, self.denial):
            entry = table.get(key)
            if entry is not None:
                self.stale_hits += 1
                return entry.packed.with_ttl(0)
        return None

    def put(self, key: bytes, packed: Packed, record: dnslib.DNSRecord) -> Packed:
        """Keep ``packed`` (made from the upstream ``record``) for as long as its TTLs allow; return
        it as the client gets it (its TTLs those of the cache), or unchanged when it is not kept."""
        rcode = record.header.rcode
        settings = self.settings
        if rcode == SERVFAIL:
            if settings.servfail_ttl:
                return self._store(self.denial, key, packed, settings.servfail_ttl)
            return packed
        if rcode not in (NOERROR, NXDOMAIN):
            return packed
        if rcode == NOERROR and record.rr:
            # an answer of nothing but OPT records (no server should send one) is kept briefly
            ttls = (rr.ttl for rr in (*record.rr, *record.auth) if rr.rtype != OPT)
            ttl = min(ttls, default=settings.min_ttl)
            return self._store(self.success, key, packed, _clamp(ttl, settings.min_ttl, settings.success_ttl))
        soa = next((rr for rr in record.auth if rr.rtype == SOA), None)
        ttl = min(soa.ttl, soa.rdata.times[-1]) if soa is not None else settings.min_ttl
        return self._store(self.denial, key, packed, _clamp(ttl, settings.min_ttl, settings.denial_ttl))

    def _store(self, table: TLRUCache, key: bytes, packed: Packed, ttl: int) -> Packed:
        if not table.maxsize:  # CoreDNS's 'success 0' or 'denial 0': that kind is not cached
            return packed
        now = self.clock()
        entry = table[key] = Entry(packed, ttl, now, self.settings.serve_stale)
        return entry.view(now)

    def __len__(self) -> int:
        return len(self.success) + len(self.denial)

    def clear(self) -> None:
        self.success.clear()
        self.denial.clear()


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))
