"""CoreDNS's ``hosts``: answers from a hosts table, ahead of the cluster in the plugin order.

Within its zones (its server block's by default), a name the table holds gets its A or AAAA records
(NOERROR and no records for another type); a reverse name of one of its addresses gets PTR, whatever
the zones. A name the table does not hold goes to the next plugin when it is within ``fallthrough``;
else it is SERVFAIL, as CoreDNS answers (a hosts file has no SOA to make an NXDOMAIN with). A PTR
name it does not hold always goes on.
"""

from __future__ import annotations

from kdns.codes import AAAA, NOERROR, PTR, SERVFAIL, A
from kdns.resolver import Answer, RRset
from kdns.zone.hosts import HostsTable
from kdns.zone.names import longest_zone

NOT_HELD = Answer(rcode=SERVFAIL, authoritative=False)


class Hosts:
    def __init__(
        self, table: HostsTable, *, zones: tuple[bytes, ...], fallthrough: tuple[bytes, ...]
    ) -> None:
        self.table = table
        self.zones = zones
        self.fallthrough = fallthrough

    def answer(self, qname: bytes, qtype: int) -> Answer | None:
        """The hosts answer to ``qname``; ``None`` when the next plugin is to answer."""
        if qtype != PTR and longest_zone(qname, self.zones) is None:
            return None
        rrsets = self.table.get(qname)
        if rrsets is None or (qtype == PTR and PTR not in rrsets):
            if qtype == PTR or longest_zone(qname, self.fallthrough) is not None:
                return None
            return NOT_HELD
        if A not in rrsets and AAAA not in rrsets and qtype != PTR:
            return None if longest_zone(qname, self.fallthrough) is not None else NOT_HELD
        rdatas = rrsets.get(qtype)
        found = (RRset(qname, qtype, self.table.ttl, tuple(rdatas)),) if rdatas else ()
        return Answer(rcode=NOERROR, answer=found, depends=(qname,))
