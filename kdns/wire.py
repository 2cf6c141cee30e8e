"""The DNS wire format at kdns's edge: query bytes in, response bytes out.

``parse_query`` reads only what answering needs (header, the one question, an OPT record) and says
FORMERR, NOTIMP or drop for everything a server must not answer normally. ``pack`` turns a resolver
``Answer`` into a ``Packed`` response body with dnslib, once; ``Packed.render`` then makes a response
for any query with that question: the body's owner names point at the question (offset 12), so only
the ID, flags, counts and the question itself (in the query's own letter case) vary per query.
``pack_records`` does the same for records from an upstream, keeping where their TTLs sit so the cache
can count them down; ``read_upstream_answer`` accepts an upstream's reply only for our ID and question.
"""

from __future__ import annotations

import struct
from typing import TypeVar

import dnslib
from dnslib import AAAA, CNAME, NS, PTR, RR, SOA, SRV, TXT, A, DNSBuffer, DNSLabel

from kdns.resolver import FORMERR, OPT, Answer, RRset
from kdns.zone.names import labels_of

HEADER = struct.Struct("!HHHHHH")
_HEAD_AFTER_ID = struct.Struct("!HHHHH")
_TTL = struct.Struct("!I")
TSIG = 250
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
QR, AA, TC, RD, RA, CD = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080, 0x0010
OPCODE_MASK = 0x7800
ECHOED_FLAGS = RD | CD  # copied from the query (RFC 1035, RFC 6840)
NO_EDNS_UDP_SIZE = 512
TCP_MAX_SIZE = 65535
BADVERS = 16
OPT_SIZE = 11  # an OPT record without options
NOT_FAST = 1 << 20  # ``Packed.fast_size`` of an answer that must take the full path


class Drop(Exception):
    """No reply is possible or wise (too short to carry an ID, or itself a response)."""


class Malformed(Exception):
    """The query gets an error reply with this rcode and no question."""

    def __init__(self, rcode: int) -> None:
        super().__init__(rcode)
        self.rcode = rcode


# (qid, flags, qend, end, edns_size, edns_do, edns_version); qend is the end of the qname,
# end the end of the question; edns_size is 0 when the query has no OPT record.
Query = tuple[int, int, int, int, int, bool, int]


def parse_query(data: bytes) -> Query:
    if len(data) < 12:
        raise Drop
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & QR:
        raise Drop
    if flags & OPCODE_MASK:
        raise Malformed(4)  # NOTIMP: only standard queries are answered
    if qdcount != 1:
        raise Malformed(FORMERR)
    i = 12
    try:
        length = data[i]
        while length:
            if length > 63:  # a compression pointer or a reserved label type
                raise Malformed(FORMERR)
            i += length + 1
            length = data[i]
    except IndexError:
        raise Malformed(FORMERR) from None
    qend = i + 1
    end = qend + 4
    if qend - 12 > 255 or end > len(data):
        raise Malformed(FORMERR)
    if data[qend : qend + 2] == b"\x00\x29":  # a question for OPT is meaningless (RFC 6891)
        raise Malformed(FORMERR)
    if not (ancount or nscount or arcount):
        if end != len(data):
            raise Malformed(FORMERR)
        return qid, flags, qend, end, 0, False, 0
    size, do, version = _read_edns(data, end, ancount + nscount, arcount)
    return qid, flags, qend, end, size, do, version


def _read_edns(data: bytes, i: int, skip: int, arcount: int) -> tuple[int, bool, int]:
    """Walk the records after the question; return the OPT's (size, DO, version), or zeros."""
    found = None
    try:
        for n in range(skip + arcount):
            owner = i
            length = data[i]
            while length:
                if length >= 0xC0:
                    i += 1
                    break
                if length > 63:
                    raise Malformed(FORMERR)
                i += length + 1
                length = data[i]
            i += 1
            rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, i)
            i += 10 + rdlength
            if rtype == OPT:
                if n < skip or found is not None or data[owner] != 0:
                    raise Malformed(FORMERR)  # RFC 6891: one OPT, in additional, owned by the root
                found = (max(rclass, NO_EDNS_UDP_SIZE), bool(ttl & 0x8000), (ttl >> 16) & 0xFF)
    except (IndexError, struct.error):
        raise Malformed(FORMERR) from None
    if i != len(data):
        raise Malformed(FORMERR)
    return found or (0, False, 0)


def error_response(data: bytes, rcode: int) -> bytes:
    """A header-only reply carrying ``rcode`` to a query we will not answer normally."""
    qid, flags = struct.unpack_from("!HH", data)
    return HEADER.pack(qid, QR | (flags & (OPCODE_MASK | ECHOED_FLAGS)) | rcode, 0, 0, 0, 0)


def opt_record(udp_size: int, *, do: bool = False, extended_rcode: int = 0) -> bytes:
    """The OPT pseudo-record we echo: our UDP size, version 0, the client's DO bit."""
    ttl = (extended_rcode >> 4) << 24 | (0x8000 if do else 0)
    return b"\x00" + _RR_FIXED.pack(OPT, udp_size, ttl, 0)


class Packed:
    """A response body for one question, with the RRset boundaries used to truncate it.

    ``delegate`` marks a question someone upstream must answer (``answer`` keeps the resolver's
    reasons: the CNAMEs that led out of the zones)."""

    __slots__ = (
        "answer",
        "autopath",
        "body",
        "counts",
        "cuts",
        "delegate",
        "depends",
        "fast_size",
        "flags",
        "head",
        "head_edns",
        "hits",
        "seen",
        "ttl_offsets",
        "variants",
    )

    def __init__(
        self,
        flags: int,
        body: bytes,
        cuts: tuple[tuple[int, int, int, int], ...],
        depends: tuple[bytes, ...],
        *,
        ttl_offsets: tuple[int, ...] = (),
        delegate: bool = False,
        answer: Answer | None = None,
    ) -> None:
        self.flags = flags
        self.body = body
        # (body length, an, ns, ar) after each whole RRset; kept only when there are several (one is
        # the whole body), and the counts and headers below are shared between answers: an answer
        # cache full of NXDOMAINs for random names costs little more than their bodies and keys.
        self.cuts = cuts if len(cuts) > 1 else ()
        self.counts = _shared(cuts[-1][1:] if cuts else (0, 0, 0))
        self.depends = depends
        self.ttl_offsets = ttl_offsets  # where each record's TTL sits in the body
        self.delegate = delegate
        self.answer = answer
        self.hits = [0, 0, 0, 0]  # queries answered with this, by channel (UDP4, UDP6, TCP4, TCP6)
        self.seen = 0  # the hits a cache last saw (to tell answers still asked for)
        self.variants: tuple[Packed, ...] | None = None  # the same answer with addresses rotated
        self.autopath: str | None = None  # NXDOMAIN below <ns>.svc.<zone>: that namespace
        # For the responder's fast path (a query with RD set and CD clear): the header after the ID,
        # without and with our OPT record, and the body's size (``NOT_FAST`` when it must not be used).
        an, ns, ar = self.counts
        self.head = _shared(_HEAD_AFTER_ID.pack(flags | RD, 1, an, ns, ar))
        self.head_edns = _shared(_HEAD_AFTER_ID.pack(flags | RD, 1, an, ns, ar + 1))
        self.fast_size = NOT_FAST if delegate else len(body)

    def cut_points(self) -> tuple[tuple[int, int, int, int], ...]:
        """Every RRset boundary, the body's end included."""
        if self.cuts or not self.body:
            return self.cuts
        return ((len(self.body), *self.counts),)

    def with_ttl(self, ttl: int) -> Packed:
        """The same answer with every record's TTL set to ``ttl`` (a cached answer counting down)."""
        body = bytearray(self.body)
        for offset in self.ttl_offsets:
            _TTL.pack_into(body, offset, ttl)
        return Packed(self.flags, bytes(body), self.cut_points(), self.depends, ttl_offsets=self.ttl_offsets)

    def render(self, data: bytes, qid: int, qflags: int, end: int, limit: int, opt: bytes) -> bytes:  # noqa: PLR0917 (hot path)
        """The response to the query ``data`` (question ending at ``end``), at most ``limit`` bytes."""
        body = self.body
        flags = self.flags | (qflags & ECHOED_FLAGS)
        an, ns, ar = self.counts
        if end + len(body) + len(opt) > limit:
            body, an, ns, ar, truncated = self._fit(limit - end - len(opt))
            if truncated:
                flags |= TC
        if opt:
            ar += 1
        return b"".join((HEADER.pack(qid, flags, 1, an, ns, ar), data[12:end], body, opt))

    def _fit(self, budget: int) -> tuple[bytes, int, int, int, bool]:
        """Whole RRsets that fit ``budget``; truncated unless only additional records were left out."""
        length, an, ns, ar = 0, 0, 0, 0
        for cut in self.cut_points():
            if cut[0] > budget:
                break
            length, an, ns, ar = cut
        full_an, full_ns, _ = self.counts
        return self.body[:length], an, ns, ar, (an, ns) != (full_an, full_ns)


_SHARED: dict = {}


_Shareable = TypeVar("_Shareable", bytes, tuple)


def _shared(value: _Shareable) -> _Shareable:
    """One object for equal header bytes and record counts (a few hundred distinct values at most)."""
    return _SHARED.setdefault(value, value)


class _Buffer(DNSBuffer):
    """dnslib's buffer with two changes to name compression: a name is remembered only where a 14-bit
    pointer can reach it (offsets below 16384, RFC 1035 4.1.4), and SRV targets, written uncompressed
    (RFC 2782), are remembered so that the additional records naming them compress against them."""

    def encode_name(self, name: DNSLabel) -> None:
        start = self.offset
        super().encode_name(name)
        if self.offset >= _POINTER_LIMIT:
            labels = name.label
            for i in range(len(labels)):
                if self.names.get(labels[i:], 0) >= _POINTER_LIMIT and self.names[labels[i:]] >= start:
                    del self.names[labels[i:]]

    def remember(self, labels: list[bytes], offset: int) -> None:
        for i in range(len(labels)):
            if offset >= _POINTER_LIMIT:
                return
            self.names.setdefault(tuple(labels[i:]), offset)
            offset += len(labels[i]) + 1


_POINTER_LIMIT = 0x4000


def pack(answer: Answer, qname: bytes, qtype_class: bytes, *, recursion_available: bool = False) -> Packed:
    """Pack ``answer`` behind a question for ``qname`` (lowercase wire) so names compress against it."""
    if answer.delegate:
        return Packed(0, b"", (), answer.depends or (qname,), delegate=True, answer=answer)
    flags = QR | (AA if answer.authoritative else 0) | (RA if recursion_available else 0) | answer.rcode
    depends = answer.depends or (qname,)
    labels = labels_of(qname)
    only_soa = not answer.answer and not answer.additional and [r.rtype for r in answer.authority] == [6]
    if only_soa:  # NXDOMAIN or NODATA (type 6, SOA): packed once for every question that compresses the same
        soa = answer.authority[0]
        shape = (len(qname), tuple(labels[-_longest_name(soa) :]), soa)
        known = _NEGATIVE_BODIES.get(shape)
        if known is not None:
            return Packed(flags, known[0], known[1], depends)
    buffer = _Buffer()
    buffer.append(bytes(12))
    buffer.encode_name(DNSLabel(labels))
    buffer.append(qtype_class)
    start = buffer.offset
    counts = [0, 0, 0]
    cuts = []
    for section, rrsets in enumerate((answer.answer, answer.authority, answer.additional)):
        for rrset in rrsets:
            owner = DNSLabel(labels_of(rrset.name))
            for rdata in rrset.rdatas:
                RR(owner, rrset.rtype, 1, rrset.ttl, _rdata(rrset.rtype, rdata)).pack(buffer)
                if rrset.rtype == 33:
                    target = rdata[3]
                    buffer.remember(labels_of(target), buffer.offset - len(target))
            counts[section] += len(rrset.rdatas)
            cuts.append((buffer.offset - start, *counts))
    body, cuts = bytes(buffer.data[start:]), tuple(cuts)
    if only_soa:
        if len(_NEGATIVE_BODIES) >= _NEGATIVE_BODIES_MAX:
            _NEGATIVE_BODIES.clear()  # old serials and TTLs; refilled by the next questions
        _NEGATIVE_BODIES[shape] = (body, cuts)
    return Packed(flags, body, cuts, depends)


# A negative answer's body (the SOA) compresses against the question, so it is the same for every
# question of the same length whose last labels, as many as the SOA's longest name has, are the same:
# a flood of random names costs one resolver lookup each, not a dnslib pack.
_NEGATIVE_BODIES: dict[tuple[int, tuple[bytes, ...], RRset], tuple[bytes, tuple]] = {}
_NEGATIVE_BODIES_MAX = 4096


def _longest_name(soa: RRset) -> int:
    """The most labels among the SOA's owner and its MNAME and RNAME."""
    mname, rname = soa.rdatas[0][:2]
    return max(len(labels_of(soa.name)), len(labels_of(mname)), len(labels_of(rname)))


def pack_records(
    rcode: int,
    sections: tuple[list[RR], list[RR], list[RR]],
    qname: bytes,
    qtype_class: bytes,
    *,
    depends: tuple[bytes, ...] = (),
) -> Packed:
    """Pack records another server sent (dnslib RRs) behind a question for ``qname``, the way ``pack``
    does, keeping where each TTL sits so a cache can count it down. Owner names are lowercased so they
    compress against the question; OPT and TSIG records are the sender's own and are left out."""
    buffer = _Buffer()
    buffer.append(bytes(12))
    buffer.encode_name(DNSLabel(labels_of(qname)))
    buffer.append(qtype_class)
    start = buffer.offset
    counts, cuts, ttl_offsets = [0, 0, 0], [], []
    for section, records in enumerate(sections):
        previous = None
        for rr in records:
            if rr.rtype in (OPT, TSIG):
                continue
            owner = DNSLabel([label.lower() for label in rr.rname.label])
            if previous is not None and previous != (owner.label, rr.rtype):
                cuts.append((buffer.offset - start, *counts))
            previous = (owner.label, rr.rtype)
            buffer.encode_name(owner)
            ttl_offsets.append(buffer.offset + 4 - start)
            buffer.pack("!HHIH", rr.rtype, rr.rclass, rr.ttl, 0)
            rdata_start = buffer.offset
            rr.rdata.pack(buffer)
            buffer.update(rdata_start - 2, "!H", buffer.offset - rdata_start)
            counts[section] += 1
        if previous is not None:
            cuts.append((buffer.offset - start, *counts))
    return Packed(
        QR | RA | rcode,
        bytes(buffer.data[start:]),
        tuple(cuts),
        depends or (qname,),
        ttl_offsets=tuple(ttl_offsets),
    )


class BadUpstreamAnswer(ValueError):
    """An upstream reply that must not be used: another ID or question, or not DNS at all."""


def read_upstream_answer(data: bytes, qid: int, question: bytes) -> dnslib.DNSRecord:
    """Parse an upstream's reply to our query ``qid`` for ``question`` (wire name, type and class)."""
    if len(data) < 12 + len(question) or not data[2] & 0x80:
        raise BadUpstreamAnswer("not a DNS response")
    if int.from_bytes(data[:2]) != qid:
        raise BadUpstreamAnswer("response ID does not match the query")
    if data[4:6] != b"\x00\x01" or data[12 : 12 + len(question)].lower() != question.lower():
        raise BadUpstreamAnswer("response is for another question")
    try:
        return dnslib.DNSRecord.parse(data)
    except Exception as exc:  # dnslib raises several types for garbage
        raise BadUpstreamAnswer(f"malformed response: {exc}") from None


def _name(wire: bytes) -> DNSLabel:
    return DNSLabel(labels_of(wire))


def _rdata(rtype: int, rdata: object) -> dnslib.RD:
    match rtype:
        case 1:
            return A(tuple(rdata))
        case 28:
            return AAAA(list(rdata))
        case 5:
            return CNAME(_name(rdata))
        case 12:
            return PTR(_name(rdata))
        case 2:
            return NS(_name(rdata))
        case 33:
            priority, weight, port, target = rdata
            return SRV(priority, weight, port, _name(target))
        case 16:
            return TXT(list(rdata))
        case 6:
            mname, rname, *times = rdata
            return SOA(_name(mname), _name(rname), tuple(times))
    raise ValueError(f"cannot pack rdata of type {rtype}")


def to_records(rrsets: tuple[RRset, ...]) -> list[RR]:
    """The resolver's RRsets as dnslib records, to pack beside records from another server."""
    return [
        RR(_name(rrset.name), rrset.rtype, 1, rrset.ttl, _rdata(rrset.rtype, rdata))
        for rrset in rrsets
        for rdata in rrset.rdatas
    ]


def rrset_lines(rrset: RRset) -> list[str]:
    """Zone-file presentation lines for an RRset (``kdns dump``, test tables)."""
    owner = _name(rrset.name)
    return [RR(owner, rrset.rtype, 1, rrset.ttl, _rdata(rrset.rtype, r)).toZone() for r in rrset.rdatas]
