"""Query bytes -> response bytes: the hot path shared by the UDP and TCP transports.

A query is parsed as far as its question (``parse_query``), its lowercased question is looked up in a
dict of packed answers, and the response is rendered from that entry. Only a miss reaches the
resolver and dnslib. The zone tells the responder which names changed; the entries that depend on
them are dropped, so an answer is packed again on its next query, not on every change.

Questions for upstream are answered from the forward cache (a lookup the responder is given) when it
holds them, else handed back as a ``PendingQuery`` for the exchange to have answered later; so are
search-path misses of pods when autopath is on. Each entry counts its queries by channel, which is
all the metrics need from the hot path.

Zone transfers (AXFR, IXFR) are never packed answers when a server block has ``transfer``: who asks
and how decide the answer, so each one is answered afresh, and a transfer comes back as a
``ZoneTransfer`` for the exchange to stream over TCP. Since they are never kept, they never reach
the fast path, and a question the cache holds is never one.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from kdns.codes import (
    AAAA,
    AXFR,
    BADVERS,
    CD,
    EDNS_DO,
    HEADER_SIZE,
    IXFR,
    NO_EDNS_UDP_SIZE,
    NOERROR,
    NXDOMAIN,
    OPT,
    RCODE_MASK,
    RD,
    TCP_MAX_SIZE,
    A,
)
from kdns.counting import Sizes
from kdns.plugins.transfer import Transfer, ZoneTransfer
from kdns.resolver import DROPPED, Answer
from kdns.wire.packed import DO_HITS, EDNS_HITS, NOT_FAST, Packed, error_packed, pack
from kdns.wire.pending import PendingQuery, forward_key
from kdns.wire.query import (
    COUNTS,
    ID,
    OPT_FLAGS_AT,
    OPT_RDLENGTH_AT,
    OPT_SIZE,
    OPT_UDP_SIZE_AT,
    OPT_VERSION_AT,
    TCP4,
    UDP4,
    Drop,
    Malformed,
    badvers_response,
    error_response,
    ixfr_serial,
    opt_record,
    parse_query,
    question_type,
)
from kdns.zone.names import ZoneLayout, labels_of

log = logging.getLogger(__name__)
PLAIN_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # one question, no records
EDNS_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x01"  # one question, one additional record
ROOT_OPT = b"\x00" + OPT.to_bytes(2, "big")  # owner ".", type OPT
NO_OPTIONS = b"\x00\x00"  # an OPT's RDLENGTH when it carries no options
RD_ONLY = RD >> 8  # the flags' first byte of a standard query with RD set
DO_BYTE = EDNS_DO >> 8  # the DO flag in its byte of the OPT's flags
CD_BYTE = CD  # the CD flag in the flags' second byte
ForwardCache = Callable[[bytes], Packed | None]  # a forwarded answer still fresh, by ``forward_key``
Transfers = Callable[[bytes], Transfer | None]  # the ``transfer`` of the block a name falls in
TRANSFER_QTYPES = (AXFR.to_bytes(2, "big"), IXFR.to_bytes(2, "big"))  # as a question's type bytes


class Answers(Protocol):
    """What answers the questions the responder has no packed answer for (a server's blocks)."""

    layout: ZoneLayout  # the cluster's zones

    def resolve(self, qname: bytes, qtype: int, qclass: int) -> Answer: ...


MAX_ROTATIONS = 8
EVICTION_SCAN = 16  # answers looked at, at most, to find one to forget


def rotations(answer: Answer) -> list[Answer]:
    """The answer with its A and AAAA records rotated (CoreDNS's loadbalance, round robin): up to
    ``MAX_ROTATIONS`` variants besides the answer itself."""
    longest = max((len(r.rdatas) for r in answer.answer if r.rtype in (A, AAAA)), default=0)
    if longest < 2:
        return []
    count = min(longest, MAX_ROTATIONS)
    turned = []
    for turn in range(1, count):
        rrsets = tuple(
            dataclasses.replace(r, rdatas=r.rdatas[shift:] + r.rdatas[:shift])
            if r.rtype in (A, AAAA) and (shift := turn * len(r.rdatas) // count % len(r.rdatas))
            else r
            for r in answer.answer
        )
        turned.append(dataclasses.replace(answer, answer=rrsets))
    return turned


class SearchPaths(Protocol):
    """Autopath, as the responder sees it: whose search path a client walks, and walks done before."""

    def namespace_of(self, client: str) -> str | None: ...

    def cached(self, key: bytes) -> Packed | None: ...


class Responder:
    def __init__(
        self,
        resolver: Answers,
        *,
        max_udp_size: int,
        cache_size: int,
        recursion_available: bool = False,
        forward_caches: Sequence[ForwardCache | None] = (),
        loadbalance: bool = False,
        transfers: Transfers | None = None,
    ) -> None:
        self.resolver = resolver
        self.max_udp_size = max_udp_size
        self.cache_size = cache_size
        self.recursion_available = recursion_available
        # by forward route (``Packed.delegate``, from 1): its cache's lookup, or None
        self.forward_caches = (None, *forward_caches)
        self.loadbalance = loadbalance
        self.transfers = transfers  # None: no block has ``transfer``, transfers are refused as packed answers
        self._autopath: SearchPaths | None = None
        self._turn = 0
        # in the order answers were made or last kept by eviction: an OrderedDict, whose first key is
        # found at once (a dict's first key is found past every key deleted before it)
        self._cache: OrderedDict[bytes, Packed] = OrderedDict()
        self.dropped = 0
        # error replies (FORMERR, NOTIMP, BADVERS) by (channel, qtype, rcode); qtype 0 when unreadable
        self.errors: Counter[tuple[int, int, int]] = Counter()
        # by channel: the sizes of queries and responses the packed answers' hits do not tell (errors,
        # transfers, forwarded answers) and of the forgotten answers' hits; and the DO queries of these
        self.sizes = [Sizes() for _ in range(4)]
        self.retired_do = [0, 0, 0, 0]
        self.forwarded_rcodes = [0] * 16  # forwarded answers served from the cache, by rcode
        self.retired: Counter[tuple[int, int, int]] = (
            Counter()
        )  # (channel, qtype, rcode) of forgotten answers
        self._keys_by_name: dict[bytes, bytes | set[bytes]] = {}  # a name -> the answers that use it
        self._opts = (opt_record(max_udp_size), opt_record(max_udp_size, do=True))  # by the DO bit

    def respond(
        self, data: bytes, channel: int = UDP4, client: tuple | None = None
    ) -> bytes | PendingQuery | ZoneTransfer | None:
        """The response to one query; ``None`` when it must be dropped; a ``PendingQuery`` when it is
        answered later, a ``ZoneTransfer`` (over TCP only) when it is answered by a series of
        messages (the transport hands either to its exchange).

        ``channel`` says how the query came (``UDP4``, ``UDP6``, ``TCP4``, ``TCP6``): it sets the
        size limit, and each answer counts its queries by channel for the metrics. ``client`` is the
        socket address it came from, for the answers that depend on who asks.

        Most queries take the fast path: one question, RD set and CD clear, no records or only an
        option-less EDNS(0) OPT, and an answer already packed that fits. The name is not walked label
        by label: the question's bytes up to the first zero form the key, and only a validated
        question's key is ever in the cache, so a hit proves the question well formed."""
        try:
            qend = data.index(0, HEADER_SIZE) + 1
        except ValueError:
            return self._respond(data, channel, client)
        if data[2] == RD_ONLY and not data[3] & CD_BYTE:
            end = qend + 4
            tail = len(data) - end
            if tail == 0 and data[COUNTS] == PLAIN_COUNTS:
                packed = self._cache.get(key := data[HEADER_SIZE:qend].lower() + data[qend:end])
                if packed is not None:
                    if end + packed.fast_size <= NO_EDNS_UDP_SIZE:
                        packed.hits[channel] += 1
                        return data[ID] + packed.head + data[HEADER_SIZE:end] + packed.body
                    if packed.delegate and packed.autopath is None and packed.gate is None:
                        limit = TCP_MAX_SIZE if channel >= TCP4 else NO_EDNS_UDP_SIZE
                        qid = int.from_bytes(data[ID])
                        cached = self._from_forward_cache(
                            packed, key, data, qid, RD, end, limit, b"", channel
                        )
                        if cached is not None:
                            packed.hits[channel] += 1
                            return cached
                    elif end + packed.zone_fast_size <= NO_EDNS_UDP_SIZE:  # the zone in the query's case
                        packed.hits[channel] += 1
                        zone = data[qend - packed.zone_size : qend]
                        return data[ID] + packed.head + data[HEADER_SIZE:end] + zone.join(packed.zone_parts)
            elif (
                tail == OPT_SIZE
                and data[COUNTS] == EDNS_COUNTS
                and data[end : end + 3] == ROOT_OPT
                and not data[end + OPT_VERSION_AT]  # EDNS version 0
                and data[end + OPT_RDLENGTH_AT :] == NO_OPTIONS
            ):
                packed = self._cache.get(key := data[HEADER_SIZE:qend].lower() + data[qend:end])
                if packed is not None:
                    do = data[end + OPT_FLAGS_AT] >= DO_BYTE
                    need = end + packed.fast_size + OPT_SIZE
                    if need <= NO_EDNS_UDP_SIZE or (
                        need < NOT_FAST and need <= self._edns_limit(data, end, channel)
                    ):
                        packed.hits[channel | EDNS_HITS << do] += 1
                        return (
                            data[ID] + packed.head_edns + data[HEADER_SIZE:end] + packed.body + self._opts[do]
                        )
                    # DO clear: the forward cache keeps answers to DO queries apart
                    if packed.delegate and packed.autopath is None and packed.gate is None and not do:
                        limit = self._edns_limit(data, end, channel)
                        qid, opt = int.from_bytes(data[ID]), self._opts[0]
                        cached = self._from_forward_cache(
                            packed, key, data, qid, RD, end, limit, opt, channel
                        )
                        if cached is not None:
                            packed.hits[channel | EDNS_HITS] += 1
                            return cached
                    elif (need := end + packed.zone_fast_size + OPT_SIZE) <= NO_EDNS_UDP_SIZE or (
                        need < NOT_FAST and need <= self._edns_limit(data, end, channel)
                    ):  # the question's zone copied into the body in the query's case
                        packed.hits[channel | EDNS_HITS << do] += 1
                        return (
                            data[ID]
                            + packed.head_edns
                            + data[HEADER_SIZE:end]
                            + data[qend - packed.zone_size : qend].join(packed.zone_parts)
                            + self._opts[do]
                        )
        return self._respond(data, channel, client)

    def _from_forward_cache(  # noqa: PLR0917 (hot path)
        self,
        packed: Packed,
        cache_key: bytes,
        data: bytes,
        qid: int,
        flags: int,
        end: int,
        limit: int,
        opt: bytes,
        channel: int,
        do: bool = False,
    ) -> bytes | None:
        """The response to a query for a name upstream from its route's forward cache (or the answer
        held beside ``packed``, for a query with DO clear), or ``None``."""
        held = packed.held
        cached = held.fresh() if held is not None and not do else None
        if cached is None:
            lookup = self.forward_caches[packed.delegate]
            if lookup is None:
                return None
            cached = lookup(cache_key)
            if cached is None:
                return None
        self.forwarded_rcodes[cached.flags & RCODE_MASK] += 1
        response = cached.render(data, qid, flags, end, limit, opt)
        self.sizes[channel].responses.observe(len(response))
        return response

    def _edns_limit(self, data: bytes, end: int, channel: int) -> int:
        """The largest response to the EDNS query ``data`` whose OPT record starts at ``end``."""
        if channel >= TCP4:
            return TCP_MAX_SIZE
        at = end + OPT_UDP_SIZE_AT
        return min(max(data[at] << 8 | data[at + 1], NO_EDNS_UDP_SIZE), self.max_udp_size)

    def _respond(
        self, data: bytes, channel: int, client: tuple | None
    ) -> bytes | PendingQuery | ZoneTransfer | None:
        """``respond`` for any query: parsed in full, answered from the cache or the resolver."""
        tcp = channel >= TCP4
        try:
            qid, flags, qend, end, edns_size, edns_do, edns_version = parse_query(data)
        except Drop:
            self.dropped += 1
            return None
        except Malformed as exc:
            return self._error(data, channel, exc.rcode, error_response(data, exc.rcode))
        if edns_size:
            opt = self._opts[edns_do]
            if edns_version:
                response = badvers_response(data, qid, flags, end, udp_size=self.max_udp_size, do=edns_do)
                return self._error(data, channel, BADVERS, response)
            limit = TCP_MAX_SIZE if tcp else min(edns_size, self.max_udp_size)
        else:
            opt = b""
            limit = TCP_MAX_SIZE if tcp else NO_EDNS_UDP_SIZE
        key = data[HEADER_SIZE:end].lower()
        if key[-4:] != data[end - 4 : end]:  # lower() also changed a qtype or qclass byte
            key = key[:-4] + data[end - 4 : end]
        packed = self._cache.get(key)
        if packed is None:
            if self.transfers is not None and key[-4:-2] in TRANSFER_QTYPES:
                qlen = qend - HEADER_SIZE
                ip = client[0] if client is not None else None
                return self._transfer(data, key, qlen, qid, flags, end, limit, opt, channel, ip)
            packed = self._miss(key, qend - HEADER_SIZE)
        packed.hits[channel | (EDNS_HITS << edns_do if edns_size else 0)] += 1
        if packed.variants is not None:  # loadbalance: each answer starts at the next address
            self._turn += 1
            packed = packed.variants[self._turn % len(packed.variants)]
        if packed.gate is not None and client is not None:  # acl, whoami: an answer for this client
            gated = packed.gate(client, channel)
            if gated is DROPPED:
                self.dropped += 1
                return None
            if gated is not None:
                qname = key[: qend - HEADER_SIZE]
                zone = self.resolver.layout.zone_of(qname)
                made = pack(gated, qname, key[-4:], recursion_available=self.recursion_available, zone=zone)
                return made.render(data, qid, flags, end, limit, opt)
        if packed.autopath is not None and self._autopath is not None and client is not None:
            if self._autopath.namespace_of(client[0]) == packed.autopath:
                cached = self._autopath.cached(key)
                if cached is not None:
                    return cached.render(data, qid, flags, end, limit, opt)
                return self._pending(data, key, qid, flags, end, limit, opt, edns_do, packed, channel)
        elif packed.delegate:  # forwarded, or an ExternalName's target chased
            # unless a rewrite's edns0 rules make the options sent upstream of the client's own: then
            # the forwarder works them out and looks in the cache under them
            if packed.answer is None or not packed.answer.edns0:
                cached = self._from_forward_cache(
                    packed, forward_key(key, edns_do), data, qid, flags, end, limit, opt, channel, edns_do
                )
                if cached is not None:
                    return cached
            return self._pending(data, key, qid, flags, end, limit, opt, edns_do, packed, channel)
        return packed.render(data, qid, flags, end, limit, opt)

    def _error(self, data: bytes, channel: int, rcode: int, response: bytes) -> bytes:
        """Count the error reply ``response`` to ``data`` and return it."""
        self.errors[(channel, question_type(data), rcode)] += 1
        self.sizes[channel].observe(len(data), len(response))
        return response

    def _transfer(  # noqa: PLR0917 (the fields of the query, as parsed)
        self,
        data: bytes,
        key: bytes,
        qlen: int,
        qid: int,
        flags: int,
        end: int,
        limit: int,
        opt: bytes,
        channel: int,
        client: str | None,
    ) -> bytes | ZoneTransfer:
        """An AXFR or IXFR, answered for this client: by its block's ``transfer``, or else by its
        other plugins (an answer used once, not kept)."""
        qname = key[:qlen]
        qtype, qclass = int.from_bytes(key[qlen : qlen + 2]), int.from_bytes(key[qlen + 2 :])
        transfer = self.transfers(qname)
        outcome = None
        if transfer is not None:
            serial = ixfr_serial(data, end) if qtype == IXFR else None
            outcome = transfer.answer(qname, qtype, qclass, tcp=channel >= TCP4, client=client, serial=serial)
        if outcome is None:  # the block's other plugins answer
            answer = self.resolver.resolve(qname, qtype, qclass)
            packed = pack(answer, qname, key[qlen:], recursion_available=self.recursion_available)
        elif type(outcome) is int:
            packed = error_packed(outcome, recursion_available=self.recursion_available)
        else:  # the records to send (their sizes are the stream's, not counted)
            self.retired[(channel, qtype, NOERROR)] += 1
            self.sizes[channel].requests.observe(len(data))
            return ZoneTransfer(data, qid, flags, end, opt, qname, outcome, self.recursion_available)
        self.retired[(channel, qtype, packed.flags & RCODE_MASK)] += 1
        response = packed.render(data, qid, flags, end, limit, opt)
        self.sizes[channel].observe(len(data), len(response))
        return response

    def _pending(  # noqa: PLR0917 (the fields of the query, as parsed)
        self,
        data: bytes,
        key: bytes,
        qid: int,
        flags: int,
        end: int,
        limit: int,
        opt: bytes,
        do: bool,
        packed: Packed,
        channel: int,
    ) -> PendingQuery:
        return PendingQuery(
            data,
            key,
            qid,
            flags,
            end,
            limit,
            opt,
            do,
            packed,
            self.recursion_available,
            channel,
        )

    @property
    def autopath(self) -> SearchPaths | None:
        """Server-side search paths, when on: NXDOMAIN answers below ``<ns>.svc`` then depend on
        who asks."""
        return self._autopath

    @autopath.setter
    def autopath(self, autopath: SearchPaths | None) -> None:
        self._autopath = autopath
        self.clear()  # answers packed before were marked for the fast path without knowing

    def invalidate(self, names: set[bytes]) -> None:
        """Forget the answers that depend on any of ``names`` (the zone calls this on change)."""
        for name in names:
            keys = self._keys_by_name.pop(name, ())
            for key in (keys,) if type(keys) is bytes else keys:
                self._forget(key)

    def clear(self) -> None:
        for key in list(self._cache):
            self._forget(key)

    def __len__(self) -> int:
        return len(self._cache)

    def _miss(self, key: bytes, qlen: int) -> Packed:
        qname = key[:qlen]
        qtype, qclass = int.from_bytes(key[qlen : qlen + 2]), int.from_bytes(key[qlen + 2 :])
        answer = self.resolver.resolve(qname, qtype, qclass)
        zone = self.resolver.layout.zone_of(qname)
        packed = pack(answer, qname, key[qlen:], recursion_available=self.recursion_available, zone=zone)
        if answer.rcode == NXDOMAIN:
            packed.autopath = self._search_namespace(qname)
        if self.loadbalance:
            rotated = rotations(answer)
            if rotated:
                packed.variants = (
                    packed,
                    *(
                        pack(
                            turned, qname, key[qlen:], recursion_available=self.recursion_available, zone=zone
                        )
                        for turned in rotated
                    ),
                )
        packed.gate = answer.gate
        if (
            packed.variants is not None
            or packed.gate is not None
            or (packed.autopath is not None and self._autopath is not None)
        ):
            # the full path picks a variant or searches for the client
            packed.fast_size = packed.zone_fast_size = NOT_FAST
        if len(self._cache) >= self.cache_size:
            self._evict()
        packed.seen = 1  # the query that made it
        self._cache[key] = packed
        for name in packed.depends:
            keys = self._keys_by_name.setdefault(name, key)
            if keys is not key:  # a second answer depends on the name: from one key to a set
                if type(keys) is bytes:
                    self._keys_by_name[name] = keys = {keys}
                keys.add(key)
        return packed

    def _evict(self) -> None:
        """Make room for one answer (CLOCK): the oldest one not asked for again since the cache last
        looked at it goes; the ones still asked for move to the back. A flood of random names then
        displaces its own answers, not the ones pods keep asking for."""
        cache = self._cache
        for _ in range(EVICTION_SCAN):
            key = next(iter(cache))
            packed = cache[key]
            asked = sum(packed.hits)
            if asked <= packed.seen:
                break
            packed.seen = asked
            cache.move_to_end(key)
        else:
            key = next(iter(cache))
        self._forget(key)

    def _search_namespace(self, qname: bytes) -> str | None:
        """``ns`` when ``qname`` is ``<something>.<ns>.svc.<zone>`` (where a search path starts)."""
        zone = self.resolver.layout.zone_of(qname)
        if zone is None or zone not in self.resolver.layout.forward:
            return None
        labels = labels_of(qname[: len(qname) - len(zone)] + b"\x00")
        if len(labels) >= 3 and labels[-1] == b"svc":
            return labels[-2].decode("ascii", "replace")
        return None

    def query_counts(self) -> Counter[tuple[int, int, int]]:
        """Queries answered so far by (channel, qtype, rcode); rcode -1 for those sent upstream."""
        counts = Counter(self.retired)
        for key, packed in list(self._cache.items()):
            qtype, rcode = int.from_bytes(key[-4:-2]), -1 if packed.delegate else packed.flags & RCODE_MASK
            for slot, hits in enumerate(packed.hits):
                if hits:
                    counts[(slot & 3, qtype, rcode)] += hits
        return counts

    def size_counts(self) -> tuple[list[Sizes], list[int]]:
        """By channel: the sizes of queries and responses so far, and the queries with the DO bit."""
        sizes = [Sizes() for _ in range(4)]
        do = list(self.retired_do)
        for mine, theirs in zip(sizes, self.sizes, strict=True):
            mine.merge(theirs)
        for key, packed in list(self._cache.items()):
            _tally(key, packed, sizes, do)
        return sizes, do

    def _forget(self, key: bytes) -> None:
        packed = self._cache.pop(key, None)
        if packed is None:
            return
        qtype, rcode = int.from_bytes(key[-4:-2]), -1 if packed.delegate else packed.flags & RCODE_MASK
        for slot, hits in enumerate(packed.hits):
            if hits:
                self.retired[(slot & 3, qtype, rcode)] += hits
        _tally(key, packed, self.sizes, self.retired_do)
        for name in packed.depends:
            keys = self._keys_by_name.get(name)
            if keys == key:
                del self._keys_by_name[name]
            elif type(keys) is set:
                keys.discard(key)
                if not keys:
                    del self._keys_by_name[name]


def _tally(key: bytes, packed: Packed, sizes: list[Sizes], do: list[int]) -> None:
    """Add the queries ``packed`` answered to ``sizes`` and ``do`` (by channel): each query's size is
    its question's plus the header (plus an option-less OPT record), each response's that plus the
    body (a forwarded answer's responses are counted as they are sent)."""
    request = HEADER_SIZE + len(key)
    response = 0 if packed.delegate else request + len(packed.body)
    for slot, hits in enumerate(packed.hits):
        if hits:
            extra = OPT_SIZE if slot >= EDNS_HITS else 0
            channel = slot & 3
            sizes[channel].requests.observe(request + extra, hits)
            if response:
                sizes[channel].responses.observe(response + extra, hits)
            if slot >= DO_HITS:
                do[channel] += hits
