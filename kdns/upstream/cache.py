"""The cache of forwarded answers (CoreDNS's ``cache``), on cachetools' time-aware LRU.

Positive answers live for their smallest TTL, negative ones for their SOA's negative TTL (RFC 2308
section 5), SERVFAIL briefly; each capped and floored by the settings. Served answers, the first one
included (as CoreDNS's cache caps it), carry every record's TTL counted down to what remains,
re-packed at most once a second; with ``keep_ttl`` they carry the TTL they were stored with. Answers
of a kind ``disable``d for the name's zone are not kept. An answer an ExternalName's chase builds on
keeps the upstream's record too (``kept_record``), counted down as the answer is.

With ``serve_stale`` an expired answer is kept that much longer: ``immediate`` (CoreDNS's default)
answers with it at once (TTL 0) and has it refreshed in the background; ``stale_verify`` answers
with it only when every upstream fails (the forwarder asks ``stale``). With ``prefetch`` an entry
asked ``prefetch`` times, no two queries further apart than ``prefetch_window``, is refreshed in the
background once no more than ``prefetch_percentage`` of its TTL is left; the refreshed entry keeps
the count. Refreshing is the ``refresher``'s work (the forwarder's); only answers to the question
cached (``put`` with ``refreshable``) are refreshed, and without a refresher nothing is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import dnslib
from cachetools import TLRUCache

from kdns.codes import NOERROR, NXDOMAIN, OPT, RCODE_MASK, SERVFAIL, SOA
from kdns.config import CacheSettings
from kdns.wire.packed import Packed
from kdns.wire.pending import forwarded_question
from kdns.zone.names import is_within, to_wire

Refresher = Callable[[bytes], bool]  # asks upstream again for a cache key's question; False: not now


class Entry:
    """One cached answer: packed once, re-packed with a lower TTL as it ages."""

    __slots__ = (
        "_second",
        "_view",
        "expires",
        "keep_until",
        "last_hit",
        "packed",
        "record",
        "refresh_from",
        "refreshable",
        "stored",
        "streak",
        "ttl",
    )

    def __init__(self, packed: Packed, ttl: int, now: float, stale: float, *, refreshable: bool) -> None:
        self.packed, self.ttl, self.stored = packed, ttl, now
        self.expires = now + ttl
        self.keep_until = self.expires + stale
        self.refreshable = refreshable
        self.refresh_from = math.inf  # when a popular entry is prefetched
        self.streak, self.last_hit = 0, -math.inf  # queries with no gap over the prefetch window
        self._second = -1
        self._view = packed
        self.record: dnslib.DNSRecord | None = None  # the upstream's record, when kept to build on

    def remaining(self, now: float) -> int:
        return max(0, self.ttl - int(now - self.stored))  # whole seconds gone, no float error

    def view(self, now: float) -> Packed:
        remaining = self.remaining(now)
        if remaining != self._second:
            self._second = remaining
            self._view = self.packed.with_ttl(remaining)
        return self._view

    def record_view(self, now: float) -> dnslib.DNSRecord:
        """The kept upstream record with every TTL set as ``view`` sets them (copies: it is shared)."""
        ttl = self.remaining(now)
        record = self.record
        sections = ([_with_ttl(rr, ttl) for rr in rrs] for rrs in (record.rr, record.auth, record.ar))
        return dnslib.DNSRecord(record.header, record.questions, *sections)


class KeptEntry(Entry):
    """An entry whose answers keep the TTL it was stored with (``keepttl``), stale ones included."""

    __slots__ = ()

    def __init__(self, packed: Packed, ttl: int, now: float, stale: float, *, refreshable: bool) -> None:
        super().__init__(packed, ttl, now, stale, refreshable=refreshable)
        self._view = packed.with_ttl(ttl)

    def view(self, now: float) -> Packed:
        return self._view

    def remaining(self, now: float) -> int:
        return self.ttl


class HeldAnswer:
    """An answer kept apart from the cache (``ResponseCache.held``), its TTLs counting down."""

    __slots__ = ("clock", "entry")

    def __init__(self, entry: Entry, clock: Callable[[], float]) -> None:
        self.entry, self.clock = entry, clock

    def fresh(self) -> Packed | None:
        now = self.clock()
        return self.entry.view(now) if now < self.entry.expires else None


def _with_ttl(rr: dnslib.RR, ttl: int) -> dnslib.RR:
    if rr.rtype == OPT:  # its TTL field holds EDNS flags
        return rr
    return dnslib.RR(rr.rname, rr.rtype, rr.rclass, ttl, rr.rdata)


def _expiry(key: bytes, entry: Entry, now: float) -> float:
    return entry.keep_until


class ResponseCache:
    def __init__(self, settings: CacheSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.success: TLRUCache = TLRUCache(settings.success_capacity, _expiry, timer=clock)
        self.denial: TLRUCache = TLRUCache(settings.denial_capacity, _expiry, timer=clock)
        self._tables = (("success", self.success), ("denial", self.denial))
        self._entry = KeptEntry if settings.keep_ttl else Entry
        self._stale_now = bool(settings.serve_stale) and not settings.stale_verify
        self._disabled = {
            kind: tuple(to_wire(zone) for zone in zones)
            for kind, zones in (("success", settings.disable_success), ("denial", settings.disable_denial))
        }
        self.refresher: Refresher | None = None
        self.hits = {"success": 0, "denial": 0}
        self.misses = 0
        self.stale_hits = 0
        self.prefetches = 0  # refreshes of popular entries started
        self._window, self._popular = settings.prefetch_window, settings.prefetch
        if settings.prefetch:  # only then is each hit counted
            self.get = self._get_counting  # type: ignore[method-assign]

    def get(self, key: bytes) -> Packed | None:
        """A fresh answer, TTLs counted down (or an expired one, TTL 0, with ``serve_stale immediate``,
        its refresh under way); ``None`` on a miss."""
        now = self.clock()
        stale = None
        for kind, table in self._tables:
            entry = table.get(key)
            if entry is not None:
                if now < entry.expires:
                    self.hits[kind] += 1
                    return entry.view(now)
                stale = _newer(stale, entry)
        return self._expired(key, stale, now)

    def _get_counting(self, key: bytes) -> Packed | None:
        """``get`` with ``prefetch``: each fresh hit counts towards the entry's refresh."""
        now = self.clock()
        stale = None
        for kind, table in self._tables:
            entry = table.get(key)
            if entry is not None:
                if now < entry.expires:
                    self.hits[kind] += 1
                    entry.streak = 1 if now - entry.last_hit > self._window else entry.streak + 1
                    entry.last_hit = now
                    if (
                        now >= entry.refresh_from
                        and entry.streak >= self._popular
                        and self._refresh(key, entry)
                    ):
                        self.prefetches += 1
                    return entry.view(now)
                stale = _newer(stale, entry)
        return self._expired(key, stale, now)

    def _expired(self, key: bytes, stale: Entry | None, now: float) -> Packed | None:
        if stale is not None and self._stale_now and stale.refreshable and self.refresher is not None:
            self.stale_hits += 1
            self._refresh(key, stale)  # when it cannot start now, a later query tries again
            return stale.view(now)
        self.misses += 1
        return None

    def _refresh(self, key: bytes, entry: Entry) -> bool:
        return entry.refreshable and self.refresher is not None and self.refresher(key)

    def kept_record(self, key: bytes) -> dnslib.DNSRecord | None:
        """The upstream record a fresh answer was stored with (``put`` with ``keep_record``), TTLs
        counted down as ``get`` counts them; ``None`` on a miss (counted as one)."""
        now = self.clock()
        for kind, table in self._tables:
            entry = table.get(key)
            if entry is not None and entry.record is not None and now < entry.expires:
                self.hits[kind] += 1
                return entry.record_view(now)
        self.misses += 1
        return None

    def stale(self, key: bytes) -> Packed | None:
        """An expired answer still within ``serve_stale``, with TTL 0 (for when upstreams fail)."""
        entry = _newer(self.success.get(key), self.denial.get(key))
        if entry is None:
            return None
        self.stale_hits += 1
        return entry.view(max(self.clock(), entry.expires))

    def held(self, key: bytes, packed: Packed, record: dnslib.DNSRecord) -> HeldAnswer | None:
        """``packed`` (made from the upstream ``record``) kept apart from the cache for as long as the
        cache would keep it, when a ``disable`` keeps the cache from holding ``key`` itself: for an
        answer whose other parts its holder keeps fresh (a chased ExternalName, whose CNAMEs the
        responder drops when the cluster changes). ``None`` when the cache keeps it, or nothing may."""
        found = self._lifetime(record)
        if found is None:
            return None
        kind, ttl = found
        table: TLRUCache = getattr(self, kind)
        if not table.maxsize or not self._disabled_for(kind, key):
            return None
        now = self.clock()
        return HeldAnswer(self._entry(packed, ttl, now, 0.0, refreshable=False), self.clock)

    def put(
        self,
        key: bytes,
        packed: Packed,
        record: dnslib.DNSRecord,
        *,
        refreshable: bool = False,
        keep_record: bool = False,
    ) -> Packed:
        """Keep ``packed`` (made from the upstream ``record``) for as long as its TTLs allow; return
        it as the client gets it (its TTLs those of the cache), or unchanged when it is not kept.
        ``refreshable``: ``record`` answers the question of ``key`` itself, so the refresher may ask
        that question again for it. ``keep_record``: ``kept_record`` gives ``record`` back meanwhile
        (for answers built on it)."""
        found = self._lifetime(record)
        if found is None:
            return packed
        kind, ttl = found
        return self._store(kind, key, packed, ttl, refreshable, record if keep_record else None)

    def _lifetime(self, record: dnslib.DNSRecord) -> tuple[str, int] | None:
        """Which table an answer goes to and for how long: positive answers for their smallest TTL,
        negative ones for their SOA's negative TTL, SERVFAIL for ``servfail_ttl``; ``None``: not kept."""
        rcode = record.header.rcode
        settings = self.settings
        if rcode == SERVFAIL:
            return ("denial", settings.servfail_ttl) if settings.servfail_ttl else None
        if rcode not in (NOERROR, NXDOMAIN):
            return None
        if rcode == NOERROR and record.rr:
            # an answer of nothing but OPT records (no server should send one) is kept briefly
            ttls = (rr.ttl for rr in (*record.rr, *record.auth) if rr.rtype != OPT)
            ttl = min(ttls, default=settings.min_ttl)
            return "success", _clamp(ttl, settings.min_ttl, settings.success_ttl)
        soa = next((rr for rr in record.auth if rr.rtype == SOA), None)
        ttl = min(soa.ttl, soa.rdata.times[-1]) if soa is not None else settings.min_ttl
        return "denial", _clamp(ttl, settings.min_ttl, settings.denial_ttl)

    def _disabled_for(self, kind: str, key: bytes) -> bool:
        """Whether ``disable`` keeps answers of ``kind`` for ``key``'s name out of the cache."""
        if not self._disabled[kind]:
            return False
        name = forwarded_question(key)[0][:-4]
        return any(is_within(name, zone) for zone in self._disabled[kind])

    def _store(  # noqa: PLR0917 (put's findings, passed on)
        self,
        kind: str,
        key: bytes,
        packed: Packed,
        ttl: int,
        refreshable: bool,
        record: dnslib.DNSRecord | None,
    ) -> Packed:
        table: TLRUCache = getattr(self, kind)
        if not table.maxsize or self._disabled_for(kind, key):  # 'success 0', 'disable success ZONE'...
            return packed
        now, settings = self.clock(), self.settings
        entry = self._entry(packed, ttl, now, settings.serve_stale, refreshable=refreshable)
        entry.record = record
        if settings.prefetch:
            left = -(-settings.prefetch_percentage * ttl // 100)  # CoreDNS rounds the share up
            entry.refresh_from = now + ttl - left
            old = self.success.get(key) or self.denial.get(key)
            if old is not None:  # a refreshed entry stays as popular as it was
                entry.streak, entry.last_hit = old.streak, old.last_hit
        table[key] = entry
        return entry.view(now)

    def __len__(self) -> int:
        return len(self.success) + len(self.denial)

    def clear(self) -> None:
        self.success.clear()
        self.denial.clear()


def _newer(one: Entry | None, other: Entry | None) -> Entry | None:
    """Of two expired entries for one key (an old answer of the other kind may linger), the one to
    serve stale: an answer before a SERVFAIL, else the one stored last."""
    if one is None or other is None:
        return one or other
    one_failed, other_failed = _servfail(one), _servfail(other)
    if one_failed != other_failed:
        return other if one_failed else one
    return other if other.stored > one.stored else one


def _servfail(entry: Entry) -> bool:
    return entry.packed.flags & RCODE_MASK == SERVFAIL


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))
