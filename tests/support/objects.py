"""Kubernetes objects as the API server serves them, built for tests: the raw dicts kdns reads from a
snapshot file or a watch, with only the fields kdns looks at."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CACHE_MEMBERS = 18  # in ``big_namespace``: their SRV answer fits 1232 bytes, their addresses too do not


def namespace(name: str, *, labels: dict[str, str] | None = None) -> dict:
    metadata: dict[str, Any] = {"name": name}
    if labels is not None:
        metadata["labels"] = labels
    return {"kind": "Namespace", "metadata": metadata}


def service(
    name: str,
    ns: str = "default",
    *,
    ip: str | list[str] | None = "10.96.1.1",
    ports: list[tuple[str, int, str]] = (),
    **spec: Any,
) -> dict:
    body: dict[str, Any] = {"ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}
    if ip == "None":
        body["clusterIP"] = "None"
    elif isinstance(ip, list):
        body["clusterIP"], body["clusterIPs"] = ip[0], ip
    elif ip:
        body["clusterIP"] = ip
    body.update(spec)
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def endpoint_slice(
    name: str,
    svc: str,
    ns: str = "default",
    *,
    addresses: Iterable[str | dict] = (),
    ports: list[tuple[str, int, str]] = (),
    address_type: str = "IPv4",
) -> dict:
    endpoints = [
        a if isinstance(a, dict) else {"addresses": [a], "conditions": {"ready": True}} for a in addresses
    ]
    return {
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
    }


def pod(
    name: str, ns: str = "default", *, ips: Iterable[str] = (), phase: str = "Running", deleting: bool = False
) -> dict:
    """A pod with its IPs in ``status``; ``deleting`` gives it a ``deletionTimestamp`` (terminating)."""
    ips = list(ips)
    metadata: dict[str, Any] = {"name": name, "namespace": ns}
    if deleting:
        metadata["deletionTimestamp"] = "2024-05-01T12:00:00Z"
    status: dict[str, Any] = {"phase": phase, "podIPs": [{"ip": ip} for ip in ips]}
    if ips:
        status["podIP"] = ips[0]
    return {"kind": "Pod", "metadata": metadata, "status": status}


def big_namespace() -> list[dict]:
    """Namespace ``big``: a headless Service ``wide`` of 200 endpoints (no UDP answer holds them), and
    ``cache`` of ``CACHE_MEMBERS`` named members whose SRV answer fits but whose additions overflow."""
    members = [
        {
            "addresses": [f"10.9.{i // 250}.{i % 250 + 1}"],
            "hostname": f"member-{i:02d}",
            "conditions": {"ready": True},
        }
        for i in range(CACHE_MEMBERS)
    ]
    return [
        namespace("big"),
        service("wide", "big", ip="None", ports=[("http", 80, "TCP")]),
        endpoint_slice(
            "wide-1",
            "wide",
            "big",
            ports=[("http", 80, "TCP")],
            addresses=[f"10.8.{i // 250}.{i % 250 + 1}" for i in range(200)],
        ),
        service("cache", "big", ip="None", ports=[("memcache", 11211, "TCP")]),
        endpoint_slice("cache-1", "cache", "big", addresses=members, ports=[("memcache", 11211, "TCP")]),
    ]


def big_service() -> list[dict]:
    """A headless Service ``crowd.shop`` with 100 IPv4 and 40 IPv6 named endpoints, so answers need
    truncating."""
    http = [("http", 80, "TCP")]
    slices = [
        endpoint_slice(
            f"crowd-{family.lower()}",
            "crowd",
            "shop",
            addresses=[
                {"addresses": [address(n)], "hostname": f"member-{n}", "conditions": {"ready": True}}
                for n in range(count)
            ],
            ports=http,
            address_type=family,
        )
        for family, count, address in (
            ("IPv4", 100, lambda n: f"10.77.{n // 200}.{n % 200 + 1}"),
            ("IPv6", 40, lambda n: f"fd00:77::{n + 1:x}"),
        )
    ]
    return [service("crowd", "shop", ip="None", ports=http), *slices]


def service_import(
    name: str,
    ns: str = "default",
    *,
    kind: str = "ClusterSetIP",
    ips: list[str] = (),
    ports: list[tuple[str, int, str]] = (),
) -> dict:
    """A multicluster.x-k8s.io/v1alpha1 ServiceImport (KEP-1645)."""
    return {
        "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceImport",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "type": kind,
            "ips": list(ips),
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
        },
    }


def imported_slice(name: str, imported: str, cluster: str, ns: str = "default", **options: Any) -> dict:
    """An EndpointSlice of a ServiceImport, from member cluster ``cluster``, as an MCS controller
    labels it (``endpoint_slice``'s options)."""
    piece = endpoint_slice(name, imported, ns, **options)
    piece["metadata"]["labels"] = {
        "multicluster.kubernetes.io/service-name": imported,
        "multicluster.kubernetes.io/source-cluster": cluster,
    }
    return piece


def srv_repeats() -> list[dict]:
    """Services whose SRV records CoreDNS makes more than once, in namespace ``default``: ``dual``, a
    dual-stack ClusterIP Service; ``dns``, with two ports of one number (as kube-dns has); ``hl``, a
    dual-stack headless Service whose endpoint ``a`` has an address in each family, ``b`` one."""
    http = [("http", 80, "TCP")]
    dns_ports = [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    return [
        namespace("default"),
        service("dual", ip=["10.96.5.5", "fd00:96::5"], ports=http),
        service("dns", ip="10.96.5.10", ports=dns_ports),
        service("hl", ip="None", ports=http),
        endpoint_slice(
            "hl-v4",
            "hl",
            addresses=[
                {"addresses": ["10.1.0.1"], "hostname": "a"},
                {"addresses": ["10.1.0.2"], "hostname": "b"},
            ],
            ports=http,
        ),
        endpoint_slice(
            "hl-v6",
            "hl",
            addresses=[{"addresses": ["fd00::a"], "hostname": "a"}],
            ports=http,
            address_type="IPv6",
        ),
    ]
