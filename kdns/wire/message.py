"""Any DNS message read loosely, for the query log: its header, its first question, its OPT record and
the type of each of its records (with each RRSIG's validity window).

``query`` decides how a query is answered and refuses what it cannot use; this reads whatever is
there, a query or a response, and stops where the bytes stop making sense: a message cut short keeps
the records before the cut. Only a message shorter than a header is nothing at all.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kdns.codes import (
    EDNS_DO,
    EXTENDED_RCODE_SHIFT,
    HEADER_SIZE,
    MAX_NAME_LENGTH,
    OPCODE_MASK,
    OPCODE_SHIFT,
    OPT,
    POINTER_MARK,
    RCODE_MASK,
    RRSIG,
)
from kdns.wire.query import HEADER, QUESTION_TAIL_SIZE, RR_FIXED, after_name

QUESTION_TAIL = struct.Struct("!HH")  # a question's type and class
SIGNATURE_TIMES = struct.Struct("!II")  # an RRSIG's expiration and inception
SIGNATURE_TIMES_AT = 8  # from the start of an RRSIG's RDATA: type covered, algorithm, labels, TTL
MAX_POINTERS = 64  # compression pointers followed in one name before it counts as a loop


@dataclass(frozen=True, slots=True)
class Edns:
    """What a message's OPT record says."""

    udp_size: int  # as written, even below 512
    do: bool
    extended_rcode: int  # the rcode's upper eight bits


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    flags: int
    question: tuple[bytes, int, int] | None  # the first: its name in wire form as written, type, class
    answer: tuple[int, ...] = ()  # the types of the answer section's records
    authority: tuple[int, ...] = ()
    edns: Edns | None = None
    signatures: tuple[tuple[int, int], ...] = ()  # (inception, expiration) of every RRSIG

    @property
    def opcode(self) -> int:
        return (self.flags & OPCODE_MASK) >> OPCODE_SHIFT

    @property
    def rcode(self) -> int:
        """The whole rcode: the header's four bits and the OPT record's upper ones (RFC 6891)."""
        upper = self.edns.extended_rcode if self.edns is not None else 0
        return upper << EXTENDED_RCODE_SHIFT | (self.flags & RCODE_MASK)


def read_message(data: bytes) -> Message | None:
    """``data`` read as far as it makes sense; None when it is shorter than a header."""
    if len(data) < HEADER_SIZE:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    question = None
    sections: tuple[list[int], list[int], list[int]] = ([], [], [])
    edns = None
    signatures = []
    try:
        i = HEADER_SIZE
        for n in range(qdcount):
            name, i = read_name(data, i)
            qtype, qclass = QUESTION_TAIL.unpack_from(data, i)
            i += QUESTION_TAIL_SIZE
            if n == 0:
                question = (name, qtype, qclass)
        for section, count in zip(sections, (ancount, nscount, arcount), strict=True):
            for _ in range(count):
                i = after_name(data, i)
                rtype, rclass, ttl, rdlength = RR_FIXED.unpack_from(data, i)
                rdata = i + RR_FIXED.size
                i = rdata + rdlength
                if i > len(data):
                    raise IndexError
                if rtype == OPT:
                    edns = Edns(rclass, bool(ttl & EDNS_DO), ttl >> 24)
                    continue
                if rtype == RRSIG and rdlength >= SIGNATURE_TIMES_AT + SIGNATURE_TIMES.size:
                    expiration, inception = SIGNATURE_TIMES.unpack_from(data, rdata + SIGNATURE_TIMES_AT)
                    signatures.append((inception, expiration))
                section.append(rtype)
    except (IndexError, struct.error, ValueError):
        pass  # what came before the cut stands
    answer, authority, _ = sections
    return Message(qid, flags, question, tuple(answer), tuple(authority), edns, tuple(signatures))


def read_name(data: bytes, i: int) -> tuple[bytes, int]:
    """The name at ``i`` in wire form, its compression pointers followed, and where its bytes end;
    ValueError for a pointer loop, a reserved label type or a name longer than 255 octets."""
    out = bytearray()
    end = None
    for _ in range(MAX_POINTERS):
        length = data[i]
        while length and length < POINTER_MARK:
            if length & POINTER_MARK:  # 0x40 and 0x80: reserved label types (RFC 6891)
                raise ValueError("reserved label type")
            out += data[i : i + length + 1]
            i += length + 1
            length = data[i]
        if not length:
            out.append(0)
            if len(out) > MAX_NAME_LENGTH:
                raise ValueError("name too long")
            return bytes(out), end if end is not None else i + 1
        if end is None:
            end = i + 2
        i = ((length & ~POINTER_MARK) << 8) | data[i + 1]
    raise ValueError("compression pointer loop")
