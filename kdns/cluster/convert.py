"""Kubernetes API JSON (as dicts) -> slim objects, settling the API's edge cases in one place.

``to_object`` raises ``InvalidObject`` for data the API should never have produced (a bad IP, a missing
name) and ``SkippedObject`` for valid objects that DNS does not use (FQDN slices, other kinds), or
``UnservedObject`` for those it cannot name (a slice whose service-name label is no DNS label). The
snapshot source treats the first as an error in the file; the live source logs and skips all.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kdns.cluster.model import (
    ClusterObject,
    Endpoint,
    EndpointSlice,
    Namespace,
    Pod,
    Port,
    Service,
    ServiceImport,
    ServiceImportKind,
    ServiceKind,
)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
IMPORTED_NAME_LABEL = "multicluster.kubernetes.io/service-name"  # KEP-1645's slices of an import
SOURCE_CLUSTER_LABEL = "multicluster.kubernetes.io/source-cluster"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# a label value the API accepts: up to 63 characters, alphanumeric at both ends, '-', '_' and '.' inside
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# Pods in these phases have no name (CoreDNS lists and watches pods without them)
_NAMELESS_POD_PHASES = frozenset({"Succeeded", "Failed", "Unknown"})
_SHARED_LIMIT = 4096  # distinct ports and port lists kept for sharing; a cluster has few
_shared_ports: dict[object, object] = {}


class InvalidObject(ValueError):
    """The object is malformed: a field is missing or holds a value the API would reject."""


class SkippedObject(Exception):
    """The object is well formed but DNS has no use for it."""


class UnservedObject(SkippedObject):
    """The object is valid for the API but DNS cannot name it (a label value that is no DNS label):
    skipped, and worth a warning, since a person meant it to be served."""


def object_identity(raw: Mapping[str, Any]) -> str:
    """``Kind namespace/name`` for log lines and error messages, as far as the object tells it."""
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), Mapping) else {}
    kind = raw.get("kind") or "object"
    name = meta.get("name") or "<unnamed>"
    namespace = meta.get("namespace")
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def to_object(raw: Mapping[str, Any]) -> ClusterObject:
    """Convert one API object; its ``kind`` field selects the converter."""
    if not isinstance(raw, Mapping):
        raise InvalidObject(f"expected an object, found {type(raw).__name__}")
    kind = raw.get("kind")
    converter = _CONVERTERS.get(kind) if isinstance(kind, str) else None
    if converter is None:
        raise SkippedObject(f"kind {kind!r} is not used for DNS")
    return converter(raw)


def tombstone(raw: Mapping[str, Any]) -> ClusterObject | None:
    """The least object that names what a DELETED event (or an object leaving the filters) removes."""
    meta = raw.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    name, namespace = meta["name"], meta.get("namespace") or ""
    match raw.get("kind"):
        case "Namespace":
            return Namespace(name=name)
        case "Service":
            return Service(namespace=namespace, name=name, kind=ServiceKind.CLUSTER_IP)
        case "EndpointSlice":
            return EndpointSlice(namespace=namespace, name=name, service="")
        case "Pod":
            return Pod(namespace=namespace, name=name)
        case "ServiceImport":
            return ServiceImport(namespace=namespace, name=name, kind=ServiceImportKind.CLUSTER_SET_IP)
    return None


def canonical_ip(text: Any, *, version: int | None = None) -> str:
    """The canonical text form of an IPv4 or IPv6 address, rejecting anything else."""
    return str(_ip_address(text, version))


def packed_ip(text: Any, *, version: int | None = None) -> bytes:
    """The 4 or 16 bytes of an IPv4 or IPv6 address, rejecting what ``canonical_ip`` rejects."""
    return _ip_address(text, version).packed


def _ip_address(text: Any, version: int | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(text, str):
        raise InvalidObject(f"IP address must be a string, found {text!r}")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidObject(f"invalid IP address {text!r}") from None
    if ip.version == 6 and ip.scope_id:
        raise InvalidObject(f"scoped IPv6 address {text!r} cannot be served")
    if version is not None and ip.version != version:
        raise InvalidObject(f"{text!r} is not an IPv{version} address")
    return ip


def _shared(value: Any) -> Any:
    """One object for equal values that many objects hold (ports, lists of ports)."""
    if len(_shared_ports) >= _SHARED_LIMIT:
        _shared_ports.clear()
    return _shared_ports.setdefault(value, value)


def is_dns_label(text: str) -> bool:
    """RFC 1123 label: lowercase letters, digits and inner hyphens, 1-63 characters."""
    return bool(_DNS_LABEL.fullmatch(text))  # not ``match``: its ``$`` accepts a trailing newline


def _metadata(raw: Mapping[str, Any], *, namespaced: bool) -> tuple[str, str]:
    meta = raw.get("metadata")
    if not isinstance(meta, Mapping):
        raise InvalidObject("metadata is missing")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidObject("metadata.name is missing")
    namespace = meta.get("namespace", "")
    if not namespaced:
        return namespace, name
    if not isinstance(namespace, str) or not is_dns_label(namespace):
        raise InvalidObject(f"metadata.namespace {namespace!r} is not a DNS label")
    return sys.intern(namespace), name  # shared by every object of the namespace


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidObject(f"{field} must be an object")
    return value


def _sequence(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidObject(f"{field} must be a list")
    return value


def _port(raw: Any, field: str) -> Port | None:
    raw = _mapping(raw, field)
    number = raw.get("port")
    if number is None:
        return None
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
        raise InvalidObject(f"{field}.port {number!r} is not a port number")
    name = raw.get("name") or ""
    if not isinstance(name, str) or (name and not is_dns_label(name.lower())):
        raise InvalidObject(f"{field}.name {name!r} is not a DNS label")
    protocol = raw.get("protocol") or "TCP"
    if not isinstance(protocol, str) or not is_dns_label(protocol.lower()):
        raise InvalidObject(f"{field}.protocol {protocol!r} is not valid")
    return _shared(Port(name=name.lower(), port=number, protocol=protocol.lower()))


def _ports(value: Any, field: str) -> tuple[Port, ...]:
    ports = (_port(item, f"{field}[{i}]") for i, item in enumerate(_sequence(value, field)))
    return _shared(tuple(p for p in ports if p is not None))


def to_namespace(raw: Mapping[str, Any]) -> Namespace:
    _, name = _metadata(raw, namespaced=False)
    if not is_dns_label(name):
        raise InvalidObject(f"namespace name {name!r} is not a DNS label")
    return Namespace(name=sys.intern(name))


def to_service(raw: Mapping[str, Any]) -> Service:
    namespace, name = _metadata(raw, namespaced=True)
    if not is_dns_label(name):
        raise InvalidObject(f"service name {name!r} is not a DNS label")
    name = sys.intern(name)  # its slices name it too
    spec = _mapping(raw.get("spec"), "spec")
    ports = _ports(spec.get("ports"), "spec.ports")
    publish = bool(spec.get("publishNotReadyAddresses", False))
    if spec.get("type") == "ExternalName":
        target = spec.get("externalName")
        if not isinstance(target, str) or not target.strip("."):
            raise InvalidObject("spec.externalName is missing")
        return Service(
            namespace=namespace,
            name=name,
            kind=ServiceKind.EXTERNAL_NAME,
            external_name=target.strip(".").lower(),
            ports=ports,
        )
    cluster_ip = spec.get("clusterIP")
    if cluster_ip == "None":
        kind, ips = ServiceKind.HEADLESS, ()
    else:
        listed = _sequence(spec.get("clusterIPs"), "spec.clusterIPs") or ([cluster_ip] if cluster_ip else [])
        kind = ServiceKind.CLUSTER_IP
        ips = tuple(dict.fromkeys(canonical_ip(ip) for ip in listed if ip and ip != "None"))
    return Service(
        namespace=namespace,
        name=name,
        kind=kind,
        cluster_ips=ips,
        ports=ports,
        publish_not_ready=publish,
        external_ips=_external_ips(spec, _mapping(raw.get("status"), "status")),
        selector=bool(spec.get("selector")),
    )


def _external_ips(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[str, ...]:
    """spec.externalIPs, then the load balancer's ingress IPs (ingress hostnames are not IPs)."""
    listed = list(_sequence(spec.get("externalIPs"), "spec.externalIPs"))
    balancer = _mapping(status.get("loadBalancer"), "status.loadBalancer")
    for i, ingress in enumerate(_sequence(balancer.get("ingress"), "status.loadBalancer.ingress")):
        ip = _mapping(ingress, f"status.loadBalancer.ingress[{i}]").get("ip")
        if ip:
            listed.append(ip)
    return tuple(dict.fromkeys(canonical_ip(ip) for ip in listed if ip))


def _endpoint(raw: Any, field: str, version: int) -> Endpoint:
    raw = _mapping(raw, field)
    addresses = [packed_ip(a, version=version) for a in _sequence(raw.get("addresses"), f"{field}.addresses")]
    ready = _mapping(raw.get("conditions"), f"{field}.conditions").get("ready")
    hostname = raw.get("hostname") or ""
    if not isinstance(hostname, str) or (hostname and not is_dns_label(hostname)):
        raise InvalidObject(f"{field}.hostname {hostname!r} is not a DNS label")
    target = _mapping(raw.get("targetRef"), f"{field}.targetRef")
    pod_name = target.get("name") if target.get("kind") == "Pod" else ""
    return Endpoint(
        address=addresses[0] if addresses else b"",
        more=tuple(addresses[1:]),
        ready=ready is None or bool(ready),
        hostname=hostname,
        pod_name=pod_name if isinstance(pod_name, str) else "",
    )


def to_endpoint_slice(raw: Mapping[str, Any]) -> EndpointSlice:
    namespace, name = _metadata(raw, namespaced=True)
    labels = _mapping(_mapping(raw.get("metadata"), "metadata").get("labels"), "metadata.labels")
    service, imported = labels.get(SERVICE_NAME_LABEL) or "", labels.get(IMPORTED_NAME_LABEL) or ""
    if not service and not imported:
        raise SkippedObject(f"no {SERVICE_NAME_LABEL} label")
    for label, value in ((SERVICE_NAME_LABEL, service), (IMPORTED_NAME_LABEL, imported)):
        if not isinstance(value, str) or not _LABEL_VALUE.fullmatch(value):
            raise InvalidObject(f"label {label}={value!r} is not a label value")
        if value and not is_dns_label(value):
            raise UnservedObject(
                f"label {label}={value!r} is no DNS label, so no Service is named by it; the slice "
                "is not served"
            )
    cluster = labels.get(SOURCE_CLUSTER_LABEL)
    cluster = cluster.lower() if isinstance(cluster, str) and is_dns_label(cluster.lower()) else ""
    address_type = raw.get("addressType")
    version = {"IPv4": 4, "IPv6": 6}.get(address_type) if isinstance(address_type, str) else None
    if version is None:
        raise SkippedObject(f"addressType {address_type!r} is not served")
    endpoints = tuple(
        _endpoint(item, f"endpoints[{i}]", version)
        for i, item in enumerate(_sequence(raw.get("endpoints"), "endpoints"))
    )
    return EndpointSlice(
        namespace=namespace,
        name=name,
        service=sys.intern(service),
        endpoints=endpoints,
        ports=_ports(raw.get("ports"), "ports"),
        imported=sys.intern(imported),
        cluster=cluster,
        changed_at=_trigger_time(_mapping(raw.get("metadata"), "metadata").get("annotations")),
    )


def _trigger_time(annotations: Any) -> float:
    """The Unix time an EndpointSlice's last-change-trigger-time annotation (RFC 3339) gives, else 0."""
    if not isinstance(annotations, Mapping):
        return 0.0
    text = annotations.get(TRIGGER_TIME_ANNOTATION)
    if not isinstance(text, str):
        return 0.0
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if when.tzinfo is None:
        return 0.0
    return max(when.timestamp(), 0.0)  # an unset time (year 1) is none


def mirrored_slices(raw: Mapping[str, Any]) -> list[EndpointSlice]:
    """The EndpointSlices Kubernetes's EndpointSlice mirroring controller makes of a v1 ``Endpoints``
    object (the classic way to name an outside database): one per subset and address family, its
    ``addresses`` ready and its ``notReadyAddresses`` not, labelled with the Service's name."""
    namespace, name = _metadata(raw, namespaced=True)
    if not is_dns_label(name):
        raise InvalidObject(f"endpoints name {name!r} is not a DNS label")
    slices = []
    for i, listed in enumerate(_sequence(raw.get("subsets"), "subsets")):
        field = f"subsets[{i}]"
        subset = _mapping(listed, field)
        ports = _ports(subset.get("ports"), f"{field}.ports")
        by_family: dict[int, list[Endpoint]] = {4: [], 6: []}
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for j, item in enumerate(_sequence(subset.get(key), f"{field}.{key}")):
                where = f"{field}.{key}[{j}]"
                address = _mapping(item, where)
                version = _ip_address(address.get("ip"), None).version
                endpoint = _endpoint(
                    {
                        "addresses": [address.get("ip")],
                        "conditions": {"ready": ready},
                        "hostname": address.get("hostname"),
                        "targetRef": address.get("targetRef"),
                    },
                    where,
                    version,
                )
                by_family[version].append(endpoint)
        for version, endpoints in by_family.items():
            if endpoints:
                slices.append(
                    EndpointSlice(
                        namespace=namespace,
                        name=f"{name}-mirrored-{i}-ipv{version}",
                        service=sys.intern(name),
                        endpoints=tuple(endpoints),
                        ports=ports,
                    )
                )
    return slices


def to_pod(raw: Mapping[str, Any]) -> Pod:
    """A pod with its IPs; without them (so without a name) once it is terminating (its
    ``deletionTimestamp`` set) or in phase Succeeded, Failed or Unknown, as CoreDNS drops such pods."""
    namespace, name = _metadata(raw, namespaced=True)
    status = _mapping(raw.get("status"), "status")
    phase = status.get("phase")
    if isinstance(phase, str) and phase in _NAMELESS_POD_PHASES:  # a list here is unhashable
        return Pod(namespace=namespace, name=name)
    if _mapping(raw.get("metadata"), "metadata").get("deletionTimestamp"):
        return Pod(namespace=namespace, name=name)
    listed = [
        _mapping(p, "status.podIPs").get("ip") for p in _sequence(status.get("podIPs"), "status.podIPs")
    ]
    if not listed and status.get("podIP"):
        listed = [status["podIP"]]
    ips = tuple(dict.fromkeys(canonical_ip(ip) for ip in listed if ip))
    return Pod(namespace=namespace, name=name, ips=ips)


def to_service_import(raw: Mapping[str, Any]) -> ServiceImport:
    """A multicluster.x-k8s.io ServiceImport: its type, clusterset IPs and ports."""
    namespace, name = _metadata(raw, namespaced=True)
    if not is_dns_label(name):
        raise InvalidObject(f"service import name {name!r} is not a DNS label")
    spec = _mapping(raw.get("spec"), "spec")
    kind = next((k for k in ServiceImportKind if k.value == spec.get("type")), None)
    if kind is None:
        raise InvalidObject(f"spec.type {spec.get('type')!r} is not ClusterSetIP or Headless")
    ips = tuple(dict.fromkeys(canonical_ip(ip) for ip in _sequence(spec.get("ips"), "spec.ips") if ip))
    return ServiceImport(
        namespace=namespace,
        name=sys.intern(name),
        kind=kind,
        ips=ips if kind is ServiceImportKind.CLUSTER_SET_IP else (),
        ports=_ports(spec.get("ports"), "spec.ports"),
    )


_CONVERTERS: dict[str, Callable[[Mapping[str, Any]], ClusterObject]] = {
    "Namespace": to_namespace,
    "Service": to_service,
    "EndpointSlice": to_endpoint_slice,
    "Pod": to_pod,
    "ServiceImport": to_service_import,
}
