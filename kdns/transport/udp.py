"""UDP: one datagram in, at most one datagram out. Cluster answers are made inside
``datagram_received``; a query for upstream becomes a task whose answer is sent when it comes."""

from __future__ import annotations

import asyncio
import logging

from kdns.responder import Delegation, Responder
from kdns.upstream.forward import Forwarder
from kdns.wire import error_response

log = logging.getLogger(__name__)
SERVFAIL = 2


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder, forwarder: Forwarder | None = None) -> None:
        self._respond = responder.respond
        self._forwarder = forwarder
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            response = self._respond(data)
        except Exception:
            log.exception("failed to answer a %d-byte query from %s", len(data), addr[0])
            response = error_response(data, SERVFAIL) if len(data) >= 12 else None
        if response is None:
            return
        if type(response) is bytes:
            self._transport.sendto(response, addr)
        else:
            self._forward(response, addr)

    def _forward(self, delegation: Delegation, addr: tuple) -> None:
        task = asyncio.ensure_future(self._forwarder.answer(delegation))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._forwarded(done, delegation, addr))

    def _forwarded(self, task: asyncio.Task, delegation: Delegation, addr: tuple) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._transport.is_closing():
            return
        if task.exception() is not None:
            log.error("failed to forward a query: %r", task.exception())
            response = error_response(delegation.data, SERVFAIL)
        else:
            response = task.result()
        self._transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)
