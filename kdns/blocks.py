"""Server blocks at run time: which block a question goes to, and its plugins in CoreDNS's order.

A listener (an address set and a port) serves one or more server blocks. A question goes to the
block of the longest zone it falls in (CoreDNS's rule); one that falls in no block's zones is
REFUSED. Within a block the plugins answer in the order of CoreDNS's ``plugin.cfg``, each either
answering or passing the question on: ``acl`` (which may answer differently per client, through the
answer's gate), ``chaos``, ``rewrite`` (the rest answer the rewritten question, and the answer is
mapped back; its ``edns0`` rules edit the options of what goes upstream, per query, since they read
the client: the answer only names the rules reached), ``template``, ``hosts``, ``k8s_external``,
``kubernetes`` (the cluster's resolver), then ``forward``, whose first stanza in the order written
that holds the name takes the question (other classes than IN and zone transfers are REFUSED rather
than forwarded). A question no plugin answers gets ``whoami``'s answer when the block has it, else
SERVFAIL, as CoreDNS's chain ends.

Everything here is a pure function of the question: the answer (or which forward route answers it
later) is packed once and kept by the responder until the zone or the configuration changes. Zone
transfers are the exception: a block's ``transfer`` (``transfer_of``) depends on who asks and how,
so the responder asks it per query, ahead of the block's other plugins.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace

from kdns.codes import AXFR, IN, IXFR, NOERROR, SERVFAIL
from kdns.plugins.acl import Acl
from kdns.plugins.chaos import Chaos
from kdns.plugins.external import External
from kdns.plugins.hosts import Hosts
from kdns.plugins.rewrite import STAND_IN_CLIENT, Rewrite, revert_answer
from kdns.plugins.template import Template
from kdns.plugins.transfer import Transfer
from kdns.plugins.whoami import whoami
from kdns.resolver import REFUSED_ANSWER, Answer, Gate, Resolver
from kdns.zone.names import ROOT, ZoneLayout, is_within, longest_zone, to_text

NO_PLUGIN = Answer(rcode=SERVFAIL, authoritative=False)  # no plugin of the block answers


@dataclass(frozen=True, slots=True)
class Route:
    """A ``forward`` stanza as a block sees it: the names it takes, and its number among the
    listener's forwarders (``Answer.delegate``)."""

    number: int
    zone: bytes  # FROM, wire form
    excepts: tuple[bytes, ...] = ()  # names within these are not forwarded

    def takes(self, qname: bytes) -> bool:
        """Whether this stanza forwards ``qname``: its FROM zone holds it, its ``except`` names do not."""
        return is_within(qname, self.zone) and longest_zone(qname, self.excepts) is None


class Block:
    """One server block's plugins, as far as they answer from what kdns holds."""

    def __init__(
        self,
        zones: Sequence[bytes],
        *,
        acl: Acl | None = None,
        chaos: Chaos | None = None,
        rewrite: Rewrite | None = None,
        templates: Sequence[Template] = (),
        cluster: Resolver | None = None,
        hosts: Hosts | None = None,
        external: External | None = None,
        routes: Sequence[Route] = (),
        transfer: Transfer | None = None,
        whoami: bool = False,
    ) -> None:
        self.zones = tuple(zones)
        self.acl = acl
        self.chaos = chaos
        self.rewrite = rewrite
        self.templates = tuple(templates)
        self.cluster = cluster
        self.hosts = hosts
        self.external = external
        self.routes = tuple(routes)
        self.transfer = transfer
        self.whoami = whoami
        self.forwarding = bool(self.routes)
        # which rules a question reaches is decided for any client that has an address: the options
        # a client's rules make are the forwarder's to work out, per query (see ``rewrite``)
        self._client = STAND_IN_CLIENT if rewrite is not None and rewrite.needs_client else None

    def resolve(self, qname: bytes, qtype: int, qclass: int = IN) -> Answer:
        if self.acl is None:
            return self._allowed(qname, qtype, qclass)
        decision = self.acl.decide(qname, qtype)
        if decision is None:
            return self._allowed(qname, qtype, qclass)
        if isinstance(decision, Answer):  # the same for every client
            return decision
        return replace(self._allowed(qname, qtype, qclass), gate=decision)

    def _allowed(self, qname: bytes, qtype: int, qclass: int) -> Answer:
        """The plugins after ``acl``: ``chaos``, then ``rewrite`` and the rest."""
        if self.chaos is not None:
            answer = self.chaos.answer(qname, qtype, qclass)
            if answer is not None:
                return answer
        if self.rewrite is None:
            return self._answer(qname, qtype, qclass)
        done = self.rewrite.apply(qname, qtype, qclass, client=self._client)
        if done.servfail:
            return NO_PLUGIN
        if not done.changed and not done.reverter.rewrites_response and not done.edns0:
            return self._answer(qname, qtype, qclass)
        answer = self._answer(done.qname, done.qtype, done.qclass)
        if answer.delegate:  # upstream is asked the rewritten question; its answer is mapped back
            asked = (answer.chase or done.qname) + struct.pack("!HH", done.qtype, done.qclass)
            return replace(answer, asked=asked, reverter=done.reverter, edns0=done.edns0)
        return revert_answer(done.reverter, answer)  # kdns's own answers carry no EDNS0 options

    def _answer(self, qname: bytes, qtype: int, qclass: int) -> Answer:
        """The plugins after ``rewrite``, in CoreDNS's order."""
        for template in self.templates:
            name, zone = to_text(qname), to_text(longest_zone(qname, self.zones) or ROOT)
            answer = template.answer(name, qtype, qclass, zone, "")
            if answer is not None and not template.cacheable:  # it reads the client: made per query
                return replace(answer, gate=_per_client(template, name, qtype, qclass, zone))
            if answer is not None:
                return self._chased(answer)
        if self.hosts is not None and qclass == IN:
            answer = self.hosts.answer(qname, qtype)
            if answer is not None:
                return answer
        if self.external is not None and qclass == IN:
            answer = self.external.answer(qname, qtype)
            if answer is not None:
                return answer
        if self.cluster is not None:
            answer = self.cluster.resolve(qname, qtype, qclass)
            if answer is not None:
                return self._chased(answer)
        other = qclass != IN or qtype in (AXFR, IXFR)  # not sent upstream (see the README)
        route = self.route(qname)
        if route is not None:
            return (
                REFUSED_ANSWER if other else Answer(rcode=NOERROR, authoritative=False, delegate=route.number)
            )
        if self.whoami:
            return whoami(qname)
        return REFUSED_ANSWER if other else NO_PLUGIN

    def _chased(self, answer: Answer) -> Answer:
        """``answer``, handed to the forward route of its CNAME target when that left the zones."""
        if answer.chase is None:
            return answer
        route = self.route(answer.chase)
        return replace(answer, delegate=route.number) if route is not None else answer

    def route(self, qname: bytes) -> Route | None:
        """The forward stanza that takes ``qname``: the first, in the order written, whose FROM zone
        holds it and whose ``except`` names do not (CoreDNS chains its stanzas so)."""
        return next((route for route in self.routes if route.takes(qname)), None)


def _per_client(template: Template, name: str, qtype: int, qclass: int, zone: str) -> Gate:
    """A template's answer for each client (``{{ .Remote }}``)."""

    def gate(client: tuple, channel: int) -> Answer | None:
        return template.answer(name, qtype, qclass, zone, client[0])

    return gate


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
