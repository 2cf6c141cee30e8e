"""Answers one question from the zone: a pure, synchronous function of (name, type, class).

No sockets, no asyncio, no kubernetes: the resolver reads the zone index and returns an ``Answer``
that ``wire`` packs. The rules follow the Kubernetes DNS specification 1.1.0 and CoreDNS's
``kubernetes`` plugin:

- a name the index holds answers its RRset, or NODATA (NOERROR, SOA in authority) when it has none of
  the asked type; a name it does not hold is NXDOMAIN (SOA in authority, RFC 2308); the SOA is that
  of the most specific zone holding the name, a narrow reverse zone's own;
- an ExternalName CNAME is followed while its target stays inside the authoritative zones;
- ``<a-b-c-d>.<ns>.pod.<zone>`` is computed in ``insecure`` pod mode (the index holds pod names only in
  ``verified`` mode); the namespace must exist;
- SRV answers carry their targets' addresses in the additional section, NS answers those of ``ns.dns``
  (the cluster IPs of the Services whose endpoints are kdns's own addresses, else those addresses);
  ANY gets one RRset and nothing more (RFC 8482: the smallest answer, no additional records);
- a question outside every authoritative zone, and an NXDOMAIN name within the ``fallthrough`` zones,
  is not the resolver's: ``resolve`` returns ``None`` and the server block asks its next plugin; an
  ExternalName target outside the zones comes back as ``chase`` for the block to send upstream;
  other classes and zone transfers are REFUSED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kdns.codes import (
    AAAA,
    ANY,
    AXFR,
    CNAME,
    IN,
    IXFR,
    NOERROR,
    NS,
    NXDOMAIN,
    PTR,
    REFUSED,
    SERVFAIL,
    SOA,
    SRV,
    TXT,
    A,
)
from kdns.config import PodMode, ZoneSettings
from kdns.zone.index import UNLISTED, ZoneIndex
from kdns.zone.names import ZoneLayout, ip_of_dashed, join, longest_zone, to_wire

SOA_TIMERS = (7200, 1800, 86400)  # refresh, retry, expire: CoreDNS's
SOA_MAX_TTL = 300  # CoreDNS's cap on the SOA's own TTL
SRV_TOTAL_WEIGHT = 100  # shared out among the records of an SRV answer, as CoreDNS does
SERIAL_MASK = 0xFFFFFFFF  # a SOA serial is 32 bits
MAX_CNAME_CHAIN = 8
_ANY_PREFERENCE = (A, AAAA, CNAME, SRV, PTR, TXT, NS)
_HOSTMASTER = b"\x0ahostmaster"


@dataclass(frozen=True, slots=True)
class RRset:
    """Records of one name, type and class (IN unless a template says otherwise). Rdata by type: A/AAAA
    packed bytes; CNAME/PTR/NS wire name; MX ``(preference, exchange)``; SRV ``(priority, weight,
    port, target)``; TXT ``tuple[bytes, ...]``; SOA ``(mname, rname, serial, refresh, retry, expire,
    minimum)``."""

    name: bytes
    rtype: int
    ttl: int
    rdatas: tuple[object, ...]
    rclass: int = IN


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete response apart from the query's ID, flags and question.

    ``depends`` lists the names whose change invalidates this answer (the qname, CNAME targets, SRV
    targets, the namespace of a computed pod name)."""

    rcode: int
    authoritative: bool = True
    answer: tuple[RRset, ...] = ()
    authority: tuple[RRset, ...] = ()
    additional: tuple[RRset, ...] = ()
    depends: tuple[bytes, ...] = ()
    # someone upstream must answer (after ``answer``'s CNAMEs, for ``chase``): the number of the forward
    # route, counted from 1 among those of the answering server; 0: answered here
    delegate: int = 0
    chase: bytes | None = None  # the CNAME target that left the zones
    # a rewritten question (wire name, type, class) upstream is asked instead of the client's, and
    # the ``rewrite`` plugin's Reverter that maps upstream's answer back to what the client asked
    asked: bytes | None = None
    reverter: object | None = None
    # the answer depends on who asks: ``gate(client, channel)`` gives the answer for that client, or
    # None for this one (``acl``, ``whoami``); ``DROPPED``: no answer at all
    gate: Callable[[tuple, int], Answer | None] | None = None
    # the ``rewrite`` plugin's edns0 rules the question reached: the forwarder runs them for each query
    # it sends upstream, since what they make depends on the client (``rewrite.edns0_options``)
    edns0: tuple[object, ...] = ()


Gate = Callable[[tuple, int], Answer | None]  # an answer for a client (its socket address) and channel
REFUSED_ANSWER = Answer(rcode=REFUSED, authoritative=False)
DROPPED = Answer(rcode=NOERROR, authoritative=False)  # a gate's word for "send nothing"


class Resolver:
    def __init__(
        self,
        index: ZoneIndex,
        layout: ZoneLayout,
        settings: ZoneSettings,
        *,
        own_addresses: tuple[bytes, ...] = (),
    ) -> None:
        """``own_addresses`` (packed) answer ``ns.dns.<zone>`` while no Service of kdns's own does."""
        self.index = index
        self.layout = layout
        self.settings = settings
        self.ttl = settings.ttl
        self.fallthrough = tuple(to_wire(zone) for zone in settings.fallthrough)
        self._pod_labels = {zone: b"\x03pod" + zone for zone in layout.forward}
        self._ns_names = frozenset(join(("ns", "dns"), zone) for zone in layout.forward)
        self._own: dict[int, list[object]] = {}
        for packed in own_addresses:
            self._own.setdefault(A if len(packed) == 4 else AAAA, []).append(packed)

    def resolve(self, qname: bytes, qtype: int, qclass: int = IN) -> Answer | None:
        """Answer ``qname`` (lowercase wire form) for ``qtype``; ``None`` when it is not the cluster's
        to answer (outside the zones, or NXDOMAIN within a ``fallthrough`` zone)."""
        zone = self.layout.zone_of(qname)
        if zone is None:
            return None
        if qclass != IN or qtype in (AXFR, IXFR):
            return REFUSED_ANSWER
        answer: list[RRset] = []
        depends: list[bytes] = []
        name = qname
        for _ in range(MAX_CNAME_CHAIN):
            depends.append(name)
            rrsets = self._rrsets(name, zone, depends)
            if rrsets is None:
                if not answer and longest_zone(qname, self.fallthrough) is not None:
                    return None  # CoreDNS's fallthrough: the next plugin answers
                if not self.index.complete:  # it may exist: a failure, dropped once listed
                    return self._negative(SERVFAIL, zone, [], [*depends, UNLISTED])
                return self._negative(NXDOMAIN, zone, answer, depends)
            found = self._rrset(name, zone, qtype, rrsets)
            if found is not None:
                answer.append(found)
                return Answer(
                    rcode=NOERROR,
                    answer=tuple(answer),
                    additional=self._additional(found, depends) if qtype != ANY else (),
                    depends=tuple(depends),
                )
            targets = rrsets.get(CNAME)
            if not targets or qtype == CNAME:
                return self._negative(NOERROR, zone, answer, depends)
            answer.append(RRset(name, CNAME, self.ttl, (targets[0],)))
            name = targets[0]
            zone = self.layout.zone_of(name)
            if zone is None:  # the target is someone else's to answer
                return Answer(rcode=NOERROR, answer=tuple(answer), depends=tuple(depends), chase=name)
        return Answer(rcode=SERVFAIL, authoritative=False, depends=tuple(depends))

    # -- lookups -------------------------------------------------------------------------------------
    def _rrsets(self, name: bytes, zone: bytes, depends: list[bytes]) -> dict[int, list[object]] | None:
        rrsets = self._held(name)
        if rrsets is not None:
            return rrsets
        if self.settings.pods is PodMode.INSECURE and zone in self._pod_labels:
            return self._insecure_pod(name, zone, depends)
        return None

    def _held(self, name: bytes) -> dict[int, list[object]] | None:
        """The index's records at ``name``; ``ns.dns.<zone>`` without addresses of a Service of kdns's
        own gets the server's own addresses, as CoreDNS answers it with the addresses it is bound to."""
        node = self.index.get(name)
        if node is None:
            return None
        rrsets = node.rrsets
        if self._own and name in self._ns_names and A not in rrsets and AAAA not in rrsets:
            return {**rrsets, **self._own}
        return rrsets

    def _insecure_pod(self, name: bytes, zone: bytes, depends: list[bytes]) -> dict[int, list[object]] | None:
        """``<dashed-ip>.<ns>.pod.<zone>`` for an existing namespace, whatever the IP."""
        pod_suffix = self._pod_labels[zone]
        if not name.endswith(pod_suffix):
            return None
        first = name[0] + 1
        namespace_name = name[first:]
        if len(namespace_name) != namespace_name[0] + 1 + len(pod_suffix):
            return None  # not exactly <label>.<ns>.pod.<zone>
        depends.append(namespace_name)
        if self.index.get(namespace_name) is None:
            return None
        ip = ip_of_dashed(name[1:first].decode("ascii", "replace"))
        if ip is None:
            return None
        return {A if ip.version == 4 else AAAA: [ip.packed]}

    def _rrset(self, name: bytes, zone: bytes, qtype: int, rrsets: dict[int, list[object]]) -> RRset | None:
        if qtype == SOA and name == zone:
            return self._soa(zone)
        if qtype == ANY:  # RFC 8482: one RRset is a full answer
            if name == zone:
                return self._soa(zone)
            qtype = next((t for t in _ANY_PREFERENCE if t in rrsets), -1)
        rdatas = rrsets.get(qtype) if qtype > 0 else None
        if not rdatas:
            return None
        if qtype == SRV:  # the weight is shared among the records CoreDNS makes before dropping repeats
            weight = max(1, SRV_TOTAL_WEIGHT // sum(copies for _, _, copies in rdatas))
            return RRset(name, SRV, self.ttl, tuple((0, weight, port, target) for port, target, _ in rdatas))
        if qtype == PTR:
            ranked = min(rank for _, rank in rdatas)
            targets = tuple(dict.fromkeys(t for t, rank in rdatas if rank == ranked))
            return RRset(name, PTR, self.ttl, targets)
        if qtype == TXT:
            return RRset(name, TXT, self.ttl, tuple((text,) for text in rdatas))  # CoreDNS: the zone TTL
        return RRset(name, qtype, self.ttl, tuple(rdatas))

    def _additional(self, rrset: RRset, depends: list[bytes]) -> tuple[RRset, ...]:
        if rrset.rtype == SRV:
            targets = [rdata[3] for rdata in rrset.rdatas]
        elif rrset.rtype == NS:
            targets = list(rrset.rdatas)
        else:
            return ()
        extra = []
        for target in dict.fromkeys(targets):
            rrsets = self._held(target)
            depends.append(target)
            if rrsets is None:
                continue
            for rtype in (A, AAAA):
                if rtype in rrsets:
                    extra.append(RRset(target, rtype, self.ttl, tuple(rrsets[rtype])))
        return tuple(extra)

    # -- negative answers ----------------------------------------------------------------------------
    def _soa(self, zone: bytes) -> RRset:
        """The SOA of ``zone`` itself, naming ``ns.dns.<zone>`` and ``hostmaster.<zone>`` as CoreDNS
        does, for a narrow reverse zone too (``0.10.in-addr.arpa``)."""
        mname = join(("ns", "dns"), zone)
        rname = _HOSTMASTER + zone
        minimum = self.ttl
        soa = (mname, rname, self.index.serial & SERIAL_MASK, *SOA_TIMERS, minimum)
        return RRset(zone, SOA, min(self.ttl, SOA_MAX_TTL), (soa,))

    def _negative(self, rcode: int, zone: bytes, answer: list[RRset], depends: list[bytes]) -> Answer:
        """NXDOMAIN or NODATA (or SERVFAIL), with the SOA whose TTL is the negative TTL (RFC 2308
        section 3)."""
        soa = self._soa(zone)
        soa = RRset(soa.name, SOA, min(soa.ttl, self.ttl), soa.rdatas)
        return Answer(rcode=rcode, answer=tuple(answer), authority=(soa,), depends=tuple(depends))
