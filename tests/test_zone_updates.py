"""The zone follows the cluster object by object: adds, updates and deletes of one Service or slice
touch only its names, and the packed answers that depend on them are dropped."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype

from kdns.cluster.convert import to_object
from kdns.cluster.model import Event, EventType
from kdns.cluster.selector import ObjectFilter
from kdns.config import ServeConfig
from kdns.zone.names import to_wire
from tests.support.objects import endpoint_slice, namespace, service
from tests.support.zone import ask_resolver, responder_of, zone_of


def added(raw: dict) -> Event:
    return Event(EventType.ADDED, to_object(raw))


def deleted(raw: dict) -> Event:
    return Event(EventType.DELETED, to_object(raw))


def test_service_add_update_delete():
    zone = zone_of([namespace("default")])
    baseline = set(zone.index.nodes)
    zone.apply(added(service("web", ip="10.96.1.1", ports=[("http", 80, "TCP")])))
    assert ask_resolver(zone, "web.default.svc.cluster.local").answer == [
        "web.default.svc.cluster.local. 5 IN A 10.96.1.1"
    ]
    assert ask_resolver(zone, "_http._tcp.web.default.svc.cluster.local", "SRV").rcode == "NOERROR"

    zone.apply(
        Event(EventType.MODIFIED, to_object(service("web", ip="10.96.1.2", ports=[("web", 8080, "TCP")])))
    )
    assert ask_resolver(zone, "web.default.svc.cluster.local").answer == [
        "web.default.svc.cluster.local. 5 IN A 10.96.1.2"
    ]
    assert ask_resolver(zone, "_http._tcp.web.default.svc.cluster.local", "SRV").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "_web._tcp.web.default.svc.cluster.local", "SRV").rcode == "NOERROR"
    assert ask_resolver(zone, "1.1.96.10.in-addr.arpa", "PTR").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "2.1.96.10.in-addr.arpa", "PTR").rcode == "NOERROR"

    zone.apply(deleted(service("web", ip="10.96.1.2")))
    assert ask_resolver(zone, "web.default.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "_tcp.web.default.svc.cluster.local").rcode == "NXDOMAIN"
    assert set(zone.index.nodes) == baseline  # empty non-terminals went with it


def test_headless_endpoints_follow_their_slices():
    zone = zone_of([namespace("db"), service("pg", "db", ip="None", ports=[("pg", 5432, "TCP")])])
    assert ask_resolver(zone, "pg.db.svc.cluster.local").rcode == "NXDOMAIN"  # headless without endpoints
    first = endpoint_slice("pg-a", "pg", "db", addresses=["10.0.0.1"], ports=[("pg", 5432, "TCP")])
    zone.apply(added(first))
    assert ask_resolver(zone, "pg.db.svc.cluster.local").answer == [
        "pg.db.svc.cluster.local. 5 IN A 10.0.0.1"
    ]
    second = endpoint_slice("pg-b", "pg", "db", addresses=["10.0.0.2"], ports=[("pg", 5432, "TCP")])
    zone.apply(added(second))
    assert len(ask_resolver(zone, "pg.db.svc.cluster.local").answer) == 2
    assert ask_resolver(zone, "_pg._tcp.pg.db.svc.cluster.local", "SRV").answer == [
        "_pg._tcp.pg.db.svc.cluster.local. 5 IN SRV 0 50 5432 10-0-0-1.pg.db.svc.cluster.local.",
        "_pg._tcp.pg.db.svc.cluster.local. 5 IN SRV 0 50 5432 10-0-0-2.pg.db.svc.cluster.local.",
    ]
    not_ready = endpoint_slice(
        "pg-a",
        "pg",
        "db",
        ports=[("pg", 5432, "TCP")],
        addresses=[{"addresses": ["10.0.0.1"], "conditions": {"ready": False}}],
    )
    zone.apply(Event(EventType.MODIFIED, to_object(not_ready)))
    assert ask_resolver(zone, "pg.db.svc.cluster.local").answer == [
        "pg.db.svc.cluster.local. 5 IN A 10.0.0.2"
    ]
    assert ask_resolver(zone, "10-0-0-1.pg.db.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "1.0.0.10.in-addr.arpa", "PTR").rcode == "NXDOMAIN"
    zone.apply(deleted(second))
    assert ask_resolver(zone, "pg.db.svc.cluster.local").rcode == "NXDOMAIN"


def test_slice_moving_between_services():
    zone = zone_of(
        [
            service("a", ip="10.96.0.5"),
            service("b", ip="10.96.0.6"),
            endpoint_slice("s", "a", addresses=["10.1.0.1"]),
        ]
    )
    assert ask_resolver(zone, "10-1-0-1.a.default.svc.cluster.local").rcode == "NOERROR"
    zone.apply(added(endpoint_slice("s", "b", addresses=["10.1.0.1"])))
    assert ask_resolver(zone, "10-1-0-1.a.default.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "10-1-0-1.b.default.svc.cluster.local").rcode == "NOERROR"


def test_namespace_exists_through_its_object_or_its_services():
    zone = zone_of([])
    assert ask_resolver(zone, "team.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "1-2-3-4.team.pod.cluster.local").rcode == "NXDOMAIN"
    zone.apply(added(namespace("team")))
    assert ask_resolver(zone, "team.svc.cluster.local").rcode == "NOERROR"
    assert ask_resolver(zone, "1-2-3-4.team.pod.cluster.local").answer == [
        "1-2-3-4.team.pod.cluster.local. 5 IN A 1.2.3.4"
    ]
    zone.apply(added(service("x", "team")))
    zone.apply(deleted(namespace("team")))
    assert ask_resolver(zone, "team.svc.cluster.local").rcode == "NOERROR"  # its Service still lives there
    zone.apply(deleted(service("x", "team")))
    assert ask_resolver(zone, "team.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "team.pod.cluster.local").rcode == "NXDOMAIN"


def test_shared_ptr_is_reference_counted():
    """One pod IP behind two Services has a PTR for each endpoint name until both are gone."""
    zone = zone_of(
        [
            service("a", ip="None"),
            service("b", ip="None"),
            endpoint_slice("sa", "a", addresses=["10.1.0.9"]),
            endpoint_slice("sb", "b", addresses=["10.1.0.9"]),
        ]
    )
    assert len(ask_resolver(zone, "9.0.1.10.in-addr.arpa", "PTR").answer) == 2
    zone.apply(deleted(endpoint_slice("sa", "a")))
    assert ask_resolver(zone, "9.0.1.10.in-addr.arpa", "PTR").answer == [
        "9.0.1.10.in-addr.arpa. 5 IN PTR 10-1-0-9.b.default.svc.cluster.local."
    ]
    zone.apply(deleted(endpoint_slice("sb", "b")))
    assert ask_resolver(zone, "9.0.1.10.in-addr.arpa", "PTR").rcode == "NXDOMAIN"


def test_unchanged_update_touches_nothing():
    zone = zone_of([service("a", ip="10.96.0.5", ports=[("http", 80, "TCP")])])
    assert (
        zone.apply(
            Event(EventType.MODIFIED, to_object(service("a", ip="10.96.0.5", ports=[("http", 80, "TCP")])))
        )
        == set()
    )


def test_packed_answers_are_dropped_when_their_names_change():
    zone = zone_of(
        [
            namespace("default"),
            service("web", ip="10.96.1.1"),
            service("alias", type="ExternalName", externalName="web.default.svc.cluster.local", ip=None),
        ]
    )
    responder = responder_of(zone, ServeConfig())

    def query(name: str, qtype: str = "A") -> dns.message.Message:
        wire = responder.respond(dns.message.make_query(name, qtype).to_wire())
        return dns.message.from_wire(wire)

    assert query("web.default.svc.cluster.local").answer[0][0].address == "10.96.1.1"
    assert query("alias.default.svc.cluster.local").answer[1][0].address == "10.96.1.1"
    assert query("new.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    cached = len(responder)
    zone.apply(added(service("web", ip="10.96.1.7")))
    assert len(responder) == cached - 2  # web and the CNAME chain through it; the NXDOMAIN stays
    assert query("web.default.svc.cluster.local").answer[0][0].address == "10.96.1.7"
    assert query("alias.default.svc.cluster.local").answer[1][0].address == "10.96.1.7"
    zone.apply(added(service("new", ip="10.96.1.8")))
    assert query("new.default.svc.cluster.local").answer[0][0].address == "10.96.1.8"


def test_names_not_held_while_the_cluster_is_being_listed_are_servfail_until_it_is_listed():
    """As CoreDNS before its first sync: a name the zone lacks may yet exist, so it is no NXDOMAIN
    (which clients would cache); the packed failures go once the listing is done."""
    zone = zone_of([namespace("default"), service("web", ip="10.96.1.1")])
    zone.listing()
    responder = responder_of(zone, ServeConfig())

    def query(name: str) -> dns.message.Message:
        return dns.message.from_wire(responder.respond(dns.message.make_query(name, "A").to_wire()))

    assert query("web.default.svc.cluster.local").answer[0][0].address == "10.96.1.1"  # held: answered
    assert query("default.svc.cluster.local").rcode() == dns.rcode.NOERROR  # held, no A: NODATA
    early = query("late.default.svc.cluster.local")
    assert early.rcode() == dns.rcode.SERVFAIL
    assert early.authority[0].rdtype == dns.rdatatype.SOA
    assert query("gone.default.svc.cluster.local").rcode() == dns.rcode.SERVFAIL
    zone.apply(added(service("late", ip="10.96.1.2")))  # listed after the question was asked
    assert query("late.default.svc.cluster.local").answer[0][0].address == "10.96.1.2"
    zone.listed()
    assert query("gone.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert query("web.default.svc.cluster.local").answer[0][0].address == "10.96.1.1"


def test_insecure_pod_answers_follow_their_namespace():
    zone = zone_of([namespace("team")])
    responder = responder_of(zone, ServeConfig())
    wire = dns.message.make_query("1-2-3-4.team.pod.cluster.local", "A").to_wire()
    assert dns.message.from_wire(responder.respond(wire)).rcode() == dns.rcode.NOERROR
    zone.apply(deleted(namespace("team")))
    assert dns.message.from_wire(responder.respond(wire)).rcode() == dns.rcode.NXDOMAIN


def test_cache_is_bounded():
    zone = zone_of([])
    responder = responder_of(zone, ServeConfig(answer_cache_size=100))
    for i in range(1000):
        responder.respond(dns.message.make_query(f"n{i}.default.svc.cluster.local", "A").to_wire())
    assert len(responder) == 100
    assert sum(1 if type(keys) is bytes else len(keys) for keys in responder._keys_by_name.values()) == 100
    assert to_wire("n999.default.svc.cluster.local") in responder._keys_by_name


def test_a_flood_of_random_names_does_not_displace_answers_still_asked_for():
    zone = zone_of([])
    responder = responder_of(zone, ServeConfig(answer_cache_size=100))
    hot = [dns.message.make_query(f"hot{i}.default.svc.cluster.local", "A").to_wire() for i in range(20)]
    resolved = []
    resolve = responder.resolver.resolve
    responder.resolver.resolve = lambda *question: resolved.append(question[0]) or resolve(*question)
    for i in range(2000):
        responder.respond(dns.message.make_query(f"r{i}.default.svc.cluster.local", "A").to_wire())
        responder.respond(hot[i % len(hot)])
    assert len(responder) == 100
    assert sum(name[1:4] == b"hot" for name in resolved) == len(hot)  # each made once, then kept


def test_namespace_labels_serve_only_the_namespaces_handed_over():
    """With namespace_labels the source hands over only matching Namespaces: what lives in any other
    namespace has no name, though its Services are held, and a namespace coming into or going out
    of the selection brings or takes its names (the answers packed for them are dropped)."""
    team = [
        service("web", "team", ip="10.96.3.1", ports=[("http", 80, "TCP")]),
        service("pg", "team", ip="None"),
        endpoint_slice("pg-1", "pg", "team", addresses=["10.3.0.1"]),
    ]
    zone = zone_of(
        [namespace("shop"), service("web", "shop", ip="10.96.4.1"), *team], namespace_labels="dns=on"
    )
    assert ask_resolver(zone, "web.shop.svc.cluster.local").rcode == "NOERROR"
    for name in ("web.team.svc.cluster.local", "pg.team.svc.cluster.local", "team.svc.cluster.local"):
        assert ask_resolver(zone, name).rcode == "NXDOMAIN", name
    assert ask_resolver(zone, "1.3.96.10.in-addr.arpa", "PTR").rcode == "NXDOMAIN"
    responder = responder_of(zone, ServeConfig(zone=zone.settings))
    wire = dns.message.make_query("web.team.svc.cluster.local", "A").to_wire()
    assert dns.message.from_wire(responder.respond(wire)).rcode() == dns.rcode.NXDOMAIN

    touched = zone.apply(added(namespace("team", labels={"dns": "on"})))
    assert to_wire("web.team.svc.cluster.local") in touched
    assert dns.message.from_wire(responder.respond(wire)).answer[0][0].address == "10.96.3.1"
    assert ask_resolver(zone, "pg.team.svc.cluster.local").answer == [
        "pg.team.svc.cluster.local. 5 IN A 10.3.0.1"
    ]
    assert ask_resolver(zone, "_http._tcp.web.team.svc.cluster.local", "SRV").rcode == "NOERROR"
    assert ask_resolver(zone, "1.3.96.10.in-addr.arpa", "PTR").answer == [
        "1.3.96.10.in-addr.arpa. 5 IN PTR web.team.svc.cluster.local."
    ]

    zone.apply(deleted(namespace("team")))  # out of the selection: the API sends DELETED
    assert dns.message.from_wire(responder.respond(wire)).rcode() == dns.rcode.NXDOMAIN
    assert ask_resolver(zone, "pg.team.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "team.svc.cluster.local").rcode == "NXDOMAIN"
    zone.apply(deleted(service("web", "team")))  # gone while out: nothing comes back with the namespace
    zone.apply(added(namespace("team")))
    assert ask_resolver(zone, "web.team.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "pg.team.svc.cluster.local").rcode == "NOERROR"


def test_without_endpoints_headless_services_have_no_names_and_cluster_ips_answer():
    """``noendpoints``: the source hands over no EndpointSlice; a headless Service then has no
    endpoint to answer with (NXDOMAIN, as CoreDNS answers a headless Service without endpoints),
    and a ClusterIP Service answers its cluster IP and its SRV as usual, with no endpoint names."""
    objects = [
        namespace("default"),
        service("web", ip="10.96.1.1", ports=[("http", 80, "TCP")]),
        service("pg", ip="None", ports=[("pg", 5432, "TCP")]),
        endpoint_slice("web-1", "web", addresses=["10.1.0.1"], ports=[("http", 8080, "TCP")]),
        endpoint_slice("pg-1", "pg", addresses=["10.1.0.2"], ports=[("pg", 5432, "TCP")]),
    ]
    no_slices = ObjectFilter.build(slices=False)
    zone = zone_of([raw for raw in objects if no_slices.accepts(raw)], endpoints=False)
    assert ask_resolver(zone, "web.default.svc.cluster.local").answer == [
        "web.default.svc.cluster.local. 5 IN A 10.96.1.1"
    ]
    assert ask_resolver(zone, "_http._tcp.web.default.svc.cluster.local", "SRV").answer == [
        "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."
    ]
    assert ask_resolver(zone, "pg.default.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "_pg._tcp.pg.default.svc.cluster.local", "SRV").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "10-1-0-1.web.default.svc.cluster.local").rcode == "NXDOMAIN"
    assert ask_resolver(zone, "1.0.1.10.in-addr.arpa", "PTR").rcode == "NXDOMAIN"
