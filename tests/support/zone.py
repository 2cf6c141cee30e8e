"""Zones built from objects, and asking their resolver in-process (no server, no sockets): the reply
rendered as zone-file lines, as CoreDNS's tables state them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from kdns.app import build_answering, build_forwarders
from kdns.blocks import Block, Router
from kdns.cluster.convert import to_object
from kdns.config import ServeConfig, ServerSettings, ZoneSettings
from kdns.resolver import Answer, Resolver
from kdns.responder import Responder
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
    """Ask ``zone``'s resolver (made with ``Resolver``'s keyword ``options``) directly, in a server
    block of the cluster's zones alone (names outside them are REFUSED), and render the reply as
    zone-file lines (sorted within sections, the SOA serial as ``SERIAL``)."""
    resolver = Resolver(zone.index, zone.layout, zone.settings, **options)
    block = Block(tuple(to_wire(z) for z in zone.settings.zones), cluster=resolver)
    answer = Router([block], layout=zone.layout, ttl=resolver.ttl).resolve(
        to_wire(name), TYPES[qtype], qclass
    )
    return _reply(answer)


def ask_server(zone: ClusterZone, server: ServerSettings, name: str, qtype: str = "A") -> Reply:
    """Ask the server block ``server`` as ``kdns serve`` builds it over ``zone`` (its plugins in
    CoreDNS's order), rendered as ``ask_resolver`` renders replies."""
    config = ServeConfig(zone=zone.settings, servers=(server,))
    router = build_answering(config, config.servers, zone, build_forwarders(config)).responder.resolver
    return _reply(router.resolve(to_wire(name), TYPES[qtype], 1))


def _reply(answer: Answer) -> Reply:
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


def responder_of(zone: ClusterZone, config: ServeConfig | None = None) -> Responder:
    """The responder ``kdns serve`` builds for ``zone`` and the one listener of ``config``."""
    config = config or ServeConfig()
    return build_answering(config, config.servers, zone, build_forwarders(config)).responder
