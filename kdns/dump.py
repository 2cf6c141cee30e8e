"""``kdns dump``: the zone as it is served, in zone-file presentation format.

Every name the index holds is asked for every type it has, through the resolver, so what is printed
is what a client receives (SRV weights, the PTR a cluster IP wins, TTLs). Names that exist without
data (namespaces, empty non-terminals) answer NODATA and print nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from kdns.codes import SOA
from kdns.config import PodMode
from kdns.resolver import Resolver
from kdns.wire.records import rrset_lines
from kdns.zone.cluster_zone import ClusterZone
from kdns.zone.names import is_within, labels_of, to_text
from kdns.zone.records import PRESENCE


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
        names = [n for n in zone.index.nodes if zone.layout.zone_of(n) == apex and is_within(n, apex)]
        names.sort(key=lambda n: labels_of(n)[::-1])
        for name in names:
            node = zone.index.get(name)
            types = sorted(t for t in node.rrsets if t != PRESENCE)
            if name == apex:
                types = [SOA, *types]
            for rtype in types:
                for rrset in resolver.resolve(name, rtype).answer:
                    if rrset.name == name:
                        yield from sorted(rrset_lines(rrset))
