"""The kubernetes plugin's ``multicluster`` zones, no sockets: ServiceImports named as KEP-1645's DNS
specification and CoreDNS name them, the Services staying in the cluster's own zone."""

from __future__ import annotations

import pytest

from kdns.cluster.convert import InvalidObject, SkippedObject, to_object
from kdns.cluster.model import Event, EventType, ServiceImportKind
from kdns.zone.names import to_wire
from tests.support.objects import endpoint_slice, imported_slice, namespace, service, service_import
from tests.support.zone import ask_resolver, zone_of

SETTINGS = {"zones": ("cluster.local", "clusterset.local"), "multicluster": ("clusterset.local",)}
SOA = "clusterset.local. 5 IN SOA ns.dns.clusterset.local. hostmaster.clusterset.local. SERIAL 7200 1800 86400 5"
NODATA = ("NOERROR", [], [SOA])
NXDOMAIN = ("NXDOMAIN", [], [SOA])
HTTP = [("http", 80, "TCP")]


def cluster_objects() -> list[dict]:
    db_a = [
        {"addresses": ["10.1.0.1"], "hostname": "db-0", "conditions": {"ready": True}},
        {"addresses": ["10.1.0.3"], "hostname": "db-2", "conditions": {"ready": False}},
    ]
    return [
        namespace("default"),
        service("web", ip="10.96.0.5", ports=HTTP),
        endpoint_slice("web-local", "web", addresses=["10.0.0.5"], ports=HTTP),
        service_import("web", ips=["10.42.0.5", "fd00:42::5"], ports=HTTP),
        service_import("db", kind="Headless", ports=[("pg", 5432, "TCP")]),
        imported_slice("db-a", "db", "cluster-a", addresses=db_a, ports=[("pg", 5432, "TCP")]),
        imported_slice("db-b", "db", "cluster-b", addresses=["10.2.0.9"], ports=[("pg", 5432, "TCP")]),
        service("local-only", ip="10.96.0.6"),
    ]


@pytest.fixture(scope="module")
def zone():
    return zone_of(cluster_objects(), **SETTINGS)


CASES = [
    # a ClusterSetIP import: its IPs, not the Service's cluster IP (that stays in cluster.local)
    (
        "web.default.svc.clusterset.local",
        "A",
        "NOERROR",
        ["web.default.svc.clusterset.local. 5 IN A 10.42.0.5"],
        [],
    ),
    (
        "web.default.svc.clusterset.local",
        "AAAA",
        "NOERROR",
        ["web.default.svc.clusterset.local. 5 IN AAAA fd00:42::5"],
        [],
    ),
    (
        "web.default.svc.cluster.local",
        "A",
        "NOERROR",
        ["web.default.svc.cluster.local. 5 IN A 10.96.0.5"],
        [],
    ),
    (
        "_http._tcp.web.default.svc.clusterset.local",
        "SRV",
        "NOERROR",
        ["_http._tcp.web.default.svc.clusterset.local. 5 IN SRV 0 100 80 web.default.svc.clusterset.local."],
        [],
    ),
    # no per-cluster or per-endpoint names for a ClusterSetIP import (KEP-1645 2.3.4)
    ("10-0-0-5.web.default.svc.clusterset.local", "A", *NXDOMAIN),
    # a headless import: the ready endpoints of every member cluster
    (
        "db.default.svc.clusterset.local",
        "A",
        "NOERROR",
        [
            "db.default.svc.clusterset.local. 5 IN A 10.1.0.1",
            "db.default.svc.clusterset.local. 5 IN A 10.2.0.9",
        ],
        [],
    ),
    (
        "db-0.cluster-a.db.default.svc.clusterset.local",
        "A",
        "NOERROR",
        ["db-0.cluster-a.db.default.svc.clusterset.local. 5 IN A 10.1.0.1"],
        [],
    ),
    (
        "10-2-0-9.cluster-b.db.default.svc.clusterset.local",
        "A",
        "NOERROR",
        ["10-2-0-9.cluster-b.db.default.svc.clusterset.local. 5 IN A 10.2.0.9"],
        [],
    ),
    ("db-2.cluster-a.db.default.svc.clusterset.local", "A", *NXDOMAIN),
    ("db-0.cluster-b.db.default.svc.clusterset.local", "A", *NXDOMAIN),
    (
        "_pg._tcp.db.default.svc.clusterset.local",
        "SRV",
        "NOERROR",
        [
            "_pg._tcp.db.default.svc.clusterset.local. 5 IN SRV 0 50 5432 10-2-0-9.cluster-b.db.default.svc.clusterset.local.",
            "_pg._tcp.db.default.svc.clusterset.local. 5 IN SRV 0 50 5432 db-0.cluster-a.db.default.svc.clusterset.local.",
        ],
        [],
    ),
    # a Service that is not imported has no clusterset name; the namespace exists there too
    ("local-only.default.svc.clusterset.local", "A", *NXDOMAIN),
    ("default.svc.clusterset.local", "A", *NODATA),
    ("web.nowhere.svc.clusterset.local", "A", *NXDOMAIN),
]


@pytest.mark.parametrize(("name", "qtype", "rcode", "answer", "authority"), CASES)
def test_multicluster_names(zone, name, qtype, rcode, answer, authority):
    reply = ask_resolver(zone, name, qtype)
    assert (reply.rcode, reply.answer, reply.authority) == (rcode, sorted(answer), authority)


def test_srv_of_an_import_carries_its_targets_addresses(zone):
    reply = ask_resolver(zone, "_pg._tcp.db.default.svc.clusterset.local", "SRV")
    assert reply.additional == [
        "10-2-0-9.cluster-b.db.default.svc.clusterset.local. 5 IN A 10.2.0.9",
        "db-0.cluster-a.db.default.svc.clusterset.local. 5 IN A 10.1.0.1",
    ]


def test_without_multicluster_zones_imports_name_nothing():
    zone = zone_of(cluster_objects(), zones=("cluster.local", "clusterset.local"))
    assert ask_resolver(zone, "db.default.svc.clusterset.local").rcode == "NXDOMAIN"
    # clusterset.local is then an ordinary zone of the cluster's Services
    assert ask_resolver(zone, "web.default.svc.clusterset.local").answer == [
        "web.default.svc.clusterset.local. 5 IN A 10.96.0.5"
    ]


def test_imports_and_their_slices_follow_the_cluster():
    zone = zone_of(cluster_objects(), **SETTINGS)
    later = imported_slice("db-c", "db", "cluster-c", addresses=["10.3.0.1"], ports=[("pg", 5432, "TCP")])
    changed = zone.apply(Event(EventType.ADDED, to_object(later)))
    assert to_wire("cluster-c.db.default.svc.clusterset.local") in changed  # the empty non-terminal
    assert (
        "db.default.svc.clusterset.local. 5 IN A 10.3.0.1"
        in ask_resolver(zone, "db.default.svc.clusterset.local").answer
    )
    zone.apply(Event(EventType.DELETED, to_object(service_import("db", kind="Headless"))))
    assert ask_resolver(zone, "db.default.svc.clusterset.local").rcode == "NXDOMAIN"
    zone.apply(Event(EventType.ADDED, to_object(service_import("db", kind="Headless"))))
    assert ask_resolver(zone, "db-0.cluster-a.db.default.svc.clusterset.local").rcode == "NOERROR"


def test_service_import_conversion():
    converted = to_object(service_import("web", kind="Headless", ips=["10.42.0.5"], ports=HTTP))
    assert converted.kind is ServiceImportKind.HEADLESS and converted.ips == ()  # a headless import has none
    bad_type = service_import("web", kind="Other")
    with pytest.raises(InvalidObject, match=r"spec\.type"):
        to_object(bad_type)
    with pytest.raises(InvalidObject, match="invalid IP"):
        to_object(service_import("web", ips=["10.42.0.500"]))
    piece = to_object(imported_slice("db-a", "db", "Cluster_A!"))
    assert (piece.service, piece.imported, piece.cluster) == ("", "db", "")  # not a DNS label: no cluster
    unlabelled = imported_slice("db-a", "db", "cluster-a")
    unlabelled["metadata"]["labels"] = {}
    with pytest.raises(SkippedObject):
        to_object(unlabelled)
