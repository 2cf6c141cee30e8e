"""``kdns dump``: the zone as it is served, in zone-file presentation format.

Each zone is printed as a zone transfer sends it (``kdns.plugins.transfer.zone_rrsets``): every name
the index holds, asked for every type it has through the resolver, so what is printed is what a
client receives (SRV weights, the PTR a cluster IP wins, TTLs). Names that exist without data
(namespaces, empty non-terminals) answer NODATA and print nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from kdns.config import PodMode
from kdns.plugins.transfer import zone_rrsets
from kdns.resolver import Resolver
from kdns.wire.records import rrset_lines
from kdns.zone.cluster_zone import ClusterZone
from kdns.zone.names import to_text


def dump_lines(zone: ClusterZone) -> Iterator[str]:
    resolver = Resolver(zone.index, zone.layout, zone.settings)
    counts = zone.counts()
    yield (
        f"; kdns zone: {counts['services']} services, {counts['endpoints']} endpoints, "
        f"{counts['names']} names; serial {zone.index.serial}"
    )
    if zone.settings.pods is PodMode.INSECURE:
        yield "; pods insecure: <a-b-c-d>.<namespace>.pod.<zone> answers for every IP and is not listed"
    for apex in zone.layout.apexes:
        yield ""
        yield f"$ORIGIN {to_text(apex)}"
        for rrset in zone_rrsets(resolver, apex):
            yield from sorted(rrset_lines(rrset))
