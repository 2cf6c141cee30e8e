"""UDP: one datagram in, at most one datagram out. Responses the responder makes at once are sent
inside ``datagram_received`` (the hot path: no call beyond ``respond`` and ``sendto``); a query
answered later goes to the exchange, which sends its response when it comes."""

from __future__ import annotations

import asyncio
import logging
import socket

from kdns.counting import DURATION_BOUNDS
from kdns.transport.exchange import Client, Exchange, Via
from kdns.wire.query import UDP4, UDP6

log = logging.getLogger(__name__)
FIRST_BOUND = DURATION_BOUNDS[0]
PROTO = "udp"


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._clock = exchange.clock  # the exchange's for good, looked up once
        self._durations = exchange.durations[0]  # its family's, once the socket is known
        self._transport: asyncio.DatagramTransport | None = None
        self.channel = UDP4
        self._via = Via(PROTO, "")
        self._local: tuple = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        # where clients ask: the address the socket is bound to (for a wildcard one, the wildcard)
        self._local = transport.get_extra_info("sockname") or ("", 0)
        sock = transport.get_extra_info("socket")
        if sock.family == socket.AF_INET6:
            self.channel = UDP6
            self._durations = self._exchange.durations[1]
        self._via = Via(PROTO, sock.getsockname()[0])

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        # Callables kept in attributes are loaded into locals before the call: a call straight
        # through an attribute is a method lookup the interpreter cannot make quick.
        exchange, clock = self._exchange, self._clock
        started = clock()
        try:
            respond = exchange.respond
            response = respond(data, self.channel, addr)
        except Exception:
            response = exchange.failed(data, addr)
        if response is None:
            return
        if type(response) is bytes:
            self._transport.sendto(response, addr)
            elapsed = clock() - started
            durations = self._durations
            if elapsed < FIRST_BOUND:  # nearly every answer: no call, no search
                durations.buckets[0] += 1
                durations.sum += elapsed
            else:
                durations.observe(elapsed)
            query_log = exchange.query_log
            if query_log is not None:
                query_log(addr, data, response, self._via, elapsed)
        else:
            exchange.later(response, self._client(addr), started)

    def _client(self, addr: tuple) -> Client:
        """Where an answer made later goes. (Its closure lives here, not in ``datagram_received``,
        whose every call would otherwise pay for the cells it needs.)"""

        def send(response: bytes) -> None:
            if not self._transport.is_closing():
                self._transport.sendto(response, addr)

        return Client(send, addr, self._via, local=self._local)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)
