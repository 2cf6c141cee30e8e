"""CoreDNS's ``acl``: who may ask what. Rules are read in order and the first that matches a query
(its type, and its client's network) decides: ``allow`` lets it through, ``block`` answers REFUSED,
``filter`` NOERROR with no records, ``drop`` nothing at all; a query no rule matches is allowed.

The type is known from the question, so the rules that can match are found when the answer is made;
when the first of them names no network the decision is the same for every client and is kept with
the answer. Otherwise the answer carries a gate that checks the client's address per query.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from kdns.codes import NOERROR
from kdns.config import AclAction, AclRule, AclSettings
from kdns.resolver import DROPPED, REFUSED_ANSWER, Answer, Gate
from kdns.zone.names import longest_zone

FILTERED = Answer(rcode=NOERROR, authoritative=False)
OUTCOMES: dict[AclAction, Answer | None] = {
    AclAction.ALLOW: None,
    AclAction.BLOCK: REFUSED_ANSWER,
    AclAction.FILTER: FILTERED,
    AclAction.DROP: DROPPED,
}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Acl:
    def __init__(
        self, settings: Sequence[AclSettings], *, zones: Callable[[AclSettings], tuple[bytes, ...]]
    ) -> None:
        self.stanzas = [
            (
                zones(stanza),
                [(rule, [ipaddress.ip_network(net) for net in rule.nets]) for rule in stanza.rules],
            )
            for stanza in settings
        ]

    def decide(self, qname: bytes, qtype: int) -> Answer | Gate | None:
        """For a question: the answer every client gets (block, filter, drop), ``None`` when every
        client is allowed, or a gate deciding per client."""
        rules = [
            (rule, nets)
            for stanza_zones, stanza_rules in self.stanzas
            if longest_zone(qname, stanza_zones) is not None
            for rule, nets in stanza_rules
            if not rule.qtypes or qtype in rule.qtypes
        ]
        if not rules:
            return None
        first, nets = rules[0]
        if not nets:
            return OUTCOMES[first.action]
        return _gate(rules)


def _gate(rules: list[tuple[AclRule, list[Network]]]) -> Gate:
    def gate(client: tuple, channel: int) -> Answer | None:
        address = ipaddress.ip_address(client[0].split("%")[0])
        for rule, nets in rules:
            if not nets or any(address in net for net in nets):
                return OUTCOMES[rule.action]
        return None

    return gate
