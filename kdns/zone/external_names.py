"""The names of CoreDNS's ``k8s_external`` zones, built from the cluster state when it changes.

A Service with external IPs (``spec.externalIPs`` and its load balancer's ingress IPs) is named
``<svc>.<ns>.<zone>`` in each external zone: A and AAAA of those IPs, SRV to that name for each of
its ports there and at ``_<port>._<proto>.<svc>.<ns>.<zone>`` for each named port. With
``headless``, a headless Service without external IPs is named after its ready endpoints instead:
A and AAAA at its name, each endpoint's own name ``<endpoint>.<svc>.<ns>.<zone>``, SRV to those.
An existing namespace is the name ``<ns>.<zone>`` (NODATA), and the Services whose endpoints are
kdns's own addresses give their external IPs to ``ns1.<apex>.<zone>``, the zone's name server.

As CoreDNS answers them: the A and AAAA records of a Service are also those of its SRV names, and
SRV records carry their weight (100 shared out among the address and port pairs the name matches,
at least 1) and priority 0, so that the plugin answers an SRV name without counting anything.
"""

from __future__ import annotations

from collections.abc import Iterator

from kdns.cluster.model import Owner, Port, Service, ServiceKind
from kdns.cluster.state import ClusterState
from kdns.codes import SRV
from kdns.config import ExternalSettings, ZoneSettings
from kdns.zone.index import ZoneIndex
from kdns.zone.names import join, labels_of, pack_ip, to_wire
from kdns.zone.records import PRESENCE, Record, RecordBuilder, backs, packed_record

SRV_TOTAL_WEIGHT = 100  # k8s_external shares it out among what an SRV name matches
NAME_SERVER = "ns1"  # the label of the zone's name server below the apex name


class ExternalNames:
    """The names of the external zones of one ``k8s_external``: an index of them, and the records
    each owner (a Service, a namespace) gives them."""

    def __init__(self, settings: ExternalSettings, zones: tuple[bytes, ...], cluster: ZoneSettings) -> None:
        self.settings = settings
        self.zones = zones
        self.cluster = cluster
        self.apex_labels = tuple(label.decode("ascii") for label in labels_of(to_wire(settings.apex)))
        self.name_servers = tuple(join((NAME_SERVER, *self.apex_labels), zone) for zone in zones)
        self.index = ZoneIndex(zones)
        self._names = RecordBuilder(cluster)  # endpoint labels, as the cluster zone writes them

    def records(self, owner: Owner, state: ClusterState) -> list[Record]:
        if owner.kind == "namespace":
            exists = state.namespace_exists(owner.namespace)
            return [(join((owner.namespace,), zone), PRESENCE, None) for zone in self.zones if exists]
        if owner.kind != "service" or not state.serves(owner.namespace):
            return []
        service = state.services.get((owner.namespace, owner.name))
        if service is None:
            return []
        return list(self._service(service, state))

    def _service(self, service: Service, state: ClusterState) -> Iterator[Record]:
        slices = state.slices_of(service.namespace, service.name)
        if backs(self.cluster.own_addresses, slices, service.publish_not_ready):
            for server in self.name_servers:
                for ip in service.external_ips:
                    yield packed_record(server, pack_ip(ip))
        if service.external_ips:
            packed = [pack_ip(ip) for ip in service.external_ips]
            for zone in self.zones:
                base = join((service.name, service.namespace), zone)
                yield from _named(base, [(base, address, service.ports) for address in packed])
        elif self.settings.headless and service.kind is ServiceKind.HEADLESS:
            endpoints = [
                (self._names.endpoint_label(ep, address)[0], address, piece.ports)
                for piece in slices
                for ep in piece.endpoints
                if ep.ready or service.publish_not_ready
                for address in ep.addresses
            ]
            for zone in self.zones:
                base = join((service.name, service.namespace), zone)
                targets = [(join((label,), base), address, ports) for label, address, ports in endpoints]
                for target, address, _ in targets:
                    yield packed_record(target, address)
                yield from _named(base, targets)


def _named(base: bytes, targets: list[tuple[bytes, bytes, tuple[Port, ...]]]) -> Iterator[Record]:
    """The records at a Service's name and at its SRV names, given (target, address, ports) for
    each address it answers with: the Service's own name for its external IPs, an endpoint's name."""
    pairs: dict[bytes, list[tuple[bytes, bytes, int]]] = {base: []}  # name -> (target, address, port)
    for target, address, ports in targets:
        for port in ports or (None,):  # without ports an address counts once, with no SRV
            pairs[base].append((target, address, port.port if port is not None else 0))
            if port is not None and port.name:
                name = join((f"_{port.name}", f"_{port.protocol}"), base)
                pairs.setdefault(name, []).append((target, address, port.port))
    for name, matched in pairs.items():
        weight = max(1, SRV_TOTAL_WEIGHT // len(matched)) if matched else 0
        for address in dict.fromkeys(address for _, address, _ in matched):
            yield packed_record(name, address)
        for target, port in dict.fromkeys((target, port) for target, _, port in matched if port):
            yield (name, SRV, (0, weight, port, target))
