"""Everything after ``respond()``, one object shared by a server's UDP sockets and TCP connections.

The transports only frame, time out and close; what happens to a query once the responder has seen
it is decided here, once for both:

- a response made at once is sent, timed on the exchange's clock and logged (UDP does this inline
  for the responses it makes in ``datagram_received``: that is the hot path);
- a ``PendingQuery`` goes to the answerer: REFUSED at once past its limit, else a task whose answer
  is rendered for the client when it comes, or SERVFAIL when answering it fails in any way;
- ``respond()`` itself failing is SERVFAIL too (``failed``);
- a ``ZoneTransfer`` (TCP only) is streamed: a task sends its messages one after the other, each
  made once the connection has taken the one before, so a transfer never holds more than a message
  or two in memory and queries are answered between its messages.

A reload swaps the responder, the answerer and the query log with ``use``; queries in flight finish
with what they started with. On shutdown ``drain`` waits for them, within a bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from kdns.codes import HEADER_SIZE, REFUSED, SERVFAIL
from kdns.counting import Histogram
from kdns.plugins.transfer import ZoneTransfer
from kdns.responder import Responder
from kdns.upstream.answerer import Answerer
from kdns.wire.pending import PendingQuery
from kdns.wire.query import error_response
from kdns.zone.names import to_text

log = logging.getLogger(__name__)
DRAIN_LIMIT = 5.0  # longest wait for queries in flight when the server stops


@dataclass(frozen=True, slots=True)
class Via:
    """The socket a query came in on, as the query log names it."""

    proto: str  # "udp" or "tcp"
    local: str  # the server's address as the socket is bound ("0.0.0.0" or "::" for every address)


QueryLog = Callable[[tuple, bytes, bytes, Via, float], None]  # client, query, response, via, seconds


@dataclass(frozen=True, slots=True)
class Client:
    """Who asked, and how their answers go back."""

    send: Callable[[bytes], None]
    address: tuple  # (host, port, ...) as the socket names it
    via: Via
    # a connection's: waits until it can take more, then says whether it is still open
    drained: Callable[[], Awaitable[bool]] | None = None
    local: tuple = ()  # where it asked: the socket's own address (for a wildcard UDP one, the wildcard)


class Exchange:
    def __init__(
        self,
        responder: Responder,
        answerer: Answerer | None = None,
        *,
        query_log: QueryLog | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.clock = clock
        # seconds from a query's arrival to its answer's sending, of IPv4 and of IPv6 clients
        self.durations = (Histogram(), Histogram())
        self.panics = 0  # queries whose answering raised (CoreDNS's recovered panics)
        self._tasks: set[asyncio.Task] = set()
        self.use(responder, answerer, query_log)

    def use(self, responder: Responder, answerer: Answerer | None, query_log: QueryLog | None) -> None:
        """Answer with these from now on (a reloaded configuration)."""
        self.responder = responder
        self.respond = responder.respond
        self.answerer = answerer
        self.query_log = query_log

    def failed(self, data: bytes, client: tuple) -> bytes | None:
        """The reply to a query ``respond()`` raised on (logged with the exception): SERVFAIL, or
        nothing for a packet too short to carry an ID."""
        log.exception("failed to answer a %d-byte query from %s", len(data), client[0])
        self.panics += 1
        return error_response(data, SERVFAIL) if len(data) >= HEADER_SIZE else None

    def later(self, query: PendingQuery, client: Client, started: float) -> None:
        """Have ``query`` answered by the answerer and its response sent to ``client``."""
        answerer = self.answerer
        if answerer is None or not answerer.admits(query):  # past the limit: answered now, no task
            self._finish_later(query, client, query.error(REFUSED), started)
            return
        query.peer, query.local = client.address, client.local  # what a rewrite's edns0 rules read
        task = asyncio.ensure_future(answerer.answer(query))
        self._tasks.add(task)
        task.add_done_callback(partial(self._answered, query, client, started))

    def _answered(self, query: PendingQuery, client: Client, started: float, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            response = query.reply(task.result())
        else:
            log.error("failed to answer a query for upstream: %r", exc, exc_info=exc)
            self.panics += 1
            response = query.error(SERVFAIL)
        self._finish_later(query, client, response, started)

    def _finish_later(self, query: PendingQuery, client: Client, response: bytes, started: float) -> None:
        """``finish`` a query answered later, counting its response's size when it was forwarded (the
        responder counts the others by their packed answer)."""
        if query.packed.delegate:
            self.responder.sizes[query.channel].responses.observe(len(response))
        self.finish(client, query.data, response, started)

    def stream(self, transfer: ZoneTransfer, client: Client, started: float) -> None:
        """Send the messages of ``transfer`` to ``client`` (a connection) as it takes them."""
        task = asyncio.ensure_future(self._stream(transfer, client, started))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stream(self, transfer: ZoneTransfer, client: Client, started: float) -> None:
        messages = transfer.messages()
        try:
            self.finish(client, transfer.data, next(messages), started)  # timed and logged once
            while True:
                await asyncio.sleep(0)  # the queries that came meanwhile go first
                if client.drained is not None and not await client.drained():
                    log.info(
                        "zone transfer of %s to %s: the client left",
                        to_text(transfer.qname),
                        client.address[0],
                    )
                    return
                message = next(messages, None)
                if message is None:
                    break
                client.send(message)
        except Exception:
            log.exception("failed to send a zone transfer to %s", client.address[0])
            self.panics += 1
            return
        log.info(
            "zone transfer of %s to %s: %d records", to_text(transfer.qname), client.address[0], transfer.sent
        )

    def finish(self, client: Client, query: bytes, response: bytes, started: float) -> None:
        """Send ``response`` to ``query`` and account for it: its time, and its line in the query log."""
        client.send(response)
        elapsed = self.clock() - started
        self.durations[":" in client.address[0]].observe(elapsed)
        if self.query_log is not None:
            self.query_log(client.address, query, response, client.via, elapsed)

    @property
    def in_flight(self) -> int:
        """Queries being answered later, not yet sent (zone transfers being sent among them)."""
        return len(self._tasks)

    async def drain(self, limit: float = DRAIN_LIMIT) -> int:
        """Wait until every query in flight is answered, at most ``limit`` seconds; return how many
        are still in flight."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=limit)
        return len(self._tasks)

    def cancel(self) -> None:
        """Give up on the queries in flight (the sockets are closing)."""
        for task in list(self._tasks):
            task.cancel()
