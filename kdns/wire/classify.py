"""The class of a response, as CoreDNS's ``response.Typify`` and ``response.Classify`` decide it: what
the ``log`` plugin's ``class`` picks by.

The decision, in order:

- updates, NOTIFYs and zone transfers (AXFR, IXFR questions) are *error* (CoreDNS's meta types);
- with DO set in the response, an RRSIG outside its validity period makes it *error*;
- NOERROR with answers is *success*, except an A or AAAA question whose answers hold no record of
  its type (a CNAME alone): that is *denial* (NODATA);
- a SOA in the authority section makes NOERROR and NXDOMAIN *denial*;
- SERVFAIL and NOTIMP are *error*; any other NOERROR is *success* (a referral, or nothing at all);
- everything else (REFUSED, FORMERR, NXDOMAIN without a SOA ...) is *error*, as is a message too
  short to read.
"""

from __future__ import annotations

from kdns.codes import AAAA, AXFR, IXFR, NOERROR, NOTIFY, NOTIMP, NXDOMAIN, SERVFAIL, SOA, UPDATE, A
from kdns.config import LogClass
from kdns.wire.message import Message

SERIAL_SPACE = 2**32  # RRSIG times are 32-bit serial numbers (RFC 4034 section 3.1.5, RFC 1982)


def classify(response: Message | None, now: int) -> LogClass:
    """The class of ``response`` at ``now`` (seconds since the epoch, for RRSIG validity)."""
    if response is None or response.opcode in (UPDATE, NOTIFY):
        return LogClass.ERROR
    qtype = response.question[1] if response.question is not None else None
    if qtype in (AXFR, IXFR):
        return LogClass.ERROR
    edns = response.edns
    if edns is not None and edns.do and any(not _valid(window, now) for window in response.signatures):
        return LogClass.ERROR
    rcode = response.rcode
    if response.answer and rcode == NOERROR:
        if qtype in (A, AAAA) and qtype not in response.answer:
            return LogClass.DENIAL
        return LogClass.SUCCESS
    if SOA in response.authority and rcode in (NOERROR, NXDOMAIN):
        return LogClass.DENIAL
    if rcode in (SERVFAIL, NOTIMP):
        return LogClass.ERROR
    return LogClass.SUCCESS if rcode == NOERROR else LogClass.ERROR


def _valid(window: tuple[int, int], now: int) -> bool:
    """Whether ``now`` falls within a signature's (inception, expiration), in serial arithmetic."""
    inception, expiration = window
    return _not_after(inception, now) and _not_after(now, expiration)


def _not_after(a: int, b: int) -> bool:
    """``a`` is ``b`` or before it, both read as 32-bit serial numbers."""
    return (b - a) % SERIAL_SPACE < SERIAL_SPACE // 2
