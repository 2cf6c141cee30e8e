"""Server-side search paths (CoreDNS's ``autopath @kubernetes``), against the ``ndots:5`` storm.

A pod in namespace ``ns`` asking for ``example.com`` first asks ``example.com.ns.svc.cluster.local``.
When such a name does not exist and the asking pod's IP is a known pod of ``ns`` (``pods verified``),
kdns walks the pod's search path itself: ``example.com.ns.svc.<zone>``, ``example.com.svc.<zone>``,
``example.com.<zone>``, the host's search domains, then ``example.com.``; the first that is not
NXDOMAIN is answered with a CNAME from the asked name to it. If all are NXDOMAIN the pod gets its
NXDOMAIN. Answers are cached for their TTL, keyed by the question (the namespace is in the name).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import dnslib
from cachetools import TLRUCache
from dnslib import CNAME, RR, DNSLabel

from kdns.cluster.state import ClusterState
from kdns.resolver import NXDOMAIN, SERVFAIL, Resolver
from kdns.responder import Delegation
from kdns.upstream.forward import Forwarder
from kdns.wire import Packed, pack_records, to_records
from kdns.zone.names import join, labels_of

CAPACITY = 10_000


class AutoPath:
    def __init__(
        self,
        state: ClusterState,
        forwarder: Forwarder | None,
        resolver: Callable[[], Resolver],
        *,
        host_search: tuple[bytes, ...] = (),
    ) -> None:
        self.state = state
        self.resolver = resolver  # the running resolver (a reload may replace it)
        self.forwarder = forwarder
        self.host_search = host_search  # wire names from resolv.conf's search line
        self.cache: TLRUCache = TLRUCache(CAPACITY, lambda key, value, now: value[0])
        self.answered = 0  # queries answered from a later search candidate

    def namespace_of(self, client: str) -> str | None:
        pod = self.state.pods_by_ip.get(client)
        return pod.namespace if pod is not None else None

    def cached(self, key: bytes) -> Packed | None:
        entry = self.cache.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def refused(self, d: Delegation) -> bytes | None:
        """The forwarder's immediate REFUSED past its limit, for queries it would get."""
        if (d.packed.autopath is None or d.packed.delegate) and self.forwarder is not None:
            return self.forwarder.refused(d)
        return None

    async def answer(self, d: Delegation) -> bytes:
        """Answer a delegated query: search-path misses here, the rest through the forwarder."""
        if d.packed.autopath is None or d.packed.delegate:
            return await self.forwarder.answer(d)
        packed = await self._walk(d, self.resolver()) or d.packed
        return packed.render(d.data, d.qid, d.flags, d.end, d.limit, d.opt)

    async def _walk(self, d: Delegation, resolver: Resolver) -> Packed | None:
        qname, qtype_class = d.key[:-4], d.key[-4:]
        qtype = int.from_bytes(qtype_class[:2])
        zone = resolver.layout.zone_of(qname)
        first = join((d.packed.autopath, "svc"), zone)
        base = qname[: len(qname) - len(first)]
        for suffix in (join(("svc",), zone), zone, *self.host_search, b"\x00"):
            candidate = base + suffix
            if len(candidate) > 255:
                continue
            answer = resolver.resolve(candidate, qtype)
            if not answer.delegate:
                if answer.rcode == NXDOMAIN:
                    continue
                found = (answer.rcode, to_records(answer.answer), to_records(answer.authority))
            elif self.forwarder is None:
                continue
            else:
                record = await self.forwarder.lookup(
                    candidate + qtype_class, candidate + qtype_class, keep_record=True
                )
                if record is None:
                    return pack_records(SERVFAIL, ([], [], []), qname, qtype_class)
                if record.header.rcode == NXDOMAIN:
                    continue
                found = (record.header.rcode, list(record.rr), list(record.auth))
            return self._cname(d.key, candidate, *found)
        return None

    def _cname(
        self, key: bytes, candidate: bytes, rcode: int, answer: list[RR], authority: list[RR]
    ) -> Packed:
        qname, qtype_class = key[:-4], key[-4:]
        ttls = [rr.ttl for rr in (*answer, *authority)] or [5]
        link = RR(
            DNSLabel(labels_of(qname)),
            dnslib.QTYPE.CNAME,
            1,
            min(ttls),
            CNAME(DNSLabel(labels_of(candidate))),
        )
        packed = pack_records(rcode, ([link, *answer], authority, []), qname, qtype_class)
        self.cache[key] = (time.monotonic() + min(ttls), packed)
        self.answered += 1
        return packed
