"""A client's query: what answering it needs, read straight from its bytes.

``parse_query`` reads only the header, the one question and an OPT record, and says FORMERR, NOTIMP or
drop for everything a server must not answer normally; ``error_response`` is the header-only reply
to such a query. ``opt_record`` is the OPT record kdns puts in its responses (and its upstream
queries); ``query_options`` reads the EDNS0 options a client sent. ``ixfr_serial`` reads the serial an
IXFR query carries in its authority section; ``after_name`` steps over a name.
"""

from __future__ import annotations

import struct

from kdns.codes import (
    BADVERS,
    ECHOED_FLAGS,
    EDNS_DO,
    EDNS_VERSION_SHIFT,
    EXTENDED_RCODE_SHIFT,
    FORMERR,
    HEADER_SIZE,
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    NO_EDNS_UDP_SIZE,
    NOTIMP,
    OPCODE_MASK,
    OPT,
    POINTER_MARK,
    QR,
    SOA,
)

UDP4, UDP6, TCP4, TCP6 = 0, 1, 2, 3  # how a query came (a channel): the transport says

HEADER = struct.Struct("!HHHHHH")  # ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
ID_AND_FLAGS = struct.Struct("!HH")
RR_FIXED = struct.Struct("!HHIH")  # a record's type, class, TTL and RDLENGTH
QUESTION_TAIL_SIZE = 4  # a question's type and class, after its name
OPTION_HEAD = struct.Struct("!HH")  # an EDNS0 option's code and length, before its data
OPT_SIZE = 1 + RR_FIXED.size  # an OPT record without options: the root name and the fixed part
OPT_QUESTION = OPT.to_bytes(2, "big")  # a question's type bytes that ask for OPT
# Where the header's fields sit, for code that reads them without unpacking the header.
ID = slice(0, 2)
FLAGS = slice(2, 4)
COUNTS = slice(4, HEADER_SIZE)
# Where an OPT record's fields sit, from its first byte (the root name).
OPT_UDP_SIZE_AT = 3  # two bytes: the class field
OPT_VERSION_AT = 6  # the TTL's second byte
OPT_FLAGS_AT = 7  # the TTL's third byte: DO is its top bit
OPT_RDLENGTH_AT = 9


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
    if len(data) < HEADER_SIZE:
        raise Drop
    qid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & QR:
        raise Drop
    if flags & OPCODE_MASK:
        raise Malformed(NOTIMP)  # only standard queries are answered
    if qdcount != 1:
        raise Malformed(FORMERR)
    i = HEADER_SIZE
    try:
        length = data[i]
        while length:
            if length > MAX_LABEL_LENGTH:  # a compression pointer or a reserved label type
                raise Malformed(FORMERR)
            i += length + 1
            length = data[i]
    except IndexError:
        raise Malformed(FORMERR) from None
    qend = i + 1
    end = qend + QUESTION_TAIL_SIZE
    if qend - HEADER_SIZE > MAX_NAME_LENGTH or end > len(data):
        raise Malformed(FORMERR)
    if data[qend : qend + 2] == OPT_QUESTION:  # a question for OPT is meaningless (RFC 6891)
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
                if length >= POINTER_MARK:
                    i += 1
                    break
                if length > MAX_LABEL_LENGTH:
                    raise Malformed(FORMERR)
                i += length + 1
                length = data[i]
            i += 1
            rtype, rclass, ttl, rdlength = RR_FIXED.unpack_from(data, i)
            i += RR_FIXED.size + rdlength
            if rtype == OPT:
                if n < skip or found is not None or data[owner] != 0:
                    raise Malformed(FORMERR)  # RFC 6891: one OPT, in additional, owned by the root
                version = (ttl >> EDNS_VERSION_SHIFT) & 0xFF
                found = (max(rclass, NO_EDNS_UDP_SIZE), bool(ttl & EDNS_DO), version)
    except (IndexError, struct.error):
        raise Malformed(FORMERR) from None
    if i != len(data):
        raise Malformed(FORMERR)
    return found or (0, False, 0)


def ixfr_serial(data: bytes, end: int) -> int | None:
    """The serial of the SOA in the authority section of a query that ``parse_query`` accepted, its
    question ending at ``end`` (RFC 1995: an IXFR names the version the client holds); ``None`` unless
    that section holds exactly one record, a SOA."""
    _, _, _, ancount, nscount, _ = HEADER.unpack_from(data)
    if nscount != 1:
        return None
    try:
        i = end
        for _ in range(ancount):
            i = after_name(data, i)
            i += RR_FIXED.size + RR_FIXED.unpack_from(data, i)[3]
        i = after_name(data, i)
        rtype, _, _, rdlength = RR_FIXED.unpack_from(data, i)
        rdata_end = i + RR_FIXED.size + rdlength
        i = after_name(data, after_name(data, i + RR_FIXED.size))  # MNAME, RNAME
        if rtype != SOA or i + 4 > rdata_end or rdata_end > len(data):
            return None
        return int.from_bytes(data[i : i + 4])
    except (IndexError, struct.error):
        return None


def after_name(data: bytes, i: int) -> int:
    """Where the name (labels, ending in a zero or a compression pointer) starting at ``i`` ends."""
    length = data[i]
    while length:
        if length >= POINTER_MARK:
            return i + 2
        i += length + 1
        length = data[i]
    return i + 1


def error_response(data: bytes, rcode: int) -> bytes:
    """A header-only reply carrying ``rcode`` to a query we will not answer normally."""
    qid, flags = ID_AND_FLAGS.unpack_from(data)
    return HEADER.pack(qid, QR | (flags & (OPCODE_MASK | ECHOED_FLAGS)) | rcode, 0, 0, 0, 0)


def question_type(data: bytes) -> int:
    """The type of a query's first question as far as its bytes tell (a name without compression), or
    0 when they do not: for counting queries that get an error reply."""
    try:
        end = data.index(0, HEADER_SIZE) + 1
    except ValueError:
        return 0
    return int.from_bytes(data[end : end + 2]) if len(data) >= end + 2 else 0


def badvers_response(data: bytes, qid: int, flags: int, end: int, *, udp_size: int, do: bool) -> bytes:
    """RFC 6891: an unknown EDNS version gets BADVERS, with our OPT saying version 0."""
    opt = opt_record(udp_size, do=do, extended_rcode=BADVERS)
    return HEADER.pack(qid, QR | (flags & ECHOED_FLAGS), 1, 0, 0, 1) + data[HEADER_SIZE:end] + opt


Options = tuple[tuple[int, bytes], ...]  # EDNS0 options: (code, data), in order


def opt_record(udp_size: int, *, do: bool = False, extended_rcode: int = 0, options: Options = ()) -> bytes:
    """The OPT pseudo-record we echo: our UDP size, version 0, the client's DO bit; ``options`` in it."""
    ttl = (extended_rcode >> EXTENDED_RCODE_SHIFT) << 24 | (EDNS_DO if do else 0)
    rdata = pack_options(options)
    return b"\x00" + RR_FIXED.pack(OPT, udp_size, ttl, len(rdata)) + rdata


def pack_options(options: Options) -> bytes:
    """EDNS0 options as an OPT record's data carries them."""
    return b"".join(OPTION_HEAD.pack(code, len(data)) + data for code, data in options)


def with_options(opt: bytes, options: Options) -> bytes:
    """The OPT record ``opt`` (one ``opt_record`` made) carrying exactly ``options``."""
    if not opt:
        return opt
    _, udp_size, ttl, _ = RR_FIXED.unpack_from(opt, 1)
    rdata = pack_options(options)
    return b"\x00" + RR_FIXED.pack(OPT, udp_size, ttl, len(rdata)) + rdata


def query_options(data: bytes, end: int) -> Options:
    """The EDNS0 options of the OPT record of a query ``parse_query`` accepted, its question ending at
    ``end``; none without an OPT record. An option whose length runs past the record ends them."""
    _, _, _, ancount, nscount, arcount = HEADER.unpack_from(data)
    try:
        i = end
        for _ in range(ancount + nscount + arcount):
            i = after_name(data, i)
            rtype, _, _, rdlength = RR_FIXED.unpack_from(data, i)
            i += RR_FIXED.size
            if rtype == OPT:
                return _options(data[i : i + rdlength])
            i += rdlength
    except (IndexError, struct.error):
        return ()
    return ()


def _options(rdata: bytes) -> Options:
    found, i = [], 0
    while i + OPTION_HEAD.size <= len(rdata):
        code, length = OPTION_HEAD.unpack_from(rdata, i)
        i += OPTION_HEAD.size
        if i + length > len(rdata):
            break
        found.append((code, rdata[i : i + length]))
        i += length
    return tuple(found)
