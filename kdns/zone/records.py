"""The records one owner contributes to the zone, computed from the cluster state.

A record is ``(name, rtype, rdata)`` with ``name`` in lowercase wire form. Rdata by type:
A/AAAA packed address bytes; CNAME and NS target name; PTR ``(target, rank)`` where rank 0 is a
Service's cluster IP and rank 1 an endpoint (a cluster IP hides endpoint PTRs, as in CoreDNS);
SRV ``(port, target)`` (priority and weight are set when answering); TXT the text bytes;
``PRESENCE`` ``None``: the name exists with no data (a namespace, ``svc.<zone>``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator

from kdns.cluster.model import Endpoint, EndpointSlice, Owner, Port, Service, ServiceKind
from kdns.cluster.state import ClusterState
from kdns.config import PodMode, ZoneSettings
from kdns.zone.names import BadName, ZoneLayout, dashed_ip, is_within, join, pack_ip, reverse_wire, to_wire

log = logging.getLogger(__name__)

PRESENCE = 0
A, NS, CNAME, SOA, PTR, TXT, AAAA, SRV = 1, 2, 5, 6, 12, 16, 28, 33
APEX_OWNER = Owner("apex", "")
DNS_SCHEMA_VERSION = b"1.1.0"

Record = tuple[bytes, int, object]


def address_record(name: bytes, ip: str) -> Record:
    packed = pack_ip(ip)
    return (name, A if len(packed) == 4 else AAAA, packed)


class RecordBuilder:
    """Turns one owner into its records, for every configured zone."""

    def __init__(self, settings: ZoneSettings) -> None:
        self.settings = settings
        self.layout = ZoneLayout.of(settings.zones)

    def records(self, owner: Owner, state: ClusterState) -> frozenset[Record]:
        if owner.kind == "service":
            service = state.services.get((owner.namespace, owner.name))
            if service is None:
                return frozenset()
            return frozenset(self._service(service, list(state.slices_of(owner.namespace, owner.name))))
        if owner.kind == "namespace":
            return frozenset(self._namespace(owner.namespace, state))
        if owner.kind == "pod":
            pod = state.pods.get((owner.namespace, owner.name))
            if pod is None or self.settings.pods is not PodMode.VERIFIED:
                return frozenset()
            return frozenset(
                address_record(join((dashed_ip(ip), pod.namespace, "pod"), zone), ip)
                for zone in self.layout.forward
                for ip in pod.ips
            )
        if owner == APEX_OWNER:
            return frozenset(self._apex())
        raise ValueError(f"unknown owner {owner!r}")

    # -- apex and namespaces ---------------------------------------------------------------------------
    def _apex(self) -> Iterator[Record]:
        ns_target = join(("ns", "dns"), self.layout.primary)
        for zone in self.layout.apexes:
            yield (zone, NS, ns_target)
        for zone in self.layout.forward:
            yield (join(("svc",), zone), PRESENCE, None)
            yield (join(("pod",), zone), PRESENCE, None)
            yield (join(("ns", "dns"), zone), PRESENCE, None)
            yield (join(("dns-version",), zone), TXT, DNS_SCHEMA_VERSION)

    def _namespace(self, namespace: str, state: ClusterState) -> Iterator[Record]:
        if not state.namespace_exists(namespace):
            return
        for zone in self.layout.forward:
            yield (join((namespace, "svc"), zone), PRESENCE, None)
            if self.settings.pods is not PodMode.DISABLED:
                yield (join((namespace, "pod"), zone), PRESENCE, None)

    # -- services ----------------------------------------------------------------------------------------
    def _service(self, service: Service, slices: list[EndpointSlice]) -> Iterator[Record]:
        if service.kind is ServiceKind.EXTERNAL_NAME:
            yield from self._external_name(service)
            return
        endpoints = [
            (self._endpoint_label(ep, address), address, s.ports)
            for s in slices
            for ep in s.endpoints
            if ep.ready or service.publish_not_ready
            for address in ep.addresses
        ]
        headless = service.kind is ServiceKind.HEADLESS
        if self.settings.ignore_empty_service and not headless and not endpoints:
            return  # NXDOMAIN, so a client moves on along its search path
        is_dns_service = (service.namespace, service.name) == self.settings.dns_service
        for zone in self.layout.forward:
            base = join((service.name, service.namespace, "svc"), zone)
            if headless:
                for label, address, ports in endpoints:
                    target = join((label,), base)
                    yield address_record(base, address)
                    yield from _srv_records(base, ports, target)
            else:
                yield (base, PRESENCE, None)
                for ip in service.cluster_ips:
                    yield address_record(base, ip)
                    if is_dns_service:
                        yield address_record(join(("ns", "dns"), zone), ip)
                yield from _srv_records(base, service.ports, base)
            for label, address, ports in endpoints:
                name = join((label,), base)
                yield address_record(name, address)
                for port in ports:
                    yield (name, SRV, (port.port, name))
        primary = join((service.name, service.namespace, "svc"), self.layout.primary)
        for ip in service.cluster_ips:
            yield from self._ptr(ip, primary, rank=0)
        for label, address, _ in endpoints:
            yield from self._ptr(address, join((label,), primary), rank=1)

    def _external_name(self, service: Service) -> Iterator[Record]:
        try:
            ipaddress.ip_address(service.external_name)
        except ValueError:
            pass
        else:
            log.info(
                "service %s/%s: externalName %s is an IP address, not served",
                service.namespace,
                service.name,
                service.external_name,
            )
            return
        try:
            target = to_wire(service.external_name)
        except BadName as exc:
            log.info("service %s/%s: %s, not served", service.namespace, service.name, exc)
            return
        for zone in self.layout.forward:
            yield (join((service.name, service.namespace, "svc"), zone), CNAME, target)

    def _endpoint_label(self, endpoint: Endpoint, address: str) -> str:
        if endpoint.hostname:
            return endpoint.hostname
        if self.settings.endpoint_pod_names and _is_label(endpoint.pod_name):
            return endpoint.pod_name
        return dashed_ip(address)

    def _ptr(self, ip: str, target: bytes, *, rank: int) -> Iterator[Record]:
        name = reverse_wire(ip)
        if any(is_within(name, zone) for zone in self.layout.reverse):
            yield (name, PTR, (target, rank))


def _srv_records(base: bytes, ports: tuple[Port, ...], target: bytes) -> Iterator[Record]:
    """SRV at the service name for every port, and at ``_<name>._<proto>`` for named ports."""
    for port in ports:
        yield (base, SRV, (port.port, target))
        if port.name:
            yield (join((f"_{port.name}", f"_{port.protocol}"), base), SRV, (port.port, target))


def _is_label(text: str) -> bool:
    return 0 < len(text) < 64 and "." not in text and text.isascii()
