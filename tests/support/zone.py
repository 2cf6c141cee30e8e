"""Zones built from objects, and asking their resolver in-process (no server, no sockets): the reply
rendered as zone-file lines, as CoreDNS's tables state them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from kdns.cluster.convert import to_object
from kdns.config import ZoneSettings
from kdns.resolver import Resolver
from kdns.sources.snapshot import read_snapshot
from kdns.wire.records import rrset_lines
from kdns.zone.cluster_zone import ClusterZone
from kdns.zone.names import to_wire
from tests.support.paths import EXAMPLE

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
TYPES = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "PTR": 12,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
    "SRV": 33,
    "AXFR": 252,
    "ANY": 255,
    "HTTPS": 65,
}


def example_zone(**settings: Any) -> ClusterZone:
    zone = ClusterZone(ZoneSettings(**settings))
    zone.load(read_snapshot(EXAMPLE))
    return zone


def zone_of(objects: Iterable[dict], **settings: Any) -> ClusterZone:
    zone = ClusterZone(ZoneSettings(**settings))
    zone.load(to_object(raw) for raw in objects)
    return zone


def _normalise(line: str) -> str:
    return " ".join(line.split())


@dataclasses.dataclass
class Reply:
    rcode: str
    answer: list[str]
    authority: list[str]
    additional: list[str]
    aa: bool


def ask_resolver(zone: ClusterZone, name: str, qtype: str = "A", qclass: int = 1, **options: Any) -> Reply:
    """Ask ``zone``'s resolver (made with ``Resolver``'s keyword ``options``) directly and render the
    reply as zone-file lines (sorted within sections, the SOA serial as ``SERIAL``)."""
    resolver = Resolver(zone.index, zone.layout, zone.settings, **options)
    answer = resolver.resolve(to_wire(name), TYPES[qtype], qclass)

    def lines(rrsets) -> list[str]:
        rendered = (_normalise(line) for rrset in rrsets for line in rrset_lines(rrset))
        return sorted(re.sub(r" SOA (\S+ \S+) \d+ ", r" SOA \1 SERIAL ", line) for line in rendered)

    return Reply(
        rcode=RCODES[answer.rcode],
        answer=lines(answer.answer),
        authority=lines(answer.authority),
        additional=lines(answer.additional),
        aa=answer.authoritative,
    )
