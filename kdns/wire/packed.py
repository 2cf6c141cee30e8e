"""Packed answers: a response body made once per question and rendered for every query that asks it.

``pack`` turns a resolver ``Answer`` into a ``Packed`` body; ``Packed.render`` then makes a response
for any query with that question: the body's names point at the question (offset 12) where they
share its letter case, so only the ID, flags, counts and the question itself (in the query's own
letter case) vary per query, and, in an answer that writes the question's zone out in full (an SRV
target), that zone, copied from the query. ``pack_records`` does the same with dnslib for records
from an upstream, keeping where their TTLs sit so a cache can count them down; ``error_packed`` is an
answer that carries only an rcode.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right
from collections.abc import Callable
from typing import Protocol, TypeVar

import dnslib

from kdns.codes import (
    AA,
    AAAA,
    CNAME,
    ECHOED_FLAGS,
    HEADER_SIZE,
    MAX_NAME_LENGTH,
    MX,
    NO_EDNS_UDP_SIZE,
    NS,
    OPT,
    POINTER_LIMIT,
    PTR,
    QR,
    RA,
    RD,
    SOA,
    SRV,
    TC,
    TSIG,
    TXT,
    A,
)
from kdns.resolver import Answer, RRset
from kdns.wire.query import HEADER, OPT_SIZE, QUESTION_TAIL_SIZE, RR_FIXED
from kdns.wire.records import label
from kdns.zone.names import is_within, labels_of

_HEAD_AFTER_ID = struct.Struct("!HHHHH")
_TTL = struct.Struct("!I")
_SRV_FIXED = struct.Struct("!HHH")  # priority, weight, port
_SOA_TIMES = struct.Struct("!IIIII")  # serial, refresh, retry, expire, minimum
ADDITIONAL = 2  # the additional section's index among the three
NOT_FAST = 1 << 20  # ``Packed.fast_size`` of an answer that must take the full path
# A body no longer than this fits every UDP answer: 512 octets less the header, the longest question
# and our OPT record; only longer bodies keep the places where they may be cut.
# ``Packed.hits``: a query's slot is its channel, plus EDNS_HITS when it carries an OPT record, or
# DO_HITS (``EDNS_HITS << 1``) when that OPT sets the DO bit
EDNS_HITS, DO_HITS = 4, 8
HIT_SLOTS = 12
ALWAYS_FITS = NO_EDNS_UDP_SIZE - HEADER_SIZE - MAX_NAME_LENGTH - QUESTION_TAIL_SIZE - OPT_SIZE


class Held(Protocol):
    """An answer kept for a while (``Packed.held``)."""

    def fresh(self) -> Packed | None: ...


class Packed:
    """A response body for one question, with the RRset boundaries used to truncate it.

    ``delegate`` marks a question someone upstream must answer: the number of the forward route
    (``Answer.delegate``), 0 when the body is the answer; ``answer`` keeps the resolver's reasons (the
    CNAMEs that led out of the zones)."""

    __slots__ = (
        "answer",
        "autopath",
        "body",
        "counts",
        "cut_counts",
        "cut_ends",
        "delegate",
        "depends",
        "fast_size",
        "flags",
        "gate",
        "head",
        "head_edns",
        "held",
        "hits",
        "seen",
        "ttl_offsets",
        "variants",
        "zone_fast_size",
        "zone_parts",
        "zone_size",
    )

    def __init__(
        self,
        flags: int,
        body: bytes,
        cuts: tuple[tuple[int, int, int, int], ...],
        depends: tuple[bytes, ...],
        *,
        ttl_offsets: tuple[int, ...] = (),
        delegate: int = 0,
        answer: Answer | None = None,
    ) -> None:
        self.flags = flags
        self.body = body
        # ``cuts``: (body length, an, ns, ar) where a UDP answer may end: after each record of the
        # answer and authority sections, after each whole RRset of the additional section. Kept
        # (as body lengths, and counts three by three) only for a body too long for every UDP answer;
        # the counts and headers below are shared between answers: an answer cache full of NXDOMAINs
        # for random names costs little more than their bodies and keys.
        if len(cuts) > 1 and len(body) > ALWAYS_FITS:
            self.cut_ends: array[int] | tuple[()] = array("I", [cut[0] for cut in cuts])
            self.cut_counts: array[int] | tuple[()] = array("I", [n for cut in cuts for n in cut[1:]])
        else:
            self.cut_ends = self.cut_counts = ()
        self.counts = _shared(cuts[-1][1:] if cuts else (0, 0, 0))
        self.depends = depends
        self.ttl_offsets = ttl_offsets  # where each record's TTL sits in the body
        self.delegate = delegate
        self.answer = answer
        # queries answered with this, by channel (UDP4, UDP6, TCP4, TCP6) plus the query's shape: no
        # OPT record (+0), an OPT (+EDNS_HITS), an OPT with the DO bit (+DO_HITS)
        self.hits = [0] * HIT_SLOTS
        self.seen = 0  # the hits a cache last saw (to tell answers still asked for)
        self.variants: tuple[Packed, ...] | None = None  # the same answer with addresses rotated
        self.autopath: str | None = None  # NXDOMAIN below <ns>.svc.<zone>: that namespace
        self.gate: Callable[[tuple, int], Answer | None] | None = None  # answers that depend on the client
        # a delegation's answer kept beside it where no cache may keep it (a chased ExternalName in a
        # zone the cache ``disable``s): its ``fresh()`` is the answer while it lives, else None
        self.held: Held | None = None
        # For the responder's fast path (a query with RD set and CD clear): the header after the ID,
        # without and with our OPT record, and the body's size (``NOT_FAST`` when it must not be used).
        an, ns, ar = self.counts
        self.head = _shared(_HEAD_AFTER_ID.pack(flags | RD, 1, an, ns, ar))
        self.head_edns = _shared(_HEAD_AFTER_ID.pack(flags | RD, 1, an, ns, ar + 1))
        self.fast_size = NOT_FAST if delegate else len(body)
        # An answer with the question's zone written out in the query's case (an SRV target): the body
        # cut where the zone goes, and the zone's size; the responder copies it from each query.
        self.zone_parts: tuple[bytes, ...] | None = None
        self.zone_size = 0
        self.zone_fast_size = NOT_FAST  # ``fast_size`` of such an answer, for the zone's own fast path

    def as_asked(self, spots: list[int], start: int, zone_size: int) -> None:
        """Mark where (offsets from the header on, the body starting at ``start``) the question's zone
        of ``zone_size`` bytes is written out, to be copied from each query in its own case."""
        parts, at = [], 0
        for spot in spots:
            parts.append(self.body[at : spot - start])
            at = spot - start + zone_size
        parts.append(self.body[at:])
        self.zone_parts = tuple(parts)
        self.zone_size = zone_size
        self.zone_fast_size, self.fast_size = self.fast_size, NOT_FAST

    def body_for(self, data: bytes, qend: int) -> bytes:
        """The body for the query ``data`` whose question's name ends at ``qend``."""
        if self.zone_parts is None:
            return self.body
        return data[qend - self.zone_size : qend].join(self.zone_parts)

    def cut_points(self) -> tuple[tuple[int, int, int, int], ...]:
        """Where a UDP answer may end, the body's end included."""
        if self.cut_ends:
            counts = self.cut_counts
            return tuple((end, *counts[3 * i : 3 * i + 3]) for i, end in enumerate(self.cut_ends))
        return ((len(self.body), *self.counts),) if self.body else ()

    def with_ttl(self, ttl: int) -> Packed:
        """The same answer with every record's TTL set to ``ttl`` (a cached answer counting down)."""
        body = bytearray(self.body)
        for offset in self.ttl_offsets:
            _TTL.pack_into(body, offset, ttl)
        return Packed(self.flags, bytes(body), self.cut_points(), self.depends, ttl_offsets=self.ttl_offsets)

    def render(self, data: bytes, qid: int, qflags: int, end: int, limit: int, opt: bytes) -> bytes:  # noqa: PLR0917 (hot path)
        """The response to the query ``data`` (question ending at ``end``), at most ``limit`` bytes."""
        body = self.body if self.zone_parts is None else self.body_for(data, end - QUESTION_TAIL_SIZE)
        flags = self.flags | (qflags & ECHOED_FLAGS)
        an, ns, ar = self.counts
        if end + len(body) + len(opt) > limit:
            body, an, ns, ar, truncated = self._fit(body, limit - end - len(opt))
            if truncated:
                flags |= TC
        if opt:
            ar += 1
        return b"".join((HEADER.pack(qid, flags, 1, an, ns, ar), data[HEADER_SIZE:end], body, opt))

    def _fit(self, body: bytes, budget: int) -> tuple[bytes, int, int, int, bool]:
        """As many records as fit ``budget``, in order (as miekg/dns's ``Truncate``, which CoreDNS
        uses): the answer and authority record by record, the additional section in whole RRsets (RFC
        2181 section 9); truncated unless only additional records were left out."""
        fitting = bisect_right(self.cut_ends, budget)
        if fitting:
            length = self.cut_ends[fitting - 1]
            an, ns, ar = self.cut_counts[3 * fitting - 3 : 3 * fitting]
        else:
            length, an, ns, ar = 0, 0, 0, 0
        full_an, full_ns, _ = self.counts
        return body[:length], an, ns, ar, (an, ns) != (full_an, full_ns)


_SHARED: dict = {}


_Shareable = TypeVar("_Shareable", bytes, tuple)


def _shared(value: _Shareable) -> _Shareable:
    """One object for equal header bytes and record counts (a few hundred distinct values at most)."""
    return _SHARED.setdefault(value, value)


class _Buffer(dnslib.DNSBuffer):
    """dnslib's buffer, remembering a name only where a 14-bit pointer can reach it (offsets below
    16384, RFC 1035 4.1.4)."""

    def encode_name(self, name: dnslib.DNSLabel) -> None:
        start = self.offset
        super().encode_name(name)
        if self.offset >= POINTER_LIMIT:
            labels = name.label
            for i in range(len(labels)):
                if self.names.get(labels[i:], 0) >= POINTER_LIMIT and self.names[labels[i:]] >= start:
                    del self.names[labels[i:]]


def pack(
    answer: Answer,
    qname: bytes,
    qtype_class: bytes,
    *,
    recursion_available: bool = False,
    zone: bytes | None = None,
) -> Packed:
    """Pack ``answer`` behind a question for ``qname`` (lowercase wire) so names compress against it.

    Letter case follows CoreDNS: the owner that is the question keeps the query's case (a pointer to
    the question); names built from ``zone`` (the question's zone: SRV and NS targets, the additional
    and SOA names) keep it in their zone part only; names copied from the cluster (CNAME and PTR
    targets, the names a CNAME leads to) are lowercase. A zone part written out in full (an SRV
    target, never compressed) is copied from each query when the answer is rendered."""
    if answer.delegate:
        return Packed(0, b"", (), answer.depends or (qname,), delegate=answer.delegate, answer=answer)
    flags = QR | (AA if answer.authoritative else 0) | (RA if recursion_available else 0) | answer.rcode
    depends = answer.depends or (qname,)
    labels = labels_of(qname)
    only_soa = not answer.answer and not answer.additional and [r.rtype for r in answer.authority] == [SOA]
    if only_soa:  # NXDOMAIN or NODATA: packed once for every question that compresses the same
        soa = answer.authority[0]
        shape = (len(qname), tuple(labels[-_longest_name(soa) :]), soa, zone)
        known = _NEGATIVE_BODIES.get(shape)
        if known is not None:
            return Packed(flags, known[0], known[1], depends)
    message = _Message(labels, qtype_class, zone)
    start = len(message.out)
    counts = [0, 0, 0]
    cuts = []
    for section, rrsets in enumerate((answer.answer, answer.authority, answer.additional)):
        for rrset in rrsets:
            for value in rrset.rdatas:
                message.record(rrset, value, section)
                counts[section] += 1
                if section < ADDITIONAL:  # a UDP answer may end after any of its records
                    cuts.append((len(message.out) - start, *counts))
            if section == ADDITIONAL:  # additional records go in whole RRsets (RFC 2181 section 9)
                cuts.append((len(message.out) - start, *counts))
    body, cuts = bytes(message.out[start:]), tuple(cuts)
    if only_soa:
        if len(_NEGATIVE_BODIES) >= _NEGATIVE_BODIES_MAX:
            _NEGATIVE_BODIES.clear()  # old serials and TTLs; refilled by the next questions
        _NEGATIVE_BODIES[shape] = (body, cuts)
    packed = Packed(flags, body, cuts, depends)
    if message.zone_spots:
        packed.as_asked(message.zone_spots, start, len(zone))
    return packed


class _Message:
    """A response being packed: its bytes from the header on, and where each name suffix was written.

    A suffix is remembered with how many of its last labels are in the query's letter case (all of
    them for the question's own suffixes, the zone's for names built from it, none for names copied
    from the cluster), and only names of the same case compress against each other. Names are
    remembered only where a 14-bit pointer reaches them (offsets below 16384, RFC 1035 4.1.4)."""

    __slots__ = ("names", "out", "qname", "zone", "zone_labels", "zone_spots")

    def __init__(self, labels: list[bytes], qtype_class: bytes, zone: bytes | None) -> None:
        self.out = bytearray(HEADER_SIZE)
        self.names: dict[tuple[tuple[bytes, ...], int], int] = {}
        self.qname = labels
        self.zone = zone
        self.zone_labels = len(labels_of(zone)) if zone else 0
        self.zone_spots: list[int] = []  # where a zone part in the query's case is written out
        self.name(labels, len(labels))
        self.out += qtype_class

    def asked(self, name: bytes) -> int:
        """How many labels of ``name``, a name built from the zone, keep the query's case."""
        return self.zone_labels if self.zone is not None and is_within(name, self.zone) else 0

    def name(self, labels: list[bytes], asked: int, *, compress: bool = True) -> None:
        """Write a name whose last ``asked`` labels are in the query's case; with ``compress``, as a
        pointer to where it, or its longest suffix, was written before."""
        out, names, count = self.out, self.names, len(labels)
        for i in range(count):
            key = (tuple(labels[i:]), min(asked, count - i))
            if compress:
                at = names.get(key)
                if at is not None:
                    out += (0xC000 | at).to_bytes(2, "big")
                    return
            if len(out) < POINTER_LIMIT:
                names.setdefault(key, len(out))
            if not compress and i == count - asked:
                self.zone_spots.append(len(out))
            out.append(len(labels[i]))
            out += labels[i]
        out.append(0)

    def record(self, rrset: RRset, value: object, section: int) -> None:
        """One record of ``rrset`` in the answer (0), authority (1) or additional (2) section."""
        out, rtype = self.out, rrset.rtype
        owner = labels_of(rrset.name)
        if section == 0:  # the question's own name, or one a CNAME led to
            self.name(owner, len(owner) if owner == self.qname else 0)
        else:
            self.name(owner, self.asked(rrset.name))
        out += RR_FIXED.pack(rtype, rrset.rclass, rrset.ttl, 0)
        rdata_at = len(out)
        if rtype in (A, AAAA):
            out += value
        elif rtype in (CNAME, PTR):
            self.name(labels_of(value), 0)
        elif rtype == NS:
            self.name(labels_of(value), self.asked(value))
        elif rtype == MX:
            preference, exchange = value
            out += preference.to_bytes(2, "big")
            self.name(labels_of(exchange), self.asked(exchange))
        elif rtype == SRV:
            priority, weight, port, target = value
            out += _SRV_FIXED.pack(priority, weight, port)
            self.name(labels_of(target), self.asked(target), compress=False)  # RFC 2782
        elif rtype == TXT:
            for text in value:
                out.append(len(text))
                out += text
        elif rtype == SOA:
            mname, rname, *times = value
            self.name(labels_of(mname), self.asked(mname))
            self.name(labels_of(rname), self.asked(rname))
            out += _SOA_TIMES.pack(*times)
        else:
            raise ValueError(f"cannot pack rdata of type {rtype}")
        out[rdata_at - 2 : rdata_at] = (len(out) - rdata_at).to_bytes(2, "big")


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
    sections: tuple[list[dnslib.RR], list[dnslib.RR], list[dnslib.RR]],
    qname: bytes,
    qtype_class: bytes,
    *,
    depends: tuple[bytes, ...] = (),
) -> Packed:
    """Pack records another server sent (dnslib RRs) behind a question for ``qname``, the way ``pack``
    does, keeping where each TTL sits so a cache can count it down. Owner names are lowercased so they
    compress against the question; OPT and TSIG records are the sender's own and are left out."""
    buffer = _Buffer()
    buffer.append(bytes(HEADER_SIZE))
    buffer.encode_name(label(qname))
    buffer.append(qtype_class)
    start = buffer.offset
    counts, cuts, ttl_offsets = [0, 0, 0], [], []
    for section, records in enumerate(sections):
        previous = None
        for rr in records:
            if rr.rtype in (OPT, TSIG):
                continue
            owner = dnslib.DNSLabel([part.lower() for part in rr.rname.label])
            if previous is not None and (section < ADDITIONAL or previous != (owner.label, rr.rtype)):
                cuts.append((buffer.offset - start, *counts))  # additional records in whole RRsets
            previous = (owner.label, rr.rtype)
            buffer.encode_name(owner)
            ttl_offsets.append(buffer.offset + 4 - start)
            buffer.pack(RR_FIXED.format, rr.rtype, rr.rclass, rr.ttl, 0)
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


def error_packed(rcode: int, *, recursion_available: bool = True) -> Packed:
    """An answer that carries only ``rcode`` (REFUSED past a limit, SERVFAIL when answering failed)."""
    return Packed(QR | (RA if recursion_available else 0) | rcode, b"", (), ())
