"""CoreDNS's ``whoami``: a question no other plugin answers gets the client's own address (A or AAAA,
named as asked) and, in the additional section, ``_udp.<name>`` or ``_tcp.<name>`` SRV with the
client's port; TTL 0. The answer depends on who asks, so it is made per query."""

from __future__ import annotations

import ipaddress

from kdns.codes import AAAA, NOERROR, SRV, A
from kdns.resolver import Answer, RRset
from kdns.wire.query import TCP4
from kdns.zone.names import prepend


def whoami(qname: bytes) -> Answer:
    """The answer for ``qname``, whose gate fills in each client."""

    def gate(client: tuple, channel: int) -> Answer:
        address = ipaddress.ip_address(client[0].split("%")[0])
        rtype = A if address.version == 4 else AAAA
        srv = prepend("_tcp" if channel >= TCP4 else "_udp", qname)
        return Answer(
            rcode=NOERROR,
            answer=(RRset(qname, rtype, 0, (address.packed,)),),
            additional=(RRset(srv, SRV, 0, ((0, 0, client[1], qname),)),),
        )

    return Answer(rcode=NOERROR, gate=gate)
