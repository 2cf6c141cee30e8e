"""The records one owner contributes to the zone, computed from the cluster state.

A record is ``(name, rtype, rdata)`` with ``name`` in lowercase wire form. The forms are chosen to
be small, as the index keeps them as they are. Rdata by type: A/AAAA packed address bytes; CNAME and
NS target name; PTR the target name of a Service's cluster IP, and ``PTR_ENDPOINT`` (a PTR of lower
rank: a cluster IP hides endpoint PTRs, as in CoreDNS) that of an endpoint; SRV ``(port, target)``,
or the bare port when the target is the record's own name, or ``(port, target, copies)`` for a
record that CoreDNS makes ``copies`` times before it drops the repeats (an endpoint name with two
addresses, a dual-stack cluster IP, two ports of one number): priority and weight are set when
answering, and the weight is shared among every copy; TXT the text bytes; ``PRESENCE`` ``None``: the
name exists with no data (a namespace, ``svc.<zone>``); ``ADDRESS_OF_NAME`` ``None``: the A or AAAA
record of the address that the name's first label spells (``10-1-0-7.web...``, ``10-1-0-7.ns.pod...``).

Records implied by their name (an address its label spells, an SRV to itself) carry no data of their
own, so the records of most endpoint names are equal and the index shares them. One name's bytes
serve every record that names it: an endpoint's name, its headless SRV targets and its PTR target
are one object.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Iterable, Iterator

from kdns.cluster.model import (
    Endpoint,
    EndpointSlice,
    Owner,
    Port,
    Service,
    ServiceImport,
    ServiceImportKind,
    ServiceKind,
)
from kdns.cluster.state import ClusterState
from kdns.codes import AAAA, CNAME, MAX_LABEL_LENGTH, NS, PTR, SRV, TXT, A
from kdns.config import PodMode, ZoneSettings
from kdns.zone.names import (
    BadName,
    ZoneLayout,
    dashed_ip,
    ip_text,
    is_within,
    join,
    pack_ip,
    prepend,
    reverse_packed,
    to_wire,
)

log = logging.getLogger(__name__)

PRESENCE = 0
PTR_ENDPOINT = -PTR  # an endpoint's PTR, answered only where no cluster IP's PTR is
ADDRESS_OF_NAME = -A  # A or AAAA of the address the first label spells
APEX_OWNER = Owner("apex", "")
DNS_SCHEMA_VERSION = b"1.1.0"

Record = tuple[bytes, int, object]


def packed_record(name: bytes, packed: bytes) -> Record:
    return (name, A if len(packed) == 4 else AAAA, packed)


def backs(own: frozenset[bytes], slices: Iterable[EndpointSlice], publish_not_ready: bool) -> bool:
    """Whether one of ``own`` (kdns's own addresses) is an endpoint these slices serve: their Service
    is then kdns's own, whose addresses name the zone's name server (CoreDNS's rule)."""
    return bool(own) and any(
        address in own
        for piece in slices
        for ep in piece.endpoints
        if ep.ready or publish_not_ready
        for address in ep.addresses
    )


class RecordBuilder:
    """Turns one owner into its records, for every configured zone."""

    def __init__(self, settings: ZoneSettings) -> None:
        self.settings = settings
        self.layout = ZoneLayout.of(settings.zones)
        multicluster = {to_wire(zone) for zone in settings.multicluster}
        # Services are named in the forward zones, ServiceImports in the multicluster ones
        self.service_zones = tuple(z for z in self.layout.forward if z not in multicluster)
        self.import_zones = tuple(z for z in self.layout.forward if z in multicluster)

    def records(self, owner: Owner, state: ClusterState, *, quiet: bool = False) -> list[Record]:
        """The owner's records as ``state`` holds it; ``quiet`` skips logging what is not served (for
        records computed again to be taken out of the index)."""
        if owner.namespace and owner.kind != "namespace" and not state.serves(owner.namespace):
            return []
        if owner.kind == "service":
            service = state.services.get((owner.namespace, owner.name))
            if service is None:
                return []
            slices = list(state.slices_of(owner.namespace, owner.name))
            return _srv_copies_counted(self._service(service, slices, quiet))
        if owner.kind == "namespace":
            return list(self._namespace(owner.namespace, state))
        if owner.kind == "pod":
            pod = state.pods.get((owner.namespace, owner.name))
            if pod is None or self.settings.pods is not PodMode.VERIFIED:
                return []
            return [
                (join((dashed_ip(ip), pod.namespace, "pod"), zone), ADDRESS_OF_NAME, None)
                for zone in self.layout.forward
                for ip in pod.ips
            ]
        if owner == APEX_OWNER:
            return list(self._apex())
        if owner.kind == "import":
            imported = state.imports.get((owner.namespace, owner.name))
            if imported is None or not self.import_zones:
                return []
            return list(self._imported(imported, state.imported_slices_of(owner.namespace, owner.name)))
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
    def _service(self, service: Service, slices: list[EndpointSlice], quiet: bool) -> Iterator[Record]:
        if service.kind is ServiceKind.EXTERNAL_NAME:
            yield from self._external_name(service, quiet)
            return
        endpoints = [
            (*self._endpoint_label(ep, address), address, s.ports)
            for s in slices
            for ep in s.endpoints
            if ep.ready or service.publish_not_ready
            for address in ep.addresses
        ]
        headless = service.kind is ServiceKind.HEADLESS
        if self.settings.ignore_empty_service and not headless and not endpoints:
            return  # NXDOMAIN, so a client moves on along its search path
        ours = backs(self.settings.own_addresses, slices, service.publish_not_ready)
        cluster_ips = [pack_ip(ip) for ip in service.cluster_ips]
        named = []  # per forward zone: the Service's name and its endpoints' names
        for zone in self.service_zones:
            base = join((service.name, service.namespace, "svc"), zone)
            named.append((base, [prepend(label, base) for label, _, _, _ in endpoints]))
        if not named:
            return
        for zone, (base, names) in zip(self.service_zones, named, strict=True):
            port_names: dict[Port, bytes] = {}
            if headless:
                for name, (_, _, packed, ports) in zip(names, endpoints, strict=True):
                    yield packed_record(base, packed)
                    yield from _srv_records(base, ports, name, port_names)
                    if ours:
                        yield packed_record(join(("ns", "dns"), zone), packed)
            else:
                yield (base, PRESENCE, None)
                for packed in cluster_ips:
                    yield packed_record(base, packed)
                    if ours:
                        yield packed_record(join(("ns", "dns"), zone), packed)
                for _ in cluster_ips or (None,):  # CoreDNS makes each port's SRV once per cluster IP
                    yield from _srv_records(base, service.ports, base, port_names)
            for name, (_, spelled, packed, ports) in zip(names, endpoints, strict=True):
                yield (name, ADDRESS_OF_NAME, None) if spelled else packed_record(name, packed)
                for port in ports:
                    yield (name, SRV, port.port)
        base, names = named[0]  # the primary zone's names: PTRs point there
        for packed in cluster_ips:
            yield from self._ptr(packed, base, PTR)
        for name, (_, _, packed, _) in zip(names, endpoints, strict=True):
            yield from self._ptr(packed, name, PTR_ENDPOINT)

    def _external_name(self, service: Service, quiet: bool) -> Iterator[Record]:
        try:
            ipaddress.ip_address(service.external_name)
        except ValueError:
            pass
        else:
            if not quiet:
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
            if not quiet:
                log.info("service %s/%s: %s, not served", service.namespace, service.name, exc)
            return
        for zone in self.service_zones:
            yield (join((service.name, service.namespace, "svc"), zone), CNAME, target)

    def _imported(self, imported: ServiceImport, slices: Iterable[EndpointSlice]) -> Iterator[Record]:
        """A ServiceImport's names in the multicluster zones (KEP-1645's DNS specification):
        ``<svc>.<ns>.svc.<zone>`` with its clusterset IPs, or with the ready endpoints of its slices
        when headless, each endpoint also named ``<hostname>.<cluster id>.<svc>.<ns>.svc.<zone>``;
        SRV as for a Service. A headless import without ready endpoints has no name (NXDOMAIN)."""
        endpoints = [
            (self._endpoint_label(ep, address)[0], piece.cluster, address, piece.ports)
            for piece in slices
            for ep in piece.endpoints
            if ep.ready
            for address in ep.addresses
        ]
        for zone in self.import_zones:
            base = join((imported.name, imported.namespace, "svc"), zone)
            port_names: dict[Port, bytes] = {}
            if imported.kind is ServiceImportKind.CLUSTER_SET_IP:
                yield (base, PRESENCE, None)
                for ip in imported.ips:
                    yield packed_record(base, pack_ip(ip))
                yield from _srv_records(base, imported.ports, base, port_names)
                continue
            for label, cluster, packed, ports in endpoints:
                yield packed_record(base, packed)
                if not cluster:  # an endpoint is named within its cluster: unnamed without one
                    continue
                name = join((label, cluster), base)
                yield packed_record(name, packed)
                yield from _srv_records(base, ports, name, port_names)

    def _endpoint_label(self, endpoint: Endpoint, address: bytes) -> tuple[str, bool]:
        """The label of an endpoint's name, and whether it spells the address."""
        dashed = dashed_ip(ip_text(address))
        if endpoint.hostname:
            return endpoint.hostname, endpoint.hostname == dashed
        if self.settings.endpoint_pod_names and _is_label(endpoint.pod_name):
            return endpoint.pod_name, endpoint.pod_name == dashed
        return dashed, True

    endpoint_label = _endpoint_label  # other zones name endpoints alike (k8s_external's headless)

    def _ptr(self, packed: bytes, target: bytes, rtype: int) -> Iterator[Record]:
        name = reverse_packed(packed)
        if any(is_within(name, zone) for zone in self.layout.reverse):
            yield (name, rtype, target)


def _srv_records(
    base: bytes, ports: tuple[Port, ...], target: bytes, port_names: dict[Port, bytes]
) -> Iterator[Record]:
    """SRV at the service name for every port, and at ``_<name>._<proto>`` for named ports (their
    names kept in ``port_names``, one object for all the records at each)."""
    for port in ports:
        yield (base, SRV, port.port if target == base else (port.port, target))
        if port.name:
            name = port_names.get(port)
            if name is None:
                name = port_names[port] = join((f"_{port.name}", f"_{port.protocol}"), base)
            yield (name, SRV, (port.port, target))


def _srv_copies_counted(records: Iterable[Record]) -> list[Record]:
    """An owner's records with each SRV record that was made more than once kept once, saying how many
    times (CoreDNS shares an SRV answer's weight among its records before it drops the repeats)."""
    records = list(records)
    copies = Counter(record for record in records if record[1] == SRV)
    if all(count == 1 for count in copies.values()):
        return records
    out = []
    for record in dict.fromkeys(records):
        name, rtype, rdata = record
        count = copies[record] if rtype == SRV else 1
        if count > 1:
            port, target = (rdata, name) if type(rdata) is int else rdata
            out.append((name, SRV, (port, target, count)))
        else:
            out.append(record)
    return out


def _is_label(text: str) -> bool:
    return 0 < len(text) <= MAX_LABEL_LENGTH and "." not in text and text.isascii()
