"""Large, deterministic cluster snapshots in the ``kubectl get ... -o json`` ``List`` format.

The mix of Services: about 80% ClusterIP (1-2 named ports, one EndpointSlice of 2-5 ready endpoints,
one in ten dual-stack with a second IPv6 slice), about 15% headless with StatefulSet hostnames
(``<svc>-0``, ``<svc>-1``, ...) and about 5% ExternalName. ``default/kubernetes`` and
``kube-system/kube-dns`` are always present. Each endpoint has a Running Pod. The same seed and sizes
give the same file. ``--endpoints-per-service N`` gives every ClusterIP Service exactly N endpoints
(10,000 Services with 11 each make about 100,000 endpoints).

Usage: ``python -m bench.cluster --services 1000 [--endpoints-per-service N] --out FILE``
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import string
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLUSTER_IP_SHARE = 0.80
HEADLESS_SHARE = 0.15
DUAL_STACK_SHARE = 0.10
NODES = 16
SERVICE_NET = ipaddress.ip_network("10.96.0.0/12")
SERVICE_NET6 = ipaddress.ip_network("fd00:10:96::/108")
POD_NET = ipaddress.ip_network("10.244.0.0/14")
POD_NET6 = ipaddress.ip_network("fd00:10:244::/56")

_WORDS = (
    "api", "auth", "billing", "cart", "catalog", "checkout", "config", "events", "gateway", "inventory",
    "ledger", "mail", "media", "notify", "orders", "payments", "pricing", "profile", "queue", "rating",
    "search", "session", "shipping", "stock", "users", "web", "worker",
)  # fmt: skip
_TEAMS = (
    "alpha", "bravo", "core", "data", "edge", "growth", "infra", "ml", "ops", "platform", "risk", "sales",
)  # fmt: skip
_ENVS = ("dev", "prod", "stage", "test")
_PORTS = (("http", 80), ("https", 443), ("grpc", 9090), ("metrics", 9100), ("admin", 8081), ("ws", 8080))
_STATEFUL = (
    "cassandra", "elastic", "etcd", "kafka", "mongo", "mysql", "nats", "postgres", "rabbitmq", "redis",
    "zookeeper",
)  # fmt: skip
_STATEFUL_PORTS = {"postgres": 5432, "mysql": 3306, "redis": 6379, "mongo": 27017, "kafka": 9092}
_DOMAINS = ("example.com", "example.net", "example.org", "amazonaws.com", "googleapis.com", "azure.com")


@dataclass
class Allocator:
    """Unique addresses handed out in order from fixed ranges."""

    service4: Iterator[ipaddress.IPv4Address] = field(default_factory=lambda: _hosts(SERVICE_NET, 2))
    service6: Iterator[ipaddress.IPv6Address] = field(default_factory=lambda: _hosts(SERVICE_NET6, 2))
    pod4: Iterator[ipaddress.IPv4Address] = field(default_factory=lambda: _hosts(POD_NET, 2))
    pod6: Iterator[ipaddress.IPv6Address] = field(default_factory=lambda: _hosts(POD_NET6, 2))


def _hosts(net: ipaddress.IPv4Network | ipaddress.IPv6Network, skip: int) -> Iterator[Any]:
    first = int(net.network_address) + skip
    for value in range(first, int(net.broadcast_address)):
        yield ipaddress.ip_address(value)


def _suffix(rng: random.Random, length: int = 5) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=length))


def namespace_names(count: int, rng: random.Random) -> list[str]:
    names = ["default", "kube-system"]
    combos = [f"{team}-{env}" for team in _TEAMS for env in _ENVS]
    rng.shuffle(combos)
    for i in range(max(0, count - len(names))):
        names.append(combos[i] if i < len(combos) else f"{combos[i % len(combos)]}-{i // len(combos)}")
    return names[: max(count, 2)]


def service_kinds(count: int, rng: random.Random) -> list[str]:
    """Exactly rounded shares of ClusterIP, Headless and ExternalName, shuffled."""
    cluster_ip = round(count * CLUSTER_IP_SHARE)
    headless = round(count * HEADLESS_SHARE)
    kinds = ["ClusterIP"] * cluster_ip + ["Headless"] * headless
    kinds += ["ExternalName"] * (count - len(kinds))
    rng.shuffle(kinds)
    return kinds


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _meta(namespace: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels}


def _service(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    metadata = _meta(namespace, name, {"app": name})
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def _slice(
    namespace: str,
    service: str,
    rng: random.Random,
    *,
    family: str,
    endpoints: list[dict[str, Any]],
    ports: list[dict[str, Any]],
) -> dict[str, Any]:
    labels = {"kubernetes.io/service-name": service, "app": service}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": _meta(namespace, f"{service}-{_suffix(rng)}", labels),
        "addressType": family,
        "endpoints": endpoints,
        "ports": ports,
    }


def node_of(address: str) -> str:
    """The node a pod with ``address`` runs on."""
    return f"worker-{int(ipaddress.ip_address(address)) % NODES}"


def _endpoint(address: str, namespace: str, pod: str, hostname: str = "") -> dict[str, Any]:
    endpoint: dict[str, Any] = {
        "addresses": [address],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "nodeName": node_of(address),
        "targetRef": {"kind": "Pod", "name": pod, "namespace": namespace},
    }
    if hostname:
        endpoint["hostname"] = hostname
    return endpoint


def _pod(namespace: str, name: str, ips: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "status": {"phase": "Running", "podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]},
    }


def cluster_ip_service(
    namespace: str,
    name: str,
    rng: random.Random,
    alloc: Allocator,
    ports: list[tuple[str, int]],
    *,
    endpoints: int | None = None,
) -> list[dict[str, Any]]:
    """A ClusterIP Service, its EndpointSlice(s) and the Pods behind them (2-5, or ``endpoints``)."""
    dual = rng.random() < DUAL_STACK_SHARE
    ips = [str(next(alloc.service4))] + ([str(next(alloc.service6))] if dual else [])
    spec = {
        "type": "ClusterIP",
        "clusterIP": ips[0],
        "clusterIPs": ips,
        "ipFamilies": ["IPv4", "IPv6"] if dual else ["IPv4"],
        "selector": {"app": name},
        "ports": [
            {"name": p, "port": n, "protocol": "TCP", "targetPort": 8000 + i}
            for i, (p, n) in enumerate(ports)
        ],
    }
    slice_ports = [{"name": p, "port": 8000 + i, "protocol": "TCP"} for i, (p, _) in enumerate(ports)]
    template = f"{name}-{_suffix(rng, 9)}"
    count = rng.randint(2, 5) if endpoints is None else endpoints
    pods = [(f"{template}-{_suffix(rng)}", str(next(alloc.pod4))) for _ in range(count)]
    v4 = [_endpoint(ip, namespace, pod) for pod, ip in pods]
    objects = [
        _service(namespace, name, spec),
        _slice(namespace, name, rng, family="IPv4", endpoints=v4, ports=slice_ports),
    ]
    pod_ips = {pod: [ip] for pod, ip in pods}
    if dual:
        v6 = []
        for pod, _ in pods:
            ip6 = str(next(alloc.pod6))
            pod_ips[pod].append(ip6)
            v6.append(_endpoint(ip6, namespace, pod))
        objects.append(_slice(namespace, name, rng, family="IPv6", endpoints=v6, ports=slice_ports))
    objects += [_pod(namespace, pod, ips) for pod, ips in pod_ips.items()]
    return objects


def headless_service(
    namespace: str, name: str, rng: random.Random, alloc: Allocator, port: tuple[str, int]
) -> list[dict[str, Any]]:
    """A headless Service over a StatefulSet: endpoints ``<name>-<i>`` with their hostnames."""
    spec = {
        "type": "ClusterIP",
        "clusterIP": "None",
        "clusterIPs": ["None"],
        "selector": {"app": name},
        "ports": [{"name": port[0], "port": port[1], "protocol": "TCP"}],
    }
    members = [(f"{name}-{i}", str(next(alloc.pod4))) for i in range(rng.randint(2, 5))]
    endpoints = [_endpoint(ip, namespace, pod, hostname=pod) for pod, ip in members]
    slice_ports = [{"name": port[0], "port": port[1], "protocol": "TCP"}]
    return [
        _service(namespace, name, spec),
        _slice(namespace, name, rng, family="IPv4", endpoints=endpoints, ports=slice_ports),
        *(_pod(namespace, pod, [ip]) for pod, ip in members),
    ]


def external_service(namespace: str, name: str, rng: random.Random) -> list[dict[str, Any]]:
    target = f"{name}.{rng.choice(_DOMAINS)}"
    return [_service(namespace, name, {"type": "ExternalName", "externalName": target})]


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _system_services(alloc: Allocator, rng: random.Random) -> list[dict[str, Any]]:
    """``default/kubernetes`` and ``kube-system/kube-dns`` at their usual addresses."""
    api_ip, dns_ip = str(next(alloc.service4)), str(next(alloc.service4))
    api_ports = [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
    api = _service("default", "kubernetes", {"type": "ClusterIP", "clusterIP": api_ip, "ports": api_ports})
    api_endpoints = [_endpoint("172.18.0.2", "default", "kube-apiserver-control-plane")]
    api_slice = _slice(
        "default",
        "kubernetes",
        rng,
        family="IPv4",
        endpoints=api_endpoints,
        ports=[{"name": "https", "port": 6443}],
    )
    dns_ports = [
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
    ]
    dns = _service("kube-system", "kube-dns", {"type": "ClusterIP", "clusterIP": dns_ip, "ports": dns_ports})
    dns_pods = [(f"coredns-5d78c9869d-{_suffix(rng)}", str(next(alloc.pod4))) for _ in range(2)]
    dns_endpoints = [_endpoint(ip, "kube-system", pod) for pod, ip in dns_pods]
    dns_slice = _slice(
        "kube-system", "kube-dns", rng, family="IPv4", endpoints=dns_endpoints, ports=dns_ports
    )
    pods = [_pod("kube-system", pod, [ip]) for pod, ip in dns_pods]
    return [api, api_slice, dns, dns_slice, *pods]


def generate(
    services: int, namespaces: int | None = None, seed: int = 1, endpoints_per_service: int | None = None
) -> dict[str, Any]:
    """A ``List`` of Namespaces, Services, EndpointSlices and Pods: ``services`` Services in all.

    ``endpoints_per_service``: endpoints of each ClusterIP Service (default: 2-5 at random)."""
    rng = random.Random(seed)
    alloc = Allocator()
    ns_names = namespace_names(namespaces or max(2, services // 20), rng)
    items: list[dict[str, Any]] = [_namespace(ns) for ns in ns_names]
    items += _system_services(alloc, rng)
    taken: dict[str, set[str]] = {ns: set() for ns in ns_names}
    taken["default"].add("kubernetes")
    taken["kube-system"].add("kube-dns")
    for i, kind in enumerate(service_kinds(max(0, services - 2), rng)):
        namespace = ns_names[i % len(ns_names)]
        if kind == "Headless":
            base = rng.choice(_STATEFUL)
            name = _unique(base, taken[namespace])
            port = (base if base in _STATEFUL_PORTS else "peer", _STATEFUL_PORTS.get(base, 7000))
            items += headless_service(namespace, name, rng, alloc, port)
            continue
        name = _unique(rng.choice(_WORDS), taken[namespace])
        if kind == "ExternalName":
            items += external_service(namespace, name, rng)
        else:
            ports = rng.sample(_PORTS, rng.randint(1, 2))
            items += cluster_ip_service(namespace, name, rng, alloc, ports, endpoints=endpoints_per_service)
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def summary(snapshot: dict[str, Any]) -> dict[str, int]:
    """What a report says of a cluster: its Services by kind, namespaces, EndpointSlices, endpoints,
    Pods and objects."""
    items = snapshot["items"]
    kinds = Counter(item["kind"] for item in items)
    services = [item["spec"] for item in items if item["kind"] == "Service"]
    external = sum(spec.get("type") == "ExternalName" for spec in services)
    headless = sum(spec.get("clusterIP") == "None" for spec in services)
    return {
        "services": len(services),
        "cluster_ip": len(services) - headless - external,
        "headless": headless,
        "external": external,
        "namespaces": kinds["Namespace"],
        "endpoint_slices": kinds["EndpointSlice"],
        "endpoints": sum(len(item["endpoints"]) for item in items if item["kind"] == "EndpointSlice"),
        "pods": kinds["Pod"],
        "objects": len(items),
    }


def write(snapshot: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(snapshot, separators=(",", ":")) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000, help="Services in all (default: 1000)")
    parser.add_argument("--namespaces", type=int, help="namespaces (default: services / 20)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument(
        "--endpoints-per-service",
        type=int,
        metavar="N",
        help="endpoints of each ClusterIP Service, 1-100 (default: 2-5 at random)",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.services < 2:
        parser.error("--services must be at least 2")
    if args.endpoints_per_service is not None and not 1 <= args.endpoints_per_service <= 100:
        parser.error("--endpoints-per-service must be 1-100 (one EndpointSlice holds at most 100)")
    snapshot = generate(args.services, args.namespaces, args.seed, args.endpoints_per_service)
    write(snapshot, args.out)
    print(f"{args.out}: {len(snapshot['items'])} objects", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
