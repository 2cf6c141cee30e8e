"""A query that kdns answers later, and the one place its answer is rendered for the client.

The responder makes a ``PendingQuery`` when no packed answer of its own fits: a name upstream, an
ExternalName target to chase, a search-path miss for autopath to walk. Whatever answers it (see
``kdns.upstream.answerer``) gives back a ``Packed`` for the question, or fails; the exchange then
renders it with ``reply``, or ``error`` with an rcode, for this query's ID, flags, question, size
limit and OPT record.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdns.codes import HEADER_SIZE
from kdns.wire.packed import Packed, error_packed
from kdns.wire.query import TCP4, UDP4, Options, pack_options

DO_MARK = b"\x01"  # after a question: the client set DO, so DNSSEC records are part of the answer
OPTIONS_MARK = b"\x02"  # after a question (and DO_MARK): the EDNS0 options sent upstream follow


def forward_key(key: bytes, do: bool, options: Options = ()) -> bytes:
    """The key a forwarded answer is cached under: the lowercased question, and the DO bit, since an
    answer to a DO query carries records another client must not get; and the EDNS0 options a
    ``rewrite`` sent upstream with it, since the answer may depend on them (a client subnet: RFC 7871
    section 7.3), so it is kept for the queries that send the same ones."""
    if options:
        return key + (DO_MARK if do else b"") + OPTIONS_MARK + pack_options(options)
    return key + DO_MARK if do else key


def forwarded_question(cache_key: bytes) -> tuple[bytes, bool]:
    """The question (name, type, class) and the DO bit ``forward_key`` made ``cache_key`` of."""
    end = 0
    while cache_key[end]:
        end += cache_key[end] + 1
    end += 5  # the root label, type and class
    return cache_key[:end], cache_key[end:] == DO_MARK


@dataclass(slots=True, eq=False)
class PendingQuery:
    """What answering a query later needs."""

    data: bytes  # the query as it came
    key: bytes  # its lowercased question (name, type, class)
    qid: int
    flags: int
    end: int  # where the question ends in ``data``
    limit: int  # the largest response the client takes
    opt: bytes  # our OPT record for the response, or b""
    do: bool
    packed: Packed  # the responder's answer: a delegation, or a search-path NXDOMAIN for autopath
    recursion_available: bool
    channel: int = UDP4  # how it came (``UDP4``, ``UDP6``, ``TCP4``, ``TCP6``)
    # the forward route answering it now: 0 until a stanza with ``next`` hands it to a later one, then
    # that route's number (``kdns.upstream.routes``); ``packed.delegate`` names the first
    route: int = 0
    # the sockets' addresses, (host, port, ...) as they name them: the client's, and where it asked (the
    # exchange sets them; a ``rewrite edns0`` rule reads them)
    peer: tuple = ()
    local: tuple = ()

    @property
    def tcp(self) -> bool:
        """It came over TCP: the forwarder asks upstream over TCP too (unless ``prefer_udp``)."""
        return self.channel >= TCP4

    @property
    def question(self) -> bytes:
        """The question as the client wrote it (its letter case kept)."""
        return self.data[HEADER_SIZE : self.end]

    @property
    def upstream_name(self) -> bytes:
        """The name upstream is asked about (lowercase wire form): the one a ``rewrite`` made, else the
        ExternalName target chased, else the question's."""
        answer = self.packed.answer
        if answer is None:
            return self.key[:-4]
        if answer.asked is not None:
            return answer.asked[:-4]
        return answer.chase or self.key[:-4]

    @property
    def cache_key(self) -> bytes:
        return forward_key(self.key, self.do)

    def reply(self, packed: Packed) -> bytes:
        """The response carrying ``packed``, an answer to this question."""
        return packed.render(self.data, self.qid, self.flags, self.end, self.limit, self.opt)

    def error(self, rcode: int) -> bytes:
        """The response carrying only ``rcode``."""
        return self.reply(error_packed(rcode, recursion_available=self.recursion_available))
