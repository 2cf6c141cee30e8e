"""The responders the oracle checks, set up two ways: the example cluster plus a large headless Service
answered authoritatively, names outside it REFUSED; and the same zone forwarding, with a forward cache
holding a few answers, round-robin rotation and a search-path namespace for the client."""

from __future__ import annotations

import struct

import dnslib

from kdns.blocks import Block, Route, Router
from kdns.cluster.convert import to_object
from kdns.config import CacheSettings, ServeConfig, ZoneSettings
from kdns.resolver import Resolver
from kdns.responder import ForwardCache, Responder
from kdns.sources.snapshot import read_snapshot
from kdns.upstream.cache import ResponseCache
from kdns.wire.packed import Packed, pack_records
from kdns.zone.cluster_zone import ClusterZone
from kdns.zone.names import ROOT, to_wire
from tests.support.objects import big_service
from tests.support.oracle import NOERROR, NXDOMAIN, Target
from tests.support.packets import wire_name
from tests.support.paths import EXAMPLE

CLIENT = ("10.244.1.7", 40000)  # the forwarding target's client (address, port): a pod of namespace "shop"
HEAVY = ("crowd.shop.svc.cluster.local", "_http._tcp.crowd.shop.svc.cluster.local", "big.example.com")
OUTSIDE = ("example.com", "www.example.com", "nx.example.com", "big.example.com", "version.bind", "com", "")


class NamespaceOf:
    """Search paths for one client: its pod lives in ``shop``; no search result is cached."""

    def namespace_of(self, client: str) -> str | None:
        return "shop" if client == CLIENT else None

    def cached(self, key: bytes) -> Packed | None:
        return None


def forward_cache() -> tuple[ResponseCache, dict[bytes, int]]:
    """Upstream answers as the forwarder would have cached them: a plain one, a large one, a
    negative one; for queries with and without DO. The clock stands still, so they never expire."""
    cache = ResponseCache(CacheSettings(), clock=lambda: 1000.0)
    keys: dict[bytes, int] = {}
    answers = {
        "example.com": (NOERROR, [dnslib.RR("example.com", 1, rdata=dnslib.A("192.0.2.1"), ttl=60)]),
        "www.example.com": (
            NOERROR,
            [
                dnslib.RR("www.example.com", 5, rdata=dnslib.CNAME("example.com"), ttl=60),
                dnslib.RR("example.com", 1, rdata=dnslib.A("192.0.2.1"), ttl=60),
            ],
        ),
        "big.example.com": (
            NOERROR,
            [dnslib.RR("big.example.com", 1, rdata=dnslib.A(f"192.0.2.{n}"), ttl=60) for n in range(1, 121)],
        ),
        "nx.example.com": (NXDOMAIN, []),
    }
    soa = dnslib.RR(
        "example.com", 6, rdata=dnslib.SOA("ns.example.com", "h.example.com", (1, 2, 3, 4, 30)), ttl=30
    )
    for name, (rcode, records) in answers.items():
        question = wire_name(name) + struct.pack("!HH", 1, 1)
        record = dnslib.DNSRecord(dnslib.DNSHeader(qr=1, rcode=rcode), q=dnslib.DNSQuestion(name))
        record.rr = records
        record.auth = [soa] if rcode else []
        packed = pack_records(rcode, (record.rr, record.auth, []), wire_name(name), question[-4:])
        for key in (question, question + b"\x01"):
            cache.put(key, packed, record)
            keys[key] = rcode
    return cache, keys


def build_zone() -> ClusterZone:
    """The example cluster and ``big_service``, in the default zones."""
    zone = ClusterZone(ZoneSettings())
    zone.load([*read_snapshot(EXAMPLE), *(to_object(raw) for raw in big_service())])
    return zone


def forwarding_responder(
    zone: ClusterZone, cached: ForwardCache, *, cache_size: int, loadbalance: bool = False
) -> Responder:
    """A responder for a '.' server block of the cluster and one ``forward .``, whose forward cache
    is ``cached``."""
    resolver = Resolver(zone.index, zone.layout, zone.settings)
    block = Block((ROOT,), cluster=resolver, routes=(Route(1, ROOT),))
    return Responder(
        Router([block], layout=zone.layout, ttl=resolver.ttl),
        max_udp_size=ServeConfig().max_udp_size,
        cache_size=cache_size,
        recursion_available=True,
        forward_caches=(cached,),
        loadbalance=loadbalance,
    )


def make_targets(zone: ClusterZone | None = None, *, cache_size: int = 2000) -> list[Target]:
    """The two ways the fuzzer runs kdns (see the module docstring)."""
    zone = zone or build_zone()
    apexes = tuple(
        tuple(label.lower() for label in apex.split(b".") if label)
        for apex in (z.encode() for z in zone.settings.zones)
    )
    max_udp_size = ServeConfig().max_udp_size
    resolver = Resolver(zone.index, zone.layout, zone.settings)
    cluster_zones = tuple(to_wire(z) for z in zone.settings.zones)
    authoritative = Responder(
        Router([Block(cluster_zones, cluster=resolver)], layout=zone.layout, ttl=resolver.ttl),
        max_udp_size=max_udp_size,
        cache_size=cache_size,
    )
    cache, keys = forward_cache()
    forwarding = forwarding_responder(zone, cache.get, cache_size=cache_size, loadbalance=True)
    forwarding.autopath = NamespaceOf()
    return [
        Target("authoritative", authoritative, apexes, forwarding=False),
        Target(
            "forwarding", forwarding, apexes, forwarding=True, cached=keys, client=CLIENT, deterministic=False
        ),
    ]


def zone_names(zone: ClusterZone) -> list[bytes]:
    """Names the generator starts from: every name of the zone, some computed and some outside."""
    names = sorted(zone.index.nodes)
    names += [wire_name(n) for n in ("10-244-1-7.shop.pod.cluster.local", "10-1-2-3.nope.pod.cluster.local")]
    names += [
        wire_name(n)
        for n in ("7.1.244.10.in-addr.arpa", "1.0.0.10.in-addr.arpa", "missing.shop.svc.cluster.local")
    ]
    names += [wire_name(n) for n in OUTSIDE]
    return names + [wire_name(n) for n in HEAVY] * 6  # answers that need truncating, often
