"""Forwarding to upstream resolvers (CoreDNS's ``forward``).

- A query goes upstream the way it came, as CoreDNS sends it: over TCP when the client asked over
  TCP, over UDP otherwise; ``prefer_udp`` asks over UDP whatever the client used, ``force_tcp`` over
  TCP always (it wins over ``prefer_udp``). A UDP answer with TC set is asked again over TCP.
  ``tls://`` upstreams are asked over TLS only (RFC 7858), verified as ``kdns.upstream.tls`` says.
- Every upstream query has a fresh random ID; over UDP it has its own socket (a random source
  port), over TCP and TLS it takes a connection kept open from an earlier query, one query at a
  time, each closed after ``expire`` seconds unused (``kdns.upstream.connections``). A reply is used
  only if its ID and question match; anything else is ignored (RFC 5452).
- Identical questions in flight share one upstream query; at most ``max_concurrent`` are in flight,
  beyond that the client gets REFUSED at once, as CoreDNS answers.
- Upstreams are ordered by ``policy`` for each query: ``random`` shuffles them, ``round_robin``
  puts the next one first (the rest follow in their written order), ``sequential`` keeps the written
  order. A failed try moves on to the next one; so does an answer whose rcode is in
  ``failover_rcodes``, unless it came from the last one, when it is the answer (as is the last such
  answer when the upstreams after it all fail).
- An upstream that fails ``max_fails`` times in a row is down until a health check gets a reply
  (``health_check_domain IN NS``, RD set unless ``health_check_rd`` is off, every ``health_check``
  seconds, over UDP, TCP with ``force_tcp``, or TLS); down upstreams are tried last, or, with
  ``failfast_all_unhealthy_upstreams``, not at all when every one is down (SERVFAIL at once).
  ``max_fails`` 0: no upstream is ever down, and none is health-checked.
- Names in ``except_names`` (and below them) are not forwarded, and answers whose rcode is in
  ``next_rcodes`` are not this forwarder's to give: CoreDNS hands such queries to the next plugin.
  ``forward`` is the forwarder as one plugin among others: it raises ``PassToNext`` for both, and
  the caller asks its next plugin (``kdns.upstream.routes`` hands the query to the block's next
  forward stanza). ``answer`` is the forwarder as the last plugin (its block's last stanza): with no
  next plugin, an excepted name is SERVFAIL and ``next_rcodes`` are ignored, as in CoreDNS. An answer
  passed on is not cached: the answer the client gets, and the cache keeps, is the next plugin's.
- TTLs with the top bit set are read as 0 (RFC 2181 section 8). Answers go into the response cache,
  which also caps the TTLs of the first answer; when every upstream fails, a stale cached answer
  (with ``serve_stale``) or SERVFAIL goes back. The cache has the forwarder ask again, in the
  background, for entries it refreshes (``prefetch``, ``serve_stale immediate``): a bounded number at
  once, each a query in flight, sharing an identical question's upstream query.
- ``check_loop`` is CoreDNS's ``loop``: a query for a random name sent upstream must not come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import random
import secrets
import ssl
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import dnslib

from kdns.codes import HINFO, IN, MAX_TTL, NOERROR, NS, RCODE_MASK, REFUSED, SERVFAIL
from kdns.config import (
    MAX_BACKGROUND_REFRESHES,
    ForwardPolicy,
    ForwardSettings,
    UpstreamAddress,
    UpstreamProtocol,
)
from kdns.counting import Histogram
from kdns.plugins.rewrite import Client, edns0_options, revert_record
from kdns.upstream.cache import ResponseCache
from kdns.upstream.connections import ConnectionPool
from kdns.upstream.tls import client_context
from kdns.wire.packed import Packed, error_packed, pack_records
from kdns.wire.pending import PendingQuery, forward_key, forwarded_question
from kdns.wire.query import Options, query_options, with_options
from kdns.wire.records import to_records
from kdns.wire.upstream import BadUpstreamAnswer, read_upstream_answer, upstream_query
from kdns.zone.names import to_text, to_wire

log = logging.getLogger(__name__)
QUESTION_TAIL = struct.Struct("!HH")  # a question's type and class
EXCHANGE_ERRORS = (TimeoutError, OSError, BadUpstreamAnswer, EOFError, asyncio.IncompleteReadError)
Clock = Callable[[], float]


def _sane_ttls(record: dnslib.DNSRecord) -> dnslib.DNSRecord:
    """``record`` with every TTL above ``MAX_TTL`` (a negative one, to a signed reader) set to 0."""
    for rr in (*record.rr, *record.auth, *record.ar):
        if rr.ttl > MAX_TTL:
            rr.ttl = 0
    return record


def _reason(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__


def _describe(question: bytes) -> tuple[str, str]:
    name = to_text(question[:-4])
    return name, str(dnslib.QTYPE.get(int.from_bytes(question[-4:-2]), "?"))


class LoopDetected(Exception):
    """Queries sent upstream come back to this server."""


class PassToNext(Exception):
    """The query goes to the next plugin (CoreDNS's forward ``except`` and ``next``): raised by
    ``Forwarder.forward`` for an excepted name (``packed`` None) or an upstream answer whose rcode is
    in ``next_rcodes`` (``packed`` that answer, for a caller that has no next plugin after all)."""

    def __init__(self, reason: str, packed: Packed | None = None) -> None:
        super().__init__(reason)
        self.packed = packed


@dataclass(eq=False)
class Upstream:
    """One upstream resolver: where it is, its connections kept open, and its health."""

    host: str
    port: int
    streams: ConnectionPool  # TCP connections, or TLS ones for a tls:// upstream
    tls: bool = False  # asked over TLS only
    fails: int = 0
    checking: bool = False

    @property
    def label(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class ForwardStats:
    requests: Counter = field(default_factory=Counter)  # by upstream label
    durations: dict[tuple[str, int], Histogram] = field(default_factory=dict)  # by (upstream, rcode)
    health_failures: Counter = field(default_factory=Counter)  # by upstream label
    all_down: int = 0  # queries that found every upstream down
    rejected: int = 0  # past max_concurrent
    passed_on: int = 0  # queries handed to the next plugin (except, next)
    answered: list[int] = field(default_factory=lambda: [0] * 16)  # answers to clients by rcode

    def observe(self, upstream: str, rcode: int, seconds: float) -> None:
        histogram = self.durations.get((upstream, rcode))
        if histogram is None:
            histogram = self.durations[(upstream, rcode)] = Histogram()
        histogram.observe(seconds)


class _Exchange(asyncio.DatagramProtocol):
    """One UDP query on its own socket: the first reply that matches it completes ``done``."""

    def __init__(self, qid: int, question: bytes, done: asyncio.Future) -> None:
        self.qid, self.question, self.done = qid, question, done

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self.done.done():
            return
        try:
            self.done.set_result(read_upstream_answer(data, self.qid, self.question))
        except BadUpstreamAnswer as exc:
            log.debug("ignored a reply from %s: %s", addr[0], exc)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class Consolidated:
    """One kind of error line at most once per ``every`` seconds (CoreDNS's ``errors { consolidate }``):
    a flood of failing queries costs a line per interval, each saying how many were held back."""

    def __init__(self, every: float = 10.0, *, clock: Clock = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._logged_at = -every
        self._held = 0

    def error(self, message: str, *args: object) -> None:
        now = self.clock()
        if now - self._logged_at < self.every:
            self._held += 1
            return
        if self._held:
            message += f"; {self._held} more like it in the last {now - self._logged_at:.0f} s"
        log.error(message, *args)
        self._logged_at, self._held = now, 0


class Forwarder:
    """Answers pending queries from the upstreams (an ``Answerer``), and looks names up for others."""

    def __init__(
        self,
        settings: ForwardSettings,
        upstreams: Sequence[UpstreamAddress],
        *,
        udp_size: int,
        cache: ResponseCache | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """ValueError when the TLS files of ``settings`` cannot be used, or its health check domain is
        not a domain name."""
        self.settings = settings
        tls = any(u.protocol == UpstreamProtocol.TLS for u in upstreams)
        context = client_context(settings) if tls else None
        self.upstreams = [self._upstream(address, context) for address in upstreams]
        self._health_question = to_wire(settings.health_check_domain) + QUESTION_TAIL.pack(NS, IN)
        self.cache = cache
        self.udp_size = udp_size
        self.clock = clock
        self.stats = ForwardStats()
        self._unanswered = Consolidated(clock=clock)  # "no upstream answered" lines
        self.inflight = 0
        self._pending: dict[tuple[bytes, bool, bool], asyncio.Future] = {}
        self._tasks: set[asyncio.Future] = set()
        self._rotation = itertools.cycle(range(len(self.upstreams)))
        self._probe: bytes | None = None
        self.loop_hits = 0
        self.refreshing = 0  # background refreshes of cached answers in flight
        if cache is not None:
            cache.refresher = self._refresh

    def _upstream(self, address: UpstreamAddress, context: ssl.SSLContext | None) -> Upstream:
        tls = address.protocol == UpstreamProtocol.TLS
        streams = ConnectionPool(
            address.host,
            address.port,
            expire=self.settings.expire,
            tls=context if tls else None,
            server_name=self.settings.tls_servername,
        )
        return Upstream(address.host, address.port, streams, tls=tls)

    def close(self) -> None:
        """Stop health-checking and close the connections kept open to the upstreams (the forwarder
        is no longer used: a reload replaced it, or kdns stops)."""
        for task in list(self._tasks):
            task.cancel()
        for upstream in self.upstreams:
            upstream.streams.close()

    # -- answering clients ---------------------------------------------------------------------------
    def admits(self, query: PendingQuery) -> bool:
        """``False``, counted as a REFUSED answer, when ``max_concurrent`` queries are in flight."""
        if self.inflight < self.settings.max_concurrent or query.key == self._probe:
            return True
        self.stats.rejected += 1
        self.stats.answered[REFUSED] += 1
        return False

    async def answer(self, query: PendingQuery) -> Packed:
        """The answer to a pending query, this forwarder being the last plugin: the cache or the
        upstreams', after the resolver's CNAMEs when an ExternalName's target is chased. An excepted
        name is SERVFAIL (no next plugin to take it); ``next_rcodes`` do not apply."""
        return await self._answer(query, pass_on=False)

    async def forward(self, query: PendingQuery) -> Packed:
        """``answer``, for a forwarder that has a next plugin: raises ``PassToNext`` for a name in
        ``except_names`` and for an upstream answer whose rcode is in ``next_rcodes``."""
        return await self._answer(query, pass_on=True)

    async def _answer(self, query: PendingQuery, *, pass_on: bool) -> Packed:
        if query.key == self._probe:
            self.loop_hits += 1
            return error_packed(SERVFAIL)
        chase, prefix = query.packed.answer.chase, query.packed.answer.answer
        if self.settings.except_names and not self.settings.forwards(to_text(query.upstream_name)):
            if pass_on:
                self.stats.passed_on += 1
                raise PassToNext("the name is excepted from forwarding")
            self.stats.answered[SERVFAIL] += 1
            return error_packed(SERVFAIL)
        if self.inflight >= self.settings.max_concurrent:  # admitted, then overtaken by others
            self.stats.rejected += 1
            self.stats.answered[REFUSED] += 1
            return error_packed(REFUSED)
        self.inflight += 1
        try:
            if query.packed.answer.asked is not None:  # rewritten: ask that, map the answer back
                packed = await self._rewritten(query, pass_on=pass_on)
            elif chase is None:  # the responder found no fresh answer in the cache
                packed = await self.lookup(
                    query.key, query.question, do=query.do, tcp=query.tcp, cache_checked=True, pass_on=pass_on
                )
            else:  # an ExternalName outside the zones: our CNAMEs, then the target's answer
                record = await self._target(chase + query.key[-4:], do=query.do, tcp=query.tcp)
                passed = pass_on and record is not None and record.header.rcode in self.settings.next_rcodes
                packed = self._chased(query, prefix, record, cache=not passed)
                if passed:
                    raise PassToNext(f"the upstream answered {dnslib.RCODE.get(record.header.rcode)}", packed)
        except PassToNext:
            self.stats.passed_on += 1
            raise
        finally:
            self.inflight -= 1
        self.stats.answered[packed.flags & RCODE_MASK] += 1
        return packed

    async def lookup(
        self,
        key: bytes,
        question: bytes,
        *,
        do: bool = False,
        tcp: bool = False,
        keep_record: bool = False,
        cache_checked: bool = False,
        pass_on: bool = False,
        options: Options = (),
    ) -> Packed | dnslib.DNSRecord | None:
        """The answer to ``question`` (wire name, type, class) from the cache or the upstreams.

        With ``keep_record`` the parsed upstream record comes back instead (or ``None`` on failure);
        ``cache_checked`` says the caller has just missed in the cache (a miss is counted once);
        ``tcp`` says the client asked over TCP. Identical questions in flight share one upstream
        query, however each came: the answer is the same (a truncated one is asked again over TCP).
        With ``pass_on``, an answer whose rcode is in ``next_rcodes`` raises ``PassToNext`` (uncached).
        ``options``: the EDNS0 options a rewrite sends with the question (part of the cache key)."""
        cache_key = forward_key(key, do, options)
        if not keep_record and not cache_checked and self.cache is not None:
            cached = self.cache.get(cache_key)
            if cached is not None:
                return cached
        # a record, an answer, or an answer that may be passed on: three kinds of result for one question
        pending = (cache_key, keep_record, pass_on and not keep_record)
        waiting = self._pending.get(pending)
        if waiting is None:
            waiting = asyncio.ensure_future(
                self._resolve(cache_key, key, question, do, tcp, *pending[1:], options=options)
            )
            self._pending[pending] = waiting
            waiting.add_done_callback(lambda _: self._pending.pop(pending, None))
        return await asyncio.shield(waiting)

    async def _resolve(  # noqa: PLR0917 (lookup's arguments, passed on)
        self,
        cache_key: bytes,
        key: bytes,
        question: bytes,
        do: bool,
        tcp: bool,
        keep_record: bool,
        pass_on: bool,
        *,
        options: Options = (),
    ) -> Packed | dnslib.DNSRecord | None:
        record = await self.query(question, do=do, tcp=tcp, options=options)
        if keep_record:
            return record
        qname, qtype_class = key[:-4], key[-4:]
        if record is None:
            stale = self.cache.stale(cache_key) if self.cache is not None else None
            return stale or pack_records(SERVFAIL, ([], [], []), qname, qtype_class)
        rcode = record.header.rcode
        packed = pack_records(rcode, (record.rr, record.auth, record.ar), qname, qtype_class)
        if pass_on and rcode in self.settings.next_rcodes:
            raise PassToNext(f"the upstream answered {dnslib.RCODE.get(rcode)}", packed)
        if self.cache is not None and not record.header.tc:
            return self.cache.put(cache_key, packed, record, refreshable=True)
        return packed

    def _refresh(self, cache_key: bytes) -> bool:
        """Ask again, in the background, for a cached answer's question (a prefetch, or a stale answer
        served at once); the answer replaces the cached one. Not when the same question is in flight
        already (that answer replaces it), nor past ``MAX_BACKGROUND_REFRESHES`` or ``max_concurrent``
        (each counts as a query in flight); an answer to be passed on (``next_rcodes``) is not cached."""
        if (
            (cache_key, False, False) in self._pending
            or (cache_key, False, True) in self._pending
            or self.refreshing >= MAX_BACKGROUND_REFRESHES
            or self.inflight >= self.settings.max_concurrent
        ):
            return False
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop to ask on
            return False
        self.refreshing += 1
        self.inflight += 1
        task = asyncio.ensure_future(self._refreshed(cache_key))
        self._tasks.add(task)
        task.add_done_callback(self._refresh_done)
        return True

    async def _refreshed(self, cache_key: bytes) -> None:
        question, do = forwarded_question(cache_key)
        with contextlib.suppress(PassToNext):
            await self.lookup(question, question, do=do, cache_checked=True, pass_on=True)

    def _refresh_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        self.inflight -= 1
        self.refreshing -= 1

    async def _target(self, question: bytes, *, do: bool, tcp: bool) -> dnslib.DNSRecord | None:
        """The upstream's answer to a chased ExternalName target's ``question``, through the cache as
        a client following the CNAME would ask it: kept under the target's own name (which a
        ``disable`` for the cluster's zone does not cover), so each target goes upstream once per
        TTL, not once per query."""
        key = forward_key(question, do)
        if self.cache is not None and (kept := self.cache.kept_record(key)) is not None:
            return kept
        record = await self.lookup(question, question, do=do, tcp=tcp, keep_record=True)
        if (
            record is not None
            and self.cache is not None
            and not record.header.tc
            and record.header.rcode not in self.settings.next_rcodes  # those are passed on, not kept
        ):
            sections = (record.rr, record.auth, record.ar)
            packed = pack_records(record.header.rcode, sections, question[:-4], question[-4:])
            self.cache.put(key, packed, record, refreshable=True, keep_record=True)
        return record

    def _chased(
        self, query: PendingQuery, prefix: tuple, record: dnslib.DNSRecord | None, *, cache: bool = True
    ) -> Packed:
        """Our CNAMEs, then the target's answer; cached (unless not ``cache``) under the client's
        question, for no longer than the CNAMEs' TTL, so a changed ExternalName shows as CoreDNS's
        cache would show it."""
        qname, qtype_class = query.key[:-4], query.key[-4:]
        if record is None:
            return pack_records(SERVFAIL, ([], [], []), qname, qtype_class)
        target, auth = record.rr, record.auth
        if self.cache is not None:  # the target's records as the cache serves them (a client that
            # follows the CNAME gets them from the cache, so their TTLs are capped even where the
            # client's question, a cluster name, is not cached)
            settings = self.cache.settings
            cap = settings.success_ttl if record.header.rcode == NOERROR and target else settings.denial_ttl
            target, auth = _capped(target, cap), _capped(auth, cap)
        answer = [*to_records(prefix), *target]
        packed = pack_records(record.header.rcode, (answer, auth, []), qname, qtype_class)
        if self.cache is None or record.header.tc or not cache:
            return packed
        whole = dnslib.DNSRecord(header=record.header, q=record.q, rr=answer, auth=record.auth)
        held = None if query.do else self.cache.held(query.cache_key, packed, whole)
        if held is None:
            return self.cache.put(query.cache_key, packed, whole)
        # the cluster's zone is disabled in the cache (kubeadm's Corefile): the answer is held beside
        # the responder's, which is dropped with it when the ExternalName changes
        query.packed.held = held
        return held.fresh() or packed

    async def _rewritten(self, query: PendingQuery, *, pass_on: bool = False) -> Packed:
        """Upstream's answer to the question a ``rewrite`` made of the client's, mapped back by its
        reverter (after our CNAMEs when a chased ExternalName was rewritten), cached under the
        client's question as CoreDNS's cache, before ``rewrite``, keeps it. With ``pass_on``, an
        upstream rcode in ``next_rcodes`` (before any ``rcode`` rule maps it) raises ``PassToNext``."""
        answer = query.packed.answer
        assert answer.asked is not None
        options = self._options(query)
        cache_key = forward_key(query.key, query.do, options)
        if answer.edns0 and self.cache is not None:  # the responder left the cache to us (see there)
            cached = self.cache.get(cache_key)
            if cached is not None:
                return cached
        record = await self.lookup(
            answer.asked, answer.asked, do=query.do, tcp=query.tcp, keep_record=True, options=options
        )
        qname, qtype_class = query.key[:-4], query.key[-4:]
        if record is None:
            return pack_records(SERVFAIL, ([], [], []), qname, qtype_class)
        upstream_rcode = record.header.rcode
        record = revert_record(answer.reverter, record)
        records = [*to_records(answer.answer), *record.rr]
        packed = pack_records(record.header.rcode, (records, record.auth, record.ar), qname, qtype_class)
        if pass_on and upstream_rcode in self.settings.next_rcodes:
            raise PassToNext(f"the upstream answered {dnslib.RCODE.get(upstream_rcode)}", packed)
        if self.cache is None or record.header.tc:
            return packed
        whole = dnslib.DNSRecord(header=record.header, q=record.q, rr=records, auth=record.auth, ar=record.ar)
        return self.cache.put(cache_key, packed, whole)

    def _options(self, query: PendingQuery) -> Options:
        """The EDNS0 options the rewrite's edns0 rules make of ``query`` for its client, to send
        upstream; the options they take back out of the response are put back in the client's OPT
        record (the client's own data, where a rule replaced it)."""
        rules = query.packed.answer.edns0
        if not rules:
            return ()
        peer, local = query.peer or ("",), query.local or ("", 0)
        client = None
        if peer[0]:
            client = Client(
                peer[0],
                peer[1] if len(peer) > 1 else 0,
                "tcp" if query.tcp else "udp",
                str(local[0]),
                local[1] if len(local) > 1 else 0,
            )
        options, restore = edns0_options(rules, client=client, options=query_options(query.data, query.end))
        query.opt = with_options(query.opt, tuple((c, d) for c, d in restore if d is not None))
        return options

    # -- asking upstreams ----------------------------------------------------------------------------
    async def query(
        self, question: bytes, *, do: bool = False, tcp: bool = False, options: Options = ()
    ) -> dnslib.DNSRecord | None:
        """Ask the upstreams in turn until one answers; ``None`` when none does (logged, one line each
        time, as CoreDNS's errors plugin does). ``tcp``: the client asked over TCP; ``options``: the
        EDNS0 options the query carries."""
        failures = []
        upstreams = self._order()
        failed_over: dnslib.DNSRecord | None = None
        for upstream in upstreams:
            started = self.clock()
            self.stats.requests[upstream.label] += 1
            try:
                record = await self._exchange(upstream, question, do=do, tcp=tcp, options=options)
            except EXCHANGE_ERRORS as exc:
                self._failed(upstream, exc)
                failures.append(f"{upstream.label}: {_reason(exc)}")
                continue
            rcode = record.header.rcode
            self.stats.observe(upstream.label, rcode, self.clock() - started)
            upstream.fails = 0
            if rcode in self.settings.failover_rcodes and upstream is not upstreams[-1]:
                failed_over = record
                failures.append(f"{upstream.label}: {dnslib.RCODE.get(rcode)}")
                continue
            return _sane_ttls(record)
        if failed_over is not None:
            return _sane_ttls(failed_over)
        name, qtype = _describe(question)
        if not upstreams and self.upstreams:
            failures.append("every upstream is down (failfast_all_unhealthy_upstreams)")
        self._unanswered.error(
            "%s %s: no upstream answered (%s)", name, qtype, "; ".join(failures) or "no upstreams"
        )
        return None

    def _order(self) -> list[Upstream]:
        """The upstreams in the order this query tries them; none when every one is down and
        ``failfast_all_unhealthy_upstreams`` is set."""
        upstreams = self.upstreams
        if self.settings.policy == ForwardPolicy.RANDOM:
            upstreams = random.sample(upstreams, len(upstreams))
        elif self.settings.policy == ForwardPolicy.ROUND_ROBIN:
            first = next(self._rotation)
            upstreams = [upstreams[first], *upstreams[:first], *upstreams[first + 1 :]]
        max_fails = self.settings.max_fails
        if not max_fails:
            return upstreams
        healthy = [u for u in upstreams if u.fails < max_fails]
        if not healthy:
            self.stats.all_down += 1
            if self.settings.failfast_all_unhealthy_upstreams:
                return []
        return healthy + [u for u in upstreams if u.fails >= max_fails]

    def _failed(self, upstream: Upstream, exc: BaseException) -> None:
        upstream.fails += 1
        reason = _reason(exc)
        log.debug("upstream %s failed: %s", upstream.label, reason)
        if upstream.fails == self.settings.max_fails and not upstream.checking:  # never when 0
            log.warning(
                "upstream %s is down after %d failures (%s); health-checking it",
                upstream.label,
                upstream.fails,
                reason,
            )
            upstream.checking = True
            task = asyncio.ensure_future(self._health_check(upstream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _health_check(self, upstream: Upstream) -> None:
        try:
            while upstream.fails >= self.settings.max_fails:
                await asyncio.sleep(self.settings.health_check)
                try:
                    await self._exchange(upstream, self._health_question, rd=self.settings.health_check_rd)
                except EXCHANGE_ERRORS:
                    self.stats.health_failures[upstream.label] += 1
                    continue
                upstream.fails = 0
                log.warning("upstream %s answers again", upstream.label)
        finally:
            upstream.checking = False

    def over_tcp(self, tcp: bool) -> bool:
        """Whether a query that came over TCP (``tcp``) or UDP goes to a plain DNS upstream over TCP
        first (``tls://`` upstreams are asked over TLS whatever the client used)."""
        return self.settings.force_tcp or (tcp and not self.settings.prefer_udp)

    async def _exchange(
        self,
        upstream: Upstream,
        question: bytes,
        *,
        do: bool = False,
        tcp: bool = False,
        rd: bool = True,
        options: Options = (),
    ) -> dnslib.DNSRecord:
        qid = secrets.randbelow(1 << 16)
        query = upstream_query(qid, question, udp_size=self.udp_size, do=do, rd=rd, options=options)
        if not upstream.tls and not self.over_tcp(tcp):
            record = await self._udp(upstream, qid, question, query)
            if not record.header.tc:
                return record
        return await asyncio.wait_for(
            upstream.streams.exchange(query, partial(read_upstream_answer, qid=qid, question=question)),
            self.settings.timeout,
        )

    async def _udp(self, upstream: Upstream, qid: int, question: bytes, query: bytes) -> dnslib.DNSRecord:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Exchange(qid, question, done), remote_addr=(upstream.host, upstream.port)
        )
        try:
            transport.sendto(query)
            return await asyncio.wait_for(done, self.settings.timeout)
        finally:
            transport.close()

    # -- loops -----------------------------------------------------------------------------------------
    async def check_loop(self, own: set[tuple[str, int]]) -> None:
        """Raise ``LoopDetected`` when an upstream is this server, or sends our probe back to us."""
        for upstream in self.upstreams:
            if (upstream.host, upstream.port) in own:
                raise LoopDetected(f"upstream {upstream.label} is this server's own address")
        name = f"{secrets.token_hex(8)}.{secrets.token_hex(8)}."
        question = dnslib.DNSLabel(name).label
        wire = b"".join(bytes((len(label),)) + label for label in question) + b"\x00"
        self._probe = wire + QUESTION_TAIL.pack(HINFO, IN)
        try:
            for upstream in self.upstreams:
                with contextlib.suppress(*EXCHANGE_ERRORS):
                    await self._exchange(upstream, self._probe)
                if self.loop_hits:
                    raise LoopDetected(
                        f"a query for {to_text(wire)} sent to upstream {upstream.label} came back to kdns"
                    )
        finally:
            self._probe = None


def _capped(records: list[dnslib.RR], cap: int) -> list[dnslib.RR]:
    """``records`` with no TTL above ``cap`` (copies where one is lowered: the upstream's record may
    be shared)."""
    out = []
    for rr in records:
        lowered = rr
        if rr.ttl > cap:
            lowered = copy.copy(rr)
            lowered.ttl = cap
        out.append(lowered)
    return out
