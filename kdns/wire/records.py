"""The resolver's RRsets as dnslib records: to pack them beside another server's records, and to print
them in zone-file form (``kdns dump``, test tables)."""

from __future__ import annotations

import dnslib

from kdns import codes
from kdns.resolver import RRset
from kdns.zone.names import labels_of


def label(wire: bytes) -> dnslib.DNSLabel:
    """A wire name as dnslib's label."""
    return dnslib.DNSLabel(labels_of(wire))


def rdata(rtype: int, value: object) -> dnslib.RD:
    """dnslib's rdata for one of the resolver's rdata values (their forms are in ``RRset``)."""
    match rtype:
        case codes.A:
            return dnslib.A(tuple(value))
        case codes.AAAA:
            return dnslib.AAAA(list(value))
        case codes.CNAME:
            return dnslib.CNAME(label(value))
        case codes.PTR:
            return dnslib.PTR(label(value))
        case codes.NS:
            return dnslib.NS(label(value))
        case codes.MX:
            preference, exchange = value
            return dnslib.MX(label(exchange), preference)
        case codes.SRV:
            priority, weight, port, target = value
            return dnslib.SRV(priority, weight, port, label(target))
        case codes.TXT:
            return dnslib.TXT(list(value))
        case codes.SOA:
            mname, rname, *times = value
            return dnslib.SOA(label(mname), label(rname), tuple(times))
    raise ValueError(f"cannot pack rdata of type {rtype}")


def record(owner: dnslib.DNSLabel, rrset: RRset, value: object) -> dnslib.RR:
    return dnslib.RR(owner, rrset.rtype, rrset.rclass, rrset.ttl, rdata(rrset.rtype, value))


def to_records(rrsets: tuple[RRset, ...]) -> list[dnslib.RR]:
    """The resolver's RRsets as dnslib records, to pack beside records from another server."""
    return [record(label(rrset.name), rrset, value) for rrset in rrsets for value in rrset.rdatas]


def rrset_lines(rrset: RRset) -> list[str]:
    """Zone-file presentation lines for an RRset."""
    owner = label(rrset.name)
    return [record(owner, rrset, value).toZone() for value in rrset.rdatas]


def parse_qtype(text: str) -> int:
    """A query type by its name, in any letter case (``AAAA``); ValueError names it."""
    number = dnslib.QTYPE.reverse.get(text.upper())
    if number is None:
        raise ValueError(f"invalid type {text.upper()!r}")
    return number
