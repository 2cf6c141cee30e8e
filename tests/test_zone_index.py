"""The compact zone index under random churn: it keeps no owner's records, so each update takes out
records computed again from the state as it was. After every event the index must hold exactly what
a zone built from scratch holds, every name must exist for a reason, and ``apply`` must report
exactly the names whose records or existence changed."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kdns.cluster.convert import InvalidObject, to_object
from kdns.cluster.model import Event, EventType, Service, ServiceKind
from kdns.config import PodMode, ZoneSettings
from kdns.zone.cluster_zone import ClusterZone
from kdns.zone.index import ZoneIndex
from kdns.zone.names import parent, to_wire
from tests.support.objects import endpoint_slice, namespace, service

NAMESPACES = ("default", "team", "db")
SERVICES = ("web", "api", "pg", "cache", "alias", "kube-dns")
IPS = [f"10.1.0.{i}" for i in range(1, 7)] + ["fd00::1", "fd00::2"]  # few, so names and PTRs collide
PORTS = [("http", 80, "TCP"), ("", 8080, "TCP"), ("dns", 53, "UDP"), ("grpc", 9090, "TCP")]

View = dict[bytes, dict[int, list[str]]]


def view(index: ZoneIndex) -> View:
    """Every name with its records by type, in a form independent of order."""
    out = {}
    for name in index.nodes:
        node = index.get(name)
        out[name] = {rtype: sorted(repr(r) for r in rdatas) for rtype, rdatas in node.rrsets.items()}
    return out


def random_object(rng: random.Random) -> dict[str, Any]:
    ns = rng.choice(NAMESPACES)
    roll = rng.random()
    if roll < 0.1:
        return namespace(ns)
    if roll < 0.4:
        name = rng.choice(SERVICES)
        ports = rng.sample(PORTS, rng.randint(0, 2))
        if name == "alias":
            target = rng.choice(["web.default.svc.cluster.local", "example.com", "10.0.0.1"])
            return service(name, ns, ip=None, type="ExternalName", externalName=target, ports=ports)
        ip = rng.choice(["None", "None", f"10.96.0.{rng.randint(1, 4)}", ["10.96.0.9", "fd00:96::9"], None])
        return service(name, ns, ip=ip, ports=ports, publishNotReadyAddresses=rng.random() < 0.3)
    if roll < 0.85:
        family = rng.choice(["IPv4", "IPv4", "IPv6"])
        pool = [ip for ip in IPS if (":" in ip) == (family == "IPv6")]
        endpoints = []
        for _ in range(rng.randint(0, 3)):
            endpoint: dict[str, Any] = {
                "addresses": rng.sample(pool, rng.randint(1, 2)),
                "conditions": {"ready": rng.random() < 0.8},
            }
            if rng.random() < 0.3:
                endpoint["hostname"] = rng.choice(["a-0", "a-1"])
            if rng.random() < 0.7:
                endpoint["targetRef"] = {"kind": "Pod", "name": rng.choice(["pod-a", "pod-b", "pod-c"])}
            endpoints.append(endpoint)
        return endpoint_slice(
            f"s{rng.randint(1, 6)}",
            rng.choice(SERVICES),
            ns,
            addresses=endpoints,
            ports=rng.sample(PORTS, rng.randint(0, 2)),
            address_type=family,
        )
    ips = rng.sample(IPS, rng.randint(0, 2))
    return {
        "kind": "Pod",
        "metadata": {"name": f"pod-{rng.randint(1, 4)}", "namespace": ns},
        "status": {"podIPs": [{"ip": ip} for ip in ips]},
    }


def check_structure(zone: ClusterZone) -> None:
    """Every name below an apex has its parent; every name but an apex holds a record or a child."""
    nodes = zone.index.nodes
    apexes = set(zone.layout.apexes)
    with_children = {parent(name) for name in nodes if name not in apexes}
    for name in nodes:
        if name not in apexes:
            assert parent(name) in nodes, name
            assert zone.index.get(name).rrsets or name in with_children, name
    for apex in apexes:
        assert apex in nodes


SETTINGS = [
    ZoneSettings(),
    ZoneSettings(pods=PodMode.VERIFIED, endpoint_pod_names=True),
    ZoneSettings(
        zones=("cluster.local", "example.org", "10.in-addr.arpa", "ip6.arpa"), ignore_empty_service=True
    ),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=["default", "verified-pod-names", "zones-ignore-empty"])
@pytest.mark.parametrize("seed", range(4))
def test_random_churn_matches_a_fresh_build_and_reports_exactly_the_changed_names(settings, seed):
    rng = random.Random(seed)
    zone = ClusterZone(settings)
    for _ in range(300):
        raw = random_object(rng)
        kind = EventType.DELETED if rng.random() < 0.3 else EventType.ADDED
        before = view(zone.index)
        touched = zone.apply(Event(kind, to_object(raw)))
        after = view(zone.index)
        changed = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
        assert touched == changed
        check_structure(zone)
        fresh = ClusterZone(settings)
        fresh.load(zone.objects())
        assert view(fresh.index) == after


def test_batches_rebuild_each_owner_from_its_records_before_the_batch():
    """A relist step may hold several events for one owner: the records taken out are the ones the
    index held before the first of them."""
    zone = ClusterZone(ZoneSettings())
    objects = [
        to_object(service("web", ip="10.96.0.1", ports=[("http", 80, "TCP")])),
        to_object(endpoint_slice("a", "web", addresses=["10.1.0.1"], ports=[("http", 80, "TCP")])),
    ]
    zone.load(objects)
    moved = to_object(endpoint_slice("a", "api", addresses=["10.1.0.2"]))
    back = to_object(endpoint_slice("a", "web", addresses=["10.1.0.3"], ports=[("http", 80, "TCP")]))
    list(zone.replace("EndpointSlice", [moved]))
    list(zone.replace("EndpointSlice", [back]))
    fresh = ClusterZone(ZoneSettings())
    fresh.load([*objects[:1], back])
    assert view(zone.index) == view(fresh.index)


def test_an_endpoint_ptr_alone_is_kept_as_its_target():
    zone = ClusterZone(ZoneSettings())
    zone.load(
        [
            to_object(service("web", ip="None")),
            to_object(endpoint_slice("a", "web", addresses=["10.1.0.1"])),
        ]
    )
    reverse = b"\x011\x010\x011\x0210\x07in-addr\x04arpa\x00"
    target = b"\x0810-1-0-1\x03web\x07default\x03svc\x07cluster\x05local\x00"
    assert zone.index.nodes[reverse] == target
    assert zone.index.get(reverse).rrsets == {12: [(target, 1)]}
    # one object for the name: the forward node's key, its records and the PTR's target
    forward = next(name for name in zone.index.nodes if name == target)
    assert forward is zone.index.nodes[reverse]


def test_a_load_that_fails_part_way_leaves_the_index_in_step_with_the_state():
    def objects():
        yield to_object(service("web", ip="10.96.0.1"))
        yield to_object(endpoint_slice("a", "web", addresses=["10.1.0.1"]))
        yield to_object(service("bad", ip="10.96.0.999"))  # InvalidObject, after two were taken in

    zone = ClusterZone(ZoneSettings())
    with pytest.raises(InvalidObject):
        zone.load(objects())
    assert zone.index.get(to_wire("10-1-0-1.web.default.svc.cluster.local")) is not None
    zone.apply(Event(EventType.DELETED, to_object(endpoint_slice("a", "web"))))
    fresh = ClusterZone(ZoneSettings())
    fresh.load([to_object(service("web", ip="10.96.0.1"))])
    assert view(zone.index) == view(fresh.index)


def test_an_owner_whose_records_cannot_be_built_keeps_what_the_index_holds():
    """A Service that never went through ``convert`` (a name that is no DNS label) fails to build;
    the index keeps its former records, and the next change starts from them."""
    zone = ClusterZone(ZoneSettings())
    zone.load([to_object(service("web", ip="10.96.0.1"))])
    good = view(zone.index)
    bad = Service(namespace="default", name="wéb", kind=ServiceKind.CLUSTER_IP, cluster_ips=("10.96.0.2",))
    with pytest.raises(UnicodeEncodeError):
        zone.apply(Event(EventType.ADDED, bad))
    assert view(zone.index) == good
    zone.apply(Event(EventType.DELETED, bad))
    zone.apply(Event(EventType.DELETED, to_object(service("web"))))
    assert view(zone.index) == view(ClusterZone(ZoneSettings()).index)
