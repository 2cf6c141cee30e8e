"""k8s_external in a server block, no sockets: Services' external and load balancer IPs under the
external zone, SRV, headless endpoints, the apex's SOA and NS, negative answers and fallthrough, as
CoreDNS's plugin answers them; and the names kept current as Services change."""

from __future__ import annotations

import pytest

from kdns.app import build_external
from kdns.cluster.convert import to_object
from kdns.cluster.model import Event, EventType
from kdns.config import ExternalSettings, ServerSettings
from kdns.zone.names import to_wire
from tests.support.objects import endpoint_slice, namespace, service
from tests.support.zone import ask_server, zone_of

ZONES = ("cluster.local", "example.org")  # the block's; the cluster's is cluster.local
SOA = "example.org. 10 IN SOA ns1.dns.example.org. hostmaster.dns.example.org. SERIAL 7200 1800 86400 10"
NODATA = ("NOERROR", [], [SOA])
NXDOMAIN = ("NXDOMAIN", [], [SOA])


def cluster_objects() -> list[dict]:
    web = service(
        "web",
        ip="10.96.0.80",
        ports=[("http", 80, "TCP"), ("metrics", 9090, "TCP")],
        externalIPs=["192.0.2.10"],
    )
    web["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.11"}, {"hostname": "lb.example.net"}]}}
    # kdns's own Service (its endpoint is kdns's address, OWN): its external IPs name the name server
    dns = service("kube-dns", "kube-system", ip="10.96.0.10", externalIPs=["192.0.2.53", "2001:db8::53"])
    dns_endpoints = endpoint_slice("kube-dns-1", "kube-dns", "kube-system", addresses=["10.244.0.2"])
    db_endpoints = [
        {"addresses": ["10.1.0.1"], "hostname": "db-0", "conditions": {"ready": True}},
        {"addresses": ["10.1.0.2"], "hostname": "db-1", "conditions": {"ready": True}},
        {"addresses": ["10.1.0.3"], "hostname": "db-2", "conditions": {"ready": False}},
    ]
    return [
        namespace("default"),
        namespace("kube-system"),
        web,
        dns,
        dns_endpoints,
        service("plain", ip="10.96.0.81", ports=[("http", 80, "TCP")]),
        service("v6", ip="10.96.0.82", externalIPs=["2001:db8::6"]),
        service("db", ip="None", ports=[("pg", 5432, "TCP")]),
        endpoint_slice("db-1", "db", addresses=db_endpoints, ports=[("pg", 5432, "TCP")]),
    ]


OWN = frozenset({bytes([10, 244, 0, 2])})  # kdns's address in these tests


@pytest.fixture(scope="module")
def zone():
    return zone_of(cluster_objects(), zones=("cluster.local",), own_addresses=OWN)


def block(**external) -> ServerSettings:
    settings = ExternalSettings(zones=("example.org",), ttl=10, **external)
    return ServerSettings(zones=ZONES, external=settings)


CASES = [
    # external and load balancer IPs (not the ingress hostname), A TTL the plugin's
    (
        "web.default.example.org",
        "A",
        "NOERROR",
        ["web.default.example.org. 10 IN A 192.0.2.10", "web.default.example.org. 10 IN A 192.0.2.11"],
        [],
    ),
    ("web.default.example.org", "AAAA", *NODATA),
    ("v6.default.example.org", "AAAA", "NOERROR", ["v6.default.example.org. 10 IN AAAA 2001:db8::6"], []),
    ("web.default.example.org", "TXT", *NODATA),
    ("web.default.example.org", "ANY", *NODATA),
    # SRV: 100 shared among 2 IPs x 2 ports, the kubernetes TTL (5), targets' addresses as additional
    (
        "web.default.example.org",
        "SRV",
        "NOERROR",
        [
            "web.default.example.org. 5 IN SRV 0 25 80 web.default.example.org.",
            "web.default.example.org. 5 IN SRV 0 25 9090 web.default.example.org.",
        ],
        [],
    ),
    (
        "_http._tcp.web.default.example.org",
        "SRV",
        "NOERROR",
        ["_http._tcp.web.default.example.org. 5 IN SRV 0 50 80 web.default.example.org."],
        [],
    ),
    # CoreDNS answers an address question at an SRV name with the Service's addresses
    (
        "_http._tcp.web.default.example.org",
        "A",
        "NOERROR",
        [
            "_http._tcp.web.default.example.org. 10 IN A 192.0.2.10",
            "_http._tcp.web.default.example.org. 10 IN A 192.0.2.11",
        ],
        [],
    ),
    ("_http._udp.web.default.example.org", "SRV", *NXDOMAIN),
    # a Service without external IPs, a headless Service without the headless option: no names
    ("plain.default.example.org", "A", *NXDOMAIN),
    ("db.default.example.org", "A", *NXDOMAIN),
    ("db-0.db.default.example.org", "A", *NXDOMAIN),
    # a namespace that exists is NODATA, one that does not NXDOMAIN
    ("default.example.org", "A", *NODATA),
    ("web.nowhere.example.org", "A", *NXDOMAIN),
    ("a.b.web.default.example.org", "A", *NXDOMAIN),
    # the apex: SOA, NS with the cluster DNS Service's external IPs as glue, NODATA otherwise
    ("example.org", "SOA", "NOERROR", [SOA], []),
    ("example.org", "NS", "NOERROR", ["example.org. 10 IN NS ns1.dns.example.org."], []),
    ("example.org", "A", *NODATA),
    ("dns.example.org", "A", *NODATA),
    ("ns1.dns.example.org", "A", "NOERROR", ["ns1.dns.example.org. 10 IN A 192.0.2.53"], []),
    ("ns1.dns.example.org", "AAAA", "NOERROR", ["ns1.dns.example.org. 10 IN AAAA 2001:db8::53"], []),
    ("ns1.dns.example.org", "TXT", *NODATA),
    ("ns2.dns.example.org", "A", *NXDOMAIN),
    ("a.ns1.dns.example.org", "A", *NXDOMAIN),
    # the cluster zone is the kubernetes plugin's, after k8s_external
    (
        "web.default.svc.cluster.local",
        "A",
        "NOERROR",
        ["web.default.svc.cluster.local. 5 IN A 10.96.0.80"],
        [],
    ),
]


@pytest.mark.parametrize(("name", "qtype", "rcode", "answer", "authority"), CASES)
def test_external_names(zone, name, qtype, rcode, answer, authority):
    reply = ask_server(zone, block(), name, qtype)
    assert (reply.rcode, reply.answer, reply.authority) == (rcode, sorted(answer), authority)
    assert reply.aa


def test_srv_answers_carry_their_targets_addresses(zone):
    reply = ask_server(zone, block(), "_http._tcp.web.default.example.org", "SRV")
    assert reply.additional == [
        "web.default.example.org. 10 IN A 192.0.2.10",
        "web.default.example.org. 10 IN A 192.0.2.11",
    ]


def test_apex_ns_carries_the_name_servers_addresses(zone):
    reply = ask_server(zone, block(), "example.org", "NS")
    assert reply.additional == [
        "ns1.dns.example.org. 10 IN A 192.0.2.53",
        "ns1.dns.example.org. 10 IN AAAA 2001:db8::53",
    ]


def test_apex_option_names_the_name_server_and_hostmaster(zone):
    reply = ask_server(zone, block(apex="ext"), "example.org", "SOA")
    assert reply.answer == [SOA.replace(".dns.", ".ext.")]
    assert ask_server(zone, block(apex="ext"), "ns1.ext.example.org", "A").answer == [
        "ns1.ext.example.org. 10 IN A 192.0.2.53"
    ]
    assert ask_server(zone, block(apex="ext"), "dns.example.org", "A").rcode == "NXDOMAIN"


HEADLESS = [
    (
        "db.default.example.org",
        "A",
        ["db.default.example.org. 10 IN A 10.1.0.1", "db.default.example.org. 10 IN A 10.1.0.2"],
    ),
    ("db-0.db.default.example.org", "A", ["db-0.db.default.example.org. 10 IN A 10.1.0.1"]),
    (
        "_pg._tcp.db.default.example.org",
        "SRV",
        [
            "_pg._tcp.db.default.example.org. 5 IN SRV 0 50 5432 db-0.db.default.example.org.",
            "_pg._tcp.db.default.example.org. 5 IN SRV 0 50 5432 db-1.db.default.example.org.",
        ],
    ),
]


@pytest.mark.parametrize(("name", "qtype", "answer"), HEADLESS)
def test_headless_option_names_ready_endpoints(zone, name, qtype, answer):
    reply = ask_server(zone, block(headless=True), name, qtype)
    assert (reply.rcode, reply.answer) == ("NOERROR", sorted(answer))


def test_headless_option_leaves_endpoints_not_ready_and_other_services_out(zone):
    assert ask_server(zone, block(headless=True), "db-2.db.default.example.org", "A").rcode == "NXDOMAIN"
    assert ask_server(zone, block(headless=True), "plain.default.example.org", "A").rcode == "NXDOMAIN"
    srv = ask_server(zone, block(headless=True), "_pg._tcp.db.default.example.org", "SRV")
    assert srv.additional == [
        "db-0.db.default.example.org. 10 IN A 10.1.0.1",
        "db-1.db.default.example.org. 10 IN A 10.1.0.2",
    ]


def test_fallthrough_hands_names_that_do_not_exist_to_the_next_plugin(zone):
    # no plugin after it in this block: the question ends as CoreDNS's chain does, SERVFAIL
    through = block(fallthrough=("example.org",))
    assert ask_server(zone, through, "missing.default.example.org", "A").rcode == "SERVFAIL"
    assert ask_server(zone, through, "web.default.example.org", "AAAA").rcode == "NOERROR"  # NODATA stays
    assert ask_server(zone, through, "ns2.dns.example.org", "A").rcode == "NXDOMAIN"  # the apex's own
    assert (
        ask_server(zone, block(fallthrough=("other.org",)), "missing.default.example.org").rcode == "NXDOMAIN"
    )


def test_zone_transfers_are_refused(zone):
    assert ask_server(zone, block(), "example.org", "AXFR").rcode == "REFUSED"


def test_external_names_follow_the_cluster_and_name_what_changed():
    zone = zone_of(cluster_objects(), zones=("cluster.local",), own_addresses=OWN)
    server = block()
    changed: list[set[bytes]] = []
    zone.on_change(changed.append)
    plain = service("plain", ip="10.96.0.81", ports=[("http", 80, "TCP")])
    plain["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}
    plugin = build_external(server.external, server.zones, zone)
    zone.apply(Event(EventType.MODIFIED, to_object(plain)))
    assert to_wire("plain.default.example.org") in set().union(*changed)
    assert plugin.names.index.get(to_wire("plain.default.example.org")) is not None
    assert ask_server(zone, server, "plain.default.example.org").answer == [
        "plain.default.example.org. 10 IN A 198.51.100.7"
    ]
    zone.apply(Event(EventType.DELETED, to_object(plain)))
    assert ask_server(zone, server, "plain.default.example.org").rcode == "NXDOMAIN"


def test_namespace_labels_hide_the_external_names_of_namespaces_not_selected():
    """As CoreDNS's k8s_external asks whether a namespace is exposed: with namespace_labels, the
    external names of a namespace come and go with its selection."""
    objects = [o for o in cluster_objects() if o["metadata"]["name"] != "default" or o["kind"] != "Namespace"]
    zone = zone_of(objects, zones=("cluster.local",), namespace_labels="dns=on", own_addresses=OWN)
    server = block()
    plugin = build_external(server.external, server.zones, zone)  # held: kept current
    assert ask_server(zone, server, "web.default.example.org").rcode == "NXDOMAIN"
    assert ask_server(zone, server, "default.example.org").rcode == "NXDOMAIN"
    zone.apply(Event(EventType.ADDED, to_object(namespace("default", labels={"dns": "on"}))))
    assert ask_server(zone, server, "web.default.example.org").answer == [
        "web.default.example.org. 10 IN A 192.0.2.10",
        "web.default.example.org. 10 IN A 192.0.2.11",
    ]
    assert ask_server(zone, server, "default.example.org").rcode == "NOERROR"
    zone.apply(Event(EventType.DELETED, to_object(namespace("default"))))
    assert ask_server(zone, server, "web.default.example.org").rcode == "NXDOMAIN"
    assert plugin.names.index.get(to_wire("web.default.example.org")) is None
