"""Server blocks at run time: which block a question goes to, and its plugins in CoreDNS's order.

A listener (an address set and a port) serves one or more server blocks. A question goes to the
block of the longest zone it falls in (CoreDNS's rule); one that falls in no block's zones is
REFUSED. Within a block the plugins answer in the order of CoreDNS's ``plugin.cfg``, each either
answering or passing the question on: ``hosts``, then ``kubernetes`` (the cluster's resolver), then
``forward``, whose stanza of the longest ``FROM`` zone takes the question (other classes than IN
and zone transfers are REFUSED rather than forwarded). A question no plugin answers gets SERVFAIL,
as CoreDNS's chain ends.

Everything here is a pure function of the question: the answer (or which forward route answers it
later) is packed once and kept by the responder until the zone or the configuration changes. Zone
transfers are the exception: a block's ``transfer`` (``transfer_of``) depends on who asks and how,
so the responder asks it per query, ahead of the block's other plugins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from kdns.codes import AXFR, IN, IXFR, NOERROR, SERVFAIL
from kdns.plugins.hosts import Hosts
from kdns.plugins.transfer import Transfer
from kdns.resolver import REFUSED_ANSWER, Answer, Resolver
from kdns.zone.names import ROOT, ZoneLayout, longest_zone

NO_PLUGIN = Answer(rcode=SERVFAIL, authoritative=False)  # no plugin of the block answers


@dataclass(frozen=True, slots=True)
class Route:
    """A ``forward`` stanza as a block sees it: the names it takes, and its number among the
    listener's forwarders (``Answer.delegate``)."""

    number: int
    zone: bytes  # FROM, wire form
    excepts: tuple[bytes, ...] = ()  # names within these are not forwarded


class Block:
    """One server block's plugins, as far as they answer from what kdns holds."""

    def __init__(
        self,
        zones: Sequence[bytes],
        *,
        cluster: Resolver | None = None,
        hosts: Hosts | None = None,
        routes: Sequence[Route] = (),
        transfer: Transfer | None = None,
    ) -> None:
        self.zones = tuple(zones)
        self.cluster = cluster
        self.hosts = hosts
        self.routes = tuple(routes)
        self.transfer = transfer
        self.forwarding = bool(self.routes)

    def resolve(self, qname: bytes, qtype: int, qclass: int = IN) -> Answer:
        if self.hosts is not None and qclass == IN:
            answer = self.hosts.answer(qname, qtype)
            if answer is not None:
                return answer
        if self.cluster is not None:
            answer = self.cluster.resolve(qname, qtype, qclass)
            if answer is not None:
                if answer.chase is not None:  # an ExternalName's target, for upstream to answer
                    route = self.route(answer.chase)
                    return replace(answer, delegate=route.number) if route is not None else answer
                return answer
        if qclass != IN or qtype in (AXFR, IXFR):  # not sent upstream (see the README)
            return REFUSED_ANSWER
        route = self.route(qname)
        if route is not None:
            return Answer(rcode=NOERROR, authoritative=False, delegate=route.number)
        return NO_PLUGIN

    def route(self, qname: bytes) -> Route | None:
        """The forward stanza that takes ``qname``: the one of the longest FROM zone holding it."""
        best = None
        for route in self.routes:
            if (best is None or len(route.zone) > len(best.zone)) and longest_zone(qname, (route.zone,)):
                best = route
        if best is None or longest_zone(qname, best.excepts) is not None:
            return None
        return best


class Router:
    """The blocks of one listener, answering as one resolver: each question goes to its block."""

    def __init__(self, blocks: Sequence[Block], *, layout: ZoneLayout, ttl: int) -> None:
        self.blocks = {zone: block for block in reversed(blocks) for zone in block.zones}
        self.only = blocks[0] if len(blocks) == 1 and blocks[0].zones == (ROOT,) else None
        self.layout = layout  # the cluster's zones: autopath's walk and the responder read them
        self.ttl = ttl
        self.forwarding = any(block.forwarding for block in blocks)
        self.transferring = any(block.transfer is not None for block in blocks)

    def block_of(self, qname: bytes) -> Block | None:
        if self.only is not None:
            return self.only
        zone = longest_zone(qname, self.blocks)
        return self.blocks[zone] if zone is not None else None

    def transfer_of(self, qname: bytes) -> Transfer | None:
        """The ``transfer`` of the block ``qname`` falls in, if it has one."""
        block = self.block_of(qname)
        return block.transfer if block is not None else None

    def resolve(self, qname: bytes, qtype: int, qclass: int = IN) -> Answer:
        """The answer of the block ``qname`` falls in; REFUSED when it falls in none."""
        block = self.block_of(qname)
        if block is None:
            return REFUSED_ANSWER
        return block.resolve(qname, qtype, qclass)
