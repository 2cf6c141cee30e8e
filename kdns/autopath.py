"""Server-side search paths (CoreDNS's ``autopath @kubernetes``), against the ``ndots:5`` storm.

A pod in namespace ``ns`` asking for ``example.com`` first asks ``example.com.ns.svc.cluster.local``.
When such a name does not exist and the asking pod's IP is a known pod of ``ns`` (``pods verified``),
kdns walks the pod's search path itself: ``example.com.svc.<zone>``, ``example.com.<zone>``, the
host's search domains, then ``example.com.``; the first that is not NXDOMAIN is answered with a CNAME
from the asked name to it. If all are NXDOMAIN the pod gets its NXDOMAIN.

``SearchWalk`` is the walk, without I/O: it answers what it can from the zone and says which names
upstream must answer. ``AutoPath`` is the ``Answerer`` that drives it, asking a forwarder for those
names, and hands every other pending query to the forwarders (``Routes``). Answers are cached for
their TTL, keyed by the question (the namespace is in the name).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dnslib
from cachetools import TLRUCache

from kdns.blocks import Router
from kdns.cluster.state import ClusterState
from kdns.codes import CNAME, IN, MAX_NAME_LENGTH, NXDOMAIN, REFUSED, SERVFAIL
from kdns.upstream.routes import Routes
from kdns.wire.packed import Packed, pack_records
from kdns.wire.pending import PendingQuery
from kdns.wire.records import label, to_records
from kdns.zone.names import ROOT, join

CAPACITY = 10_000  # walks remembered
_NOT_FOUND = (NXDOMAIN, SERVFAIL, REFUSED)  # a name of the walk that answers none of these is found


def search_path(qname: bytes, namespace: str, zone: bytes, host_search: tuple[bytes, ...]) -> list[bytes]:
    """The names a pod of ``namespace`` tries after ``qname`` (``<base>.<namespace>.svc.<zone>``):
    ``<base>.svc.<zone>``, ``<base>.<zone>``, ``<base>`` under each host search domain, ``<base>.``;
    names longer than a name may be are left out."""
    first = join((namespace, "svc"), zone)
    base = qname[: len(qname) - len(first)]
    candidates = (base + suffix for suffix in (join(("svc",), zone), zone, *host_search, ROOT))
    return [name for name in candidates if len(name) <= MAX_NAME_LENGTH]


class SearchWalk:
    """One query's walk down its pod's search path, with no I/O.

    ``step()`` tries the next names against the zone and returns the next question upstream must
    answer, or ``None`` when the walk is over; ``heard()`` takes upstream's reply to that question.
    At the end ``result`` holds the answer: a CNAME to the name ``found``, then its records, kept for
    ``ttl`` seconds; SERVFAIL when upstream did not answer; ``None`` when every name was NXDOMAIN."""

    def __init__(
        self,
        key: bytes,
        namespace: str,
        resolver: Router,
        *,
        host_search: tuple[bytes, ...] = (),
    ) -> None:
        self.key = key
        self.qname, self.qtype_class = key[:-4], key[-4:]
        self.qtype = int.from_bytes(self.qtype_class[:2])
        self.resolver = resolver
        self.route = 0  # the forward route of the name asked upstream
        zone = resolver.layout.zone_of(self.qname)
        self._names = iter(search_path(self.qname, namespace, zone, host_search))
        self._asked: bytes | None = None
        self.result: Packed | None = None
        self.found: bytes | None = None
        self.ttl = 0

    def step(self) -> bytes | None:
        """The next question (wire name, type, class) for upstream; ``None`` once the walk is over."""
        if self.result is not None:
            return None
        for name in self._names:
            answer = self.resolver.resolve(name, self.qtype)
            if answer.delegate:
                self._asked, self.route = name, answer.delegate
                return name + self.qtype_class
            if answer.rcode not in _NOT_FOUND:
                self._found(name, answer.rcode, to_records(answer.answer), to_records(answer.authority))
                return None
        return None

    def heard(self, reply: dnslib.DNSRecord | None) -> None:
        """Upstream's reply to the question ``step`` returned; ``None`` when no upstream answered."""
        if reply is None:
            self.result = pack_records(SERVFAIL, ([], [], []), self.qname, self.qtype_class)
            self._names = iter(())
        elif reply.header.rcode != NXDOMAIN:
            self._found(self._asked, reply.header.rcode, list(reply.rr), list(reply.auth))

    def _found(self, name: bytes, rcode: int, answer: list[dnslib.RR], authority: list[dnslib.RR]) -> None:
        self.found = name
        self.ttl = min((rr.ttl for rr in (*answer, *authority)), default=self.resolver.ttl)
        link = dnslib.RR(label(self.qname), CNAME, IN, self.ttl, dnslib.CNAME(label(name)))
        self.result = pack_records(rcode, ([link, *answer], authority, []), self.qname, self.qtype_class)


class AutoPath:
    """Answers search-path misses by walking the asking pod's search path; the rest of the pending
    queries go to their forwarders (an ``Answerer`` wrapping ``Routes``)."""

    def __init__(
        self,
        state: ClusterState,
        routes: Routes,
        resolver: Callable[[], Router],
        *,
        host_search: tuple[bytes, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.resolver = resolver  # the running blocks (a reload may replace them)
        self.routes = routes
        self.host_search = host_search  # wire names from resolv.conf's search line
        self.clock = clock
        self.cache: TLRUCache = TLRUCache(CAPACITY, lambda key, value, now: value[0], timer=clock)
        self.answered = 0  # queries answered from a later name of the search path

    def namespace_of(self, client: str) -> str | None:
        pod = self.state.pods_by_ip.get(client)
        return pod.namespace if pod is not None else None

    def cached(self, key: bytes) -> Packed | None:
        entry = self.cache.get(key)
        return entry[1] if entry is not None and entry[0] > self.clock() else None

    def admits(self, query: PendingQuery) -> bool:
        """Search walks are always taken on; a forwarder's limit holds for what it gets."""
        return _walks(query) or self.routes.admits(query)

    async def answer(self, query: PendingQuery) -> Packed:
        if not _walks(query):
            return await self.routes.answer(query)
        walk = SearchWalk(query.key, query.packed.autopath, self.resolver(), host_search=self.host_search)
        while (question := walk.step()) is not None:
            forwarder = self.routes.forwarder(walk.route)
            walk.heard(await forwarder.lookup(question, question, tcp=query.tcp, keep_record=True))
        if walk.result is None:
            return query.packed  # every name is NXDOMAIN: the pod's own answer
        if walk.found is not None:
            self.cache[query.key] = (self.clock() + walk.ttl, walk.result)
            self.answered += 1
        return walk.result


def _walks(query: PendingQuery) -> bool:
    """Whether ``query`` is a search-path miss to walk (not a name for upstream)."""
    return query.packed.autopath is not None and not query.packed.delegate
