"""Slim, immutable views of the Kubernetes objects that DNS needs, and the events that carry them.

API edge cases are settled once, in ``convert``; everything downstream may trust these values:
IPs are in canonical text form, except endpoint addresses (the bulk of a large cluster), which are
packed (4 or 16 bytes, as DNS answers them); names are lowercase DNS labels, protocols are lowercase.
Values that repeat across objects (ports, namespace and Service names) are shared, not copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class ServiceKind(Enum):
    """How a Service is answered in DNS."""

    CLUSTER_IP = "ClusterIP"  # A/AAAA of its cluster IPs (also NodePort and LoadBalancer)
    HEADLESS = "Headless"  # clusterIP: None, A/AAAA of its ready endpoints
    EXTERNAL_NAME = "ExternalName"  # CNAME to spec.externalName


@dataclass(frozen=True, slots=True)
class Port:
    """A Service or EndpointSlice port. ``name`` may be empty; ``protocol`` is lowercase (tcp, udp, sctp)."""

    name: str
    port: int
    protocol: str


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    kind: ServiceKind
    cluster_ips: tuple[str, ...] = ()
    external_name: str = ""
    ports: tuple[Port, ...] = ()
    publish_not_ready: bool = False
    # spec.externalIPs, then status.loadBalancer.ingress[].ip: what k8s_external answers
    external_ips: tuple[str, ...] = ()
    selector: bool = field(default=True, compare=False)  # spec.selector set (the metrics' service kind)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a slice. Its packed addresses are ``address`` (empty if none) and ``more``, as
    Kubernetes fills one and a large cluster has many endpoints. ``ready`` is already true when the
    API leaves the condition unset."""

    address: bytes
    more: tuple[bytes, ...] = ()
    ready: bool = True
    hostname: str = ""
    pod_name: str = ""  # targetRef.name when targetRef.kind is Pod

    @property
    def addresses(self) -> tuple[bytes, ...]:
        return (self.address, *self.more) if self.address else ()


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service: str  # the kubernetes.io/service-name label; empty on a slice of an imported service only
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[Port, ...] = ()
    imported: str = ""  # the multicluster.kubernetes.io/service-name label: a ServiceImport's slice
    cluster: str = ""  # the multicluster.kubernetes.io/source-cluster label, when it is a DNS label
    # Unix time of its endpoints.kubernetes.io/last-change-trigger-time annotation, 0 when absent (the
    # DNS programming latency is measured from it); not part of what the slice answers
    changed_at: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod; its ``ips`` are empty while it has no name in DNS (terminating, finished, or unknown)."""

    namespace: str
    name: str
    ips: tuple[str, ...] = ()


class ServiceImportKind(Enum):
    """How a ServiceImport (multicluster.x-k8s.io) is answered in DNS."""

    CLUSTER_SET_IP = "ClusterSetIP"  # A/AAAA of its spec.ips
    HEADLESS = "Headless"  # A/AAAA of the ready endpoints of its slices


@dataclass(frozen=True, slots=True)
class ServiceImport:
    """A Service exported from the clusters of a clusterset, as this cluster imports it (KEP-1645)."""

    namespace: str
    name: str
    kind: ServiceImportKind
    ips: tuple[str, ...] = ()
    ports: tuple[Port, ...] = ()


ClusterObject = Namespace | Service | EndpointSlice | Pod | ServiceImport


class EventType(Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    object: ClusterObject


@dataclass(frozen=True, slots=True)
class Owner:
    """The unit of zone updates: one Service (with its slices), one Pod, one Namespace, or one
    ServiceImport (with its slices).

    ``kind`` is ``"service"``, ``"pod"``, ``"namespace"`` or ``"import"``; a namespace owner has an
    empty ``name``.
    """

    kind: str
    namespace: str
    name: str = ""
