"""kdns's side of talking to an upstream: the query it sends, and the checks a reply must pass
before it is used (RFC 5452: our ID, our question, a response at all)."""

from __future__ import annotations

import dnslib

from kdns.codes import HEADER_SIZE, QR, RD
from kdns.wire.query import HEADER, Options, opt_record

ONE_QUESTION = b"\x00\x01"  # QDCOUNT 1, as a reply's header bytes 4-5


class BadUpstreamAnswer(ValueError):
    """An upstream reply that must not be used: another ID or question, or not DNS at all."""


def upstream_query(
    qid: int, question: bytes, *, udp_size: int, do: bool = False, rd: bool = True, options: Options = ()
) -> bytes:
    """A query for ``question`` (wire name, type, class) with our EDNS size, the DO bit and the EDNS0
    ``options`` a ``rewrite`` made, recursive unless ``rd`` is False (a health check with CoreDNS's
    ``no_rec``)."""
    opt = opt_record(udp_size, do=do, options=options)
    return HEADER.pack(qid, RD if rd else 0, 1, 0, 0, 1) + question + opt


def read_upstream_answer(data: bytes, qid: int, question: bytes) -> dnslib.DNSRecord:
    """Parse an upstream's reply to our query ``qid`` for ``question`` (wire name, type and class)."""
    if len(data) < HEADER_SIZE + len(question) or not int.from_bytes(data[2:4]) & QR:
        raise BadUpstreamAnswer("not a DNS response")
    if int.from_bytes(data[:2]) != qid:
        raise BadUpstreamAnswer("response ID does not match the query")
    asked = data[HEADER_SIZE : HEADER_SIZE + len(question)]
    if data[4:6] != ONE_QUESTION or asked.lower() != question.lower():
        raise BadUpstreamAnswer("response is for another question")
    try:
        return dnslib.DNSRecord.parse(data)
    except Exception as exc:  # dnslib raises several types for garbage
        raise BadUpstreamAnswer(f"malformed response: {exc}") from None
