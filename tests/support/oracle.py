"""The packet oracle: what the RFCs say kdns does with any packet (``verdict``), and the checks of its
replies against that (``check_packet``), through responders set up as ``fuzz_targets`` makes them.

``verdict`` applies the rules of RFC 1035, 6891, 8482 and 7766 as README.md's "How it answers" states
them; ``check_packet`` holds each reply to them: no exception escapes; nothing is dropped but what
``verdict`` drops; every reply parses with dnspython and carries the query's ID and QR; FORMERR,
NOTIMP, BADVERS and REFUSED exactly where the rules put them; UDP replies fit the client's buffer,
holding as many of the full reply's first records as fit (miekg/dns's ``Truncate``, as CoreDNS),
with TC set exactly when records of the answer or authority were cut; ANY gets one RRset; no record is
added that the answer does not need; the fast path answers byte for byte as the full parse does.
The tests drive it with hypothesis and replay ``CORPUS``; ``python -m bench.fuzz`` with millions of
generated packets and atheris.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name

from kdns.responder import Responder
from kdns.wire.pending import PendingQuery
from kdns.wire.query import TCP4, TCP6, UDP4, UDP6
from tests.support.packets import labels_wire
from tests.support.paths import ROOT

CORPUS = ROOT / "tests" / "corpus" / "packets"  # inputs that once found defects, and a distilled set

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, BADVERS = 0, 1, 2, 3, 4, 5, 16
OPT, SRV, NS, IXFR, AXFR, ANY = 41, 33, 2, 251, 252, 255
CNAME, SOA, PTR = 5, 6, 12
QR, OPCODE, AA, TC, RD, Z, CD = 0x8000, 0x7800, 0x0400, 0x0200, 0x0100, 0x0040, 0x0010
MAX_UDP = 1232  # kdns's default --max-udp-size


# -- the rules ----------------------------------------------------------------------------------------
DROP, ERROR, BAD_VERSION, ANSWER = "drop", "error", "badvers", "answer"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the RFCs (as README.md's "How it answers" applies them) say a server does with a packet.

    ``action``: ``drop`` (no reply), ``error`` (a header-only reply with ``rcode``), ``badvers``
    (BADVERS with the question and an OPT) or ``answer``; for the last two, where the question ends,
    the question and the OPT's UDP size (``None`` without EDNS) and DO bit."""

    action: str
    rcode: int = NOERROR
    end: int = 0
    qname: tuple[bytes, ...] = ()  # lowercased labels
    qtype: int = 0
    qclass: int = 0
    edns_size: int | None = None
    do: bool = False

    def udp_limit(self, max_udp: int = MAX_UDP) -> int:
        """RFC 1035 4.2.1: 512 octets; RFC 6891 6.2.5: the advertised size, at least 512, at most ours."""
        if self.edns_size is None:
            return 512
        return min(max(self.edns_size, 512), max_udp)


def _name_end(packet: bytes, i: int, *, pointers: bool) -> int | None:
    """Where the name at ``i`` ends, or ``None`` when it is cut short or uses a reserved label type
    (RFC 1035 4.1.4, RFC 6891 5), or a pointer where none may be."""
    while True:
        if i >= len(packet):
            return None
        length = packet[i]
        if length == 0:
            return i + 1
        if length >= 0xC0:
            return i + 2 if pointers and i + 2 <= len(packet) else None
        if length > 63:
            return None
        i += length + 1


def verdict(packet: bytes) -> Verdict:
    """The fate of one query, in the order the checks apply:

    1. shorter than a header (12 octets): dropped, there is no ID to answer (RFC 1035 4.1.1);
    2. QR set: a response, dropped (answering responses makes loops);
    3. OPCODE other than QUERY (0): NOTIMP (RFC 1035 4.1.1);
    4. QDCOUNT other than 1: FORMERR (RFC 9619);
    5. the question cut short, a label of 64+ octets (reserved types) or a compression pointer in it
       (it has nothing before it to point at), or a name past 255 octets (RFC 1035 2.3.4): FORMERR;
    6. QTYPE OPT: FORMERR (RFC 6891 6.1.1: OPT is a pseudo-record of the additional section);
    7. a record that the counts announce missing or cut short, or octets after the last one: FORMERR;
    8. an OPT outside the additional section, a second OPT, or one not owned by the root: FORMERR
       (RFC 6891 6.1.1);
    9. an OPT with a version other than 0: BADVERS (RFC 6891 6.1.3);
    10. anything else is answered (REFUSED, NOERROR, NXDOMAIN... see ``expected_rcodes``).
    Records in the answer and authority sections of a query, unknown EDNS options and other
    types (TSIG included) are ignored (RFC 6891 6.1.2)."""
    if len(packet) < 12:
        return Verdict(DROP)
    _, flags, qdcount, ancount, nscount, arcount = struct.unpack_from("!6H", packet)
    if flags & QR:
        return Verdict(DROP)
    if flags & OPCODE:
        return Verdict(ERROR, NOTIMP)
    if qdcount != 1:
        return Verdict(ERROR, FORMERR)
    qend = _name_end(packet, 12, pointers=False)
    if qend is None or qend - 12 > 255 or qend + 4 > len(packet):
        return Verdict(ERROR, FORMERR)
    qtype, qclass = struct.unpack_from("!HH", packet, qend)
    if qtype == OPT:
        return Verdict(ERROR, FORMERR)
    i, opt = qend + 4, None
    for n in range(ancount + nscount + arcount):
        owner = i
        i = _name_end(packet, i, pointers=True)
        if i is None or i + 10 > len(packet):
            return Verdict(ERROR, FORMERR)
        rtype, rclass, ttl, rdlength = struct.unpack_from("!HHIH", packet, i)
        i += 10 + rdlength
        if i > len(packet):
            return Verdict(ERROR, FORMERR)
        if rtype == OPT:
            if n < ancount + nscount or opt is not None or packet[owner] != 0:
                return Verdict(ERROR, FORMERR)
            opt = (rclass, ttl)
    if i != len(packet):
        return Verdict(ERROR, FORMERR)
    labels, j = [], 12
    while packet[j]:
        labels.append(packet[j + 1 : j + 1 + packet[j]].lower())
        j += packet[j] + 1
    question = {"end": qend + 4, "qname": tuple(labels), "qtype": qtype, "qclass": qclass}
    if opt is None:
        return Verdict(ANSWER, **question)
    size, ttl = opt
    edns = {"edns_size": size, "do": bool(ttl & 0x8000)}
    if (ttl >> 16) & 0xFF:
        return Verdict(BAD_VERSION, BADVERS, **question, **edns)
    return Verdict(ANSWER, **question, **edns)


# -- the targets: responders, and what their answers must look like -----------------------------------
@dataclass
class Target:
    """A responder set up one way, and what its answers must look like."""

    name: str
    responder: Responder
    apexes: tuple[tuple[bytes, ...], ...]
    forwarding: bool
    cached: dict[bytes, int] = field(default_factory=dict)  # forward cache keys -> their rcode
    client: tuple | None = None  # the socket address queries come from
    deterministic: bool = True  # the same query gets the same bytes (no rotation)

    def within(self, labels: tuple[bytes, ...]) -> bool:
        return any(
            labels[len(labels) - len(apex) :] == apex for apex in self.apexes if len(apex) <= len(labels)
        )


# -- the checks ---------------------------------------------------------------------------------------
class Defect(AssertionError):
    """A reply (or its absence, or an exception) that breaks the rules."""


def expected_rcodes(v: Verdict, target: Target) -> set[int]:
    """The rcodes an answered query may get: REFUSED for other classes and zone transfers (README),
    and outside the zones when nothing forwards them; an authoritative rcode inside them; what the
    forward cache holds outside them."""
    if v.qclass != 1 or v.qtype in (AXFR, IXFR):
        return {REFUSED}
    if target.within(v.qname):
        return {NOERROR, NXDOMAIN, SERVFAIL}
    if not target.forwarding:
        return {REFUSED}
    key = _wire_key(v)
    return {target.cached[key]} if key in target.cached else set()  # else a delegation, not bytes


def _wire_key(v: Verdict) -> bytes:
    return labels_wire(v.qname) + b"\x00" + struct.pack("!HH", v.qtype, v.qclass)


def _fail(message: str) -> None:
    raise Defect(message)


_parsed: dict[bytes, dns.message.Message] = {}
PARSED_KEPT = 50_000


def _parse(reply: bytes) -> dns.message.Message:
    """dnspython's reading of ``reply``; replies equal but for the ID (checked apart) are read once."""
    key = reply[2:]
    message = _parsed.get(key)
    if message is not None:
        return message
    try:
        message = dns.message.from_wire(reply, ignore_trailing=False)
    except dns.exception.DNSException as exc:
        raise Defect(f"dnspython cannot parse the reply {reply[:80]!r}: {exc!r}") from None
    if len(_parsed) >= PARSED_KEPT:
        _parsed.clear()
    _parsed[key] = message
    return message


def check_reply(
    packet: bytes, v: Verdict, target: Target, tcp: bool, reply: object
) -> dns.message.Message | None:
    """Hold one reply to the rules; the parsed reply when there is one."""
    if v.action == DROP:
        if reply is not None:
            _fail(f"expected no reply, got {reply!r}")
        return None
    if reply is None:
        _fail("dropped a query that must be answered")
    qid, qflags = struct.unpack_from("!HH", packet)
    if isinstance(reply, PendingQuery):
        _check_delegation(packet, v, target, tcp, reply)
        return None
    if not isinstance(reply, bytes):
        _fail(f"reply of type {type(reply).__name__}")
    message = _parse(reply)
    flags = message.flags
    if reply[:2] != packet[:2] or not flags & QR:
        _fail(f"reply ID {reply[:2].hex()} / flags {flags:#06x} to query {qid}")
    if (flags & OPCODE) != (qflags & OPCODE) or (flags & (RD | CD)) != (qflags & (RD | CD)):
        _fail(f"opcode, RD or CD not copied (RFC 1035 4.1.1, RFC 4035 3.2.2): {flags:#06x} for {qflags:#06x}")
    if flags & Z:
        _fail("Z bit set in a reply")
    if v.action == ERROR:
        if len(reply) != 12 or message.rcode() != v.rcode:
            _fail(f"expected a header-only rcode {v.rcode}, got {message.rcode()} in {len(reply)} octets")
        return message
    if reply[12 : v.end] != packet[12 : v.end] or len(message.question) != 1:
        _fail("the question is not echoed as asked")
    if (message.edns >= 0) != (v.edns_size is not None):
        _fail(f"EDNS {message.edns} in the reply to a query with EDNS size {v.edns_size}")
    if message.edns >= 0:
        if message.edns != 0 or message.payload != target.responder.max_udp_size or message.options:
            _fail(f"reply OPT: version {message.edns}, size {message.payload}, {message.options}")
        if bool(message.ednsflags & dns.flags.DO) != v.do:
            _fail("DO bit not echoed")
    rcode = message.rcode()
    if v.action == BAD_VERSION:
        if rcode != BADVERS or message.answer or message.authority or message.additional:
            _fail(f"expected BADVERS alone, got rcode {rcode}")
        return message
    allowed = expected_rcodes(v, target)
    if rcode not in allowed:
        _fail(f"rcode {rcode} where {sorted(allowed) or 'a delegation'} is due")
    if tcp and flags & TC:
        _fail("TC over TCP")
    if not tcp and len(reply) > v.udp_limit(target.responder.max_udp_size):
        _fail(f"{len(reply)} octets over UDP to a client that takes {v.udp_limit()}")
    if rcode == REFUSED and (message.answer or message.authority or message.additional or flags & AA):
        _fail("REFUSED with records or AA")
    if v.qtype == ANY and (len(message.answer) > 1 or message.additional):
        _fail(f"ANY answered with {len(message.answer)} RRsets and {len(message.additional)} more (RFC 8482)")
    if target.within(v.qname):
        _check_in_zone(message)
    return message


def _check_in_zone(message: dns.message.Message) -> None:
    """An authoritative answer holds the question's RRset (after CNAMEs), at most the zone's SOA in
    authority, and in additional only the addresses of SRV and NS targets."""
    owners = {message.question[0].name}
    for rrset in message.answer:
        if rrset.name not in owners:
            _fail(f"answer RRset {rrset.name} {rrset.rdtype} is not on the way to the question's name")
        if rrset.rdtype == 5:
            owners.add(rrset[0].target)
    if len(message.authority) > 1 or any(rrset.rdtype != 6 for rrset in message.authority):
        _fail(f"authority holds more than the SOA: {[r.rdtype for r in message.authority]}")
    if message.additional:
        needed = {r.target for rrset in message.answer if rrset.rdtype in (SRV, NS) for r in rrset}
        extra = [rrset for rrset in message.additional if rrset.name not in needed]
        if extra:
            _fail(f"additional records nobody asked for: {extra[0].name} {extra[0].rdtype}")


def _check_delegation(packet: bytes, v: Verdict, target: Target, tcp: bool, d: PendingQuery) -> None:
    if v.action != ANSWER or not target.forwarding or v.qclass != 1 or v.qtype in (AXFR, IXFR):
        _fail(f"delegated a query that must be answered here ({v.action})")
    if not target.within(v.qname) and _wire_key(v) in target.cached:
        _fail("delegated a question the forward cache holds")
    limit = 65535 if tcp else v.udp_limit(target.responder.max_udp_size)
    if (d.qid, d.end, d.limit, bool(d.opt), d.do) != (
        struct.unpack_from("!H", packet)[0],
        v.end,
        limit,
        v.edns_size is not None,
        v.do,
    ):
        _fail(f"delegation ID {d.qid} end {d.end} limit {d.limit} opt {d.opt!r} DO {d.do}")
    if d.key != packet[12 : v.end - 4].lower() + packet[v.end - 4 : v.end]:
        _fail("delegation key is not the lowercased question")


def _counts(message: dns.message.Message) -> tuple[int, int]:
    return sum(len(r) for r in message.answer), sum(len(r) for r in message.authority)


def _records(message: dns.message.Message) -> list[tuple[int, object, int, object]]:
    """Every record of the answer, authority and additional sections, in order."""
    return [
        (section, rrset.name, rrset.rdtype, rdata)
        for section, rrsets in enumerate((message.answer, message.authority, message.additional))
        for rrset in rrsets
        for rdata in rrset
    ]


def _least_size(name: dns.name.Name, rdtype: int, rdata: object) -> int:
    """The fewest octets a record can take: its owner a pointer (the root a single octet), the fixed
    part, and its data with every compressible name a pointer."""
    if rdtype == SRV:
        data = 6 + len(rdata.target.to_wire())  # an SRV target is written in full (RFC 2782)
    elif rdtype in (CNAME, PTR, NS):
        data = 2
    elif rdtype == SOA:
        data = 2 + 2 + 20
    else:
        data = len(rdata.to_wire())
    return (1 if name == dns.name.root else 2) + 10 + data


def check_truncation(
    udp: dns.message.Message, full: dns.message.Message, size: int, limit: int, *, ordered: bool = True
) -> None:
    """As miekg/dns's ``Truncate`` keeps records, which CoreDNS uses, with RFC 2181 9 for TC: the UDP
    reply (``size`` octets, for a client that takes ``limit``) holds the full (TCP) reply's first
    records, the answer and authority record by record and the additional section in whole RRsets;
    TC set exactly when answer or authority records were cut, and then the first record left out
    could not have fit. Unless ``ordered``, the two replies may hold their records in other orders
    (rotated addresses): the UDP reply's records need only be the full reply's."""
    cut = _counts(udp) != _counts(full)
    if bool(udp.flags & TC) != cut:
        _fail(f"TC {bool(udp.flags & TC)} with {_counts(udp)} of {_counts(full)} records")
    kept, whole = _records(udp), _records(full)
    if ordered and kept != whole[: len(kept)]:
        _fail("the UDP reply's records are not the first ones of the full reply")
    if not ordered and any(record not in whole for record in kept):
        _fail("the UDP reply holds a record the full reply has not")
    for rrset in udp.additional:
        if len(rrset) != len(full.find_rrset(full.additional, rrset.name, rrset.rdclass, rrset.rdtype)):
            _fail(f"additional RRset {rrset.name} {rrset.rdtype} cut short (RFC 2181 9)")
    if cut and ordered:
        least = _least_size(*whole[len(kept)][1:])
        if size + least <= limit:
            _fail(f"a record of {least} octets or more left out of {size} of {limit}")


def respond(target: Target, packet: bytes, channel: int) -> object:
    try:
        return target.responder.respond(packet, channel, target.client)
    except Exception as exc:
        raise Defect(f"{type(exc).__name__} escaped the responder: {exc}") from exc


def check_packet(targets: Sequence[Target], packet: bytes) -> Verdict:
    """Push ``packet`` through every target over UDP and TCP; raise ``Defect`` on any broken rule."""
    v = verdict(packet)
    for n, target in enumerate(targets):
        udp_channel, tcp_channel = (UDP4, TCP4) if n % 2 == 0 else (UDP6, TCP6)
        udp = respond(target, packet, udp_channel)
        tcp = respond(target, packet, tcp_channel)
        if target.deterministic and isinstance(udp, bytes):
            full_path = target.responder._respond(packet, udp_channel, target.client)
            if full_path != udp:
                _fail("the fast path answers otherwise than the full parse")
        try:
            parsed_udp = check_reply(packet, v, target, False, udp)
            parsed_tcp = check_reply(packet, v, target, True, tcp)
            if parsed_udp is not None and parsed_tcp is not None and v.action == ANSWER:
                limit = v.udp_limit(target.responder.max_udp_size)
                check_truncation(parsed_udp, parsed_tcp, len(udp), limit, ordered=target.deterministic)
                if len(udp) > len(tcp):
                    _fail("the UDP reply is longer than the full one")
        except Defect as exc:
            raise Defect(f"{target.name}: {exc}") from None
    return v
