"""CoreDNS's ``k8s_external``: Services' external IPs under zones of their own, after ``hosts`` and
before ``kubernetes`` in the plugin order.

The names come from ``ExternalNames`` (``kdns.zone.external_names``), built when the cluster changes;
here they are only read. Within its zones:

- the apex answers its SOA (``ns1.<apex>.<zone>``, ``hostmaster.<apex>.<zone>``, the names' serial,
  the TTL as minimum) and its NS ``ns1.<apex>.<zone>``, with the cluster DNS Service's external IPs
  as glue; other types there are NODATA;
- below ``<apex>.<zone>``: the apex name itself is NODATA, ``ns1`` answers those IPs, the rest is
  NXDOMAIN;
- any other name answers A, AAAA and SRV (the SRV targets' addresses in the additional section,
  SRV with the cluster's TTL as CoreDNS gives them); other types are NODATA; a name that does not
  exist is NXDOMAIN, or the next plugin's when it is within ``fallthrough``. Zone transfers are
  REFUSED. Negative answers carry the SOA.
"""

from __future__ import annotations

from kdns.codes import AAAA, AXFR, IXFR, NOERROR, NS, NXDOMAIN, SOA, SRV, A
from kdns.resolver import REFUSED_ANSWER, SERIAL_MASK, SOA_TIMERS, Answer, RRset
from kdns.zone.external_names import NAME_SERVER, ExternalNames
from kdns.zone.names import is_within, join, labels_of, longest_zone, to_wire

ADDRESSES = (A, AAAA)


class External:
    def __init__(self, names: ExternalNames) -> None:
        settings = names.settings
        self.names = names
        self.zones = names.zones
        self.ttl = settings.ttl
        self.srv_ttl = names.cluster.ttl  # CoreDNS's SRV records carry the kubernetes plugin's TTL
        self.fallthrough = tuple(to_wire(zone) for zone in settings.fallthrough)
        self._apex = {zone: join(names.apex_labels, zone) for zone in self.zones}
        self._server = dict(zip(self.zones, names.name_servers, strict=True))
        self._hostmaster = {zone: join(("hostmaster", *names.apex_labels), zone) for zone in self.zones}

    def answer(self, qname: bytes, qtype: int) -> Answer | None:
        """The answer to ``qname`` (lowercase wire form); ``None`` when the next plugin is to answer."""
        zone = longest_zone(qname, self.zones)
        if zone is None:
            return None
        if qtype in (AXFR, IXFR):
            return REFUSED_ANSWER
        if qname == zone:
            return self._at_apex(zone, qtype)
        if is_within(qname, self._apex[zone]):
            return self._below_apex(qname, zone, qtype)
        node = self.names.index.get(qname)
        if node is None:
            if longest_zone(qname, self.fallthrough) is not None:
                return None
            return self._negative(NXDOMAIN, zone, qname)
        rdatas = node.rrsets.get(qtype) if qtype in (*ADDRESSES, SRV) else None
        if not rdatas:
            return self._negative(NOERROR, zone, qname)
        if qtype != SRV:
            return Answer(
                rcode=NOERROR, answer=(RRset(qname, qtype, self.ttl, tuple(rdatas)),), depends=(qname,)
            )
        records = tuple(
            rdata[:4] for rdata in rdatas
        )  # (priority, weight, port, target); the index adds a count
        targets = tuple(dict.fromkeys(rdata[3] for rdata in records))
        return Answer(
            rcode=NOERROR,
            answer=(RRset(qname, SRV, self.srv_ttl, records),),
            additional=tuple(rrset for target in targets for rrset in self._addresses(target, ADDRESSES)),
            depends=(qname, *targets),
        )

    # -- the apex and the name server -------------------------------------------------------------------
    def _at_apex(self, zone: bytes, qtype: int) -> Answer:
        server = self._server[zone]
        if qtype == SOA:
            return Answer(rcode=NOERROR, answer=(self._soa(zone),), depends=(zone,))
        if qtype == NS:
            ns = RRset(zone, NS, self.ttl, (server,))
            glue = self._addresses(server, ADDRESSES)
            return Answer(rcode=NOERROR, answer=(ns,), additional=glue, depends=(zone, server))
        return self._negative(NOERROR, zone, zone)

    def _below_apex(self, qname: bytes, zone: bytes, qtype: int) -> Answer:
        """``<apex>.<zone>`` exists without records; ``ns1`` below it has the name server's addresses."""
        apex, server = self._apex[zone], self._server[zone]
        if qname == apex:
            return self._negative(NOERROR, zone, qname)
        if len(labels_of(qname)) != len(labels_of(apex)) + 1 or labels_of(qname)[0] != NAME_SERVER.encode():
            return self._negative(NXDOMAIN, zone, qname)
        found = self._addresses(server, (qtype,) if qtype in ADDRESSES else (), owner=qname)
        if not found:
            return Answer(rcode=NOERROR, authority=(self._soa(zone),), depends=(qname, server))
        return Answer(rcode=NOERROR, answer=found, depends=(qname, server))

    def _addresses(
        self, name: bytes, rtypes: tuple[int, ...], *, owner: bytes | None = None
    ) -> tuple[RRset, ...]:
        node = self.names.index.get(name)
        if node is None:
            return ()
        return tuple(
            RRset(owner or name, rtype, self.ttl, tuple(node.rrsets[rtype]))
            for rtype in rtypes
            if rtype in node.rrsets
        )

    # -- negative answers ---------------------------------------------------------------------------------
    def _soa(self, zone: bytes) -> RRset:
        serial = self.names.index.serial & SERIAL_MASK
        soa = (self._server[zone], self._hostmaster[zone], serial, *SOA_TIMERS, self.ttl)
        return RRset(zone, SOA, self.ttl, (soa,))

    def _negative(self, rcode: int, zone: bytes, qname: bytes) -> Answer:
        return Answer(rcode=rcode, authority=(self._soa(zone),), depends=(qname,))
