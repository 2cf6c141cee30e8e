"""UDP: one datagram in, at most one datagram out. Cluster answers are made inside
``datagram_received``; a query for upstream becomes a task whose answer is sent when it comes."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from time import perf_counter

from kdns.ops.counting import DURATION_BOUNDS, Histogram
from kdns.responder import UDP4, UDP6, Delegation, Responder
from kdns.upstream.forward import Forwarder
from kdns.wire import error_response

log = logging.getLogger(__name__)
FIRST_BOUND = DURATION_BOUNDS[0]
QueryLog = Callable[[tuple, bytes, bytes, str, float], None]
SERVFAIL = 2


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(
        self, responder: Responder, forwarder: Forwarder | None = None, *, query_log: QueryLog | None = None
    ) -> None:
        self._respond = responder.respond
        self._forwarder = forwarder
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task] = set()
        self.channel = UDP4
        self.durations = Histogram()  # seconds from a query's arrival to its answer's sending
        self._log = query_log

    def use(self, responder: Responder, forwarder: Forwarder | None, query_log: QueryLog | None) -> None:
        """Answer with these from now on (a reloaded configuration)."""
        self._respond = responder.respond
        self._forwarder = forwarder
        self._log = query_log

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if transport.get_extra_info("socket").family == socket.AF_INET6:
            self.channel = UDP6

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        started = perf_counter()
        try:
            response = self._respond(data, self.channel, addr[0])
        except Exception:
            log.exception("failed to answer a %d-byte query from %s", len(data), addr[0])
            response = error_response(data, SERVFAIL) if len(data) >= 12 else None
        if response is None:
            return
        if type(response) is bytes:
            self._transport.sendto(response, addr)
            elapsed = perf_counter() - started
            durations = self.durations
            if elapsed < FIRST_BOUND:  # nearly every answer: no call, no search
                durations.buckets[0] += 1
                durations.sum += elapsed
            else:
                durations.observe(elapsed)
            if self._log is not None:
                self._log(addr, data, response, "udp", elapsed)
        else:
            self._forward(response, addr, started)

    def _forward(self, delegation: Delegation, addr: tuple, started: float) -> None:
        refused = self._forwarder.refused(delegation)
        if refused is not None:  # past max_concurrent: answered now, no task
            self._answer(delegation.data, refused, addr, started)
            return
        task = asyncio.ensure_future(self._forwarder.answer(delegation))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._forwarded(done, delegation, addr, started))

    def _forwarded(self, task: asyncio.Task, delegation: Delegation, addr: tuple, started: float) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._transport.is_closing():
            return
        if task.exception() is not None:
            log.error("failed to forward a query: %r", task.exception())
            response = error_response(delegation.data, SERVFAIL)
        else:
            response = task.result()
        self._answer(delegation.data, response, addr, started)

    def _answer(self, query: bytes, response: bytes, addr: tuple, started: float) -> None:
        """Send an answer made outside ``datagram_received`` (which does this inline), timed and logged."""
        self._transport.sendto(response, addr)
        elapsed = perf_counter() - started
        self.durations.observe(elapsed)
        if self._log is not None:
            self._log(addr, query, response, "udp", elapsed)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)
