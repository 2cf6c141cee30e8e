"""UDP: one datagram in, at most one datagram out. Responses the responder makes at once are sent
inside ``datagram_received`` (the hot path: no call beyond ``respond`` and ``sendto``); a query
answered later goes to the exchange, which sends its response when it comes."""

from __future__ import annotations

import asyncio
import logging
import socket

from kdns.counting import DURATION_BOUNDS
from kdns.responder import UDP4, UDP6
from kdns.transport.exchange import Client, Exchange

log = logging.getLogger(__name__)
FIRST_BOUND = DURATION_BOUNDS[0]
PROTO = "udp"


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._transport: asyncio.DatagramTransport | None = None
        self.channel = UDP4

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if transport.get_extra_info("socket").family == socket.AF_INET6:
            self.channel = UDP6

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        exchange = self._exchange
        started = exchange.clock()
        try:
            response = exchange.respond(data, self.channel, addr[0])
        except Exception:
            response = exchange.failed(data, addr)
        if response is None:
            return
        if type(response) is bytes:
            self._transport.sendto(response, addr)
            elapsed = exchange.clock() - started
            durations = exchange.durations
            if elapsed < FIRST_BOUND:  # nearly every answer: no call, no search
                durations.buckets[0] += 1
                durations.sum += elapsed
            else:
                durations.observe(elapsed)
            if exchange.query_log is not None:
                exchange.query_log(addr, data, response, PROTO, elapsed)
        else:
            client = Client(lambda reply: self._send(reply, addr), addr, PROTO)
            exchange.later(response, client, started)

    def _send(self, response: bytes, addr: tuple) -> None:
        if not self._transport.is_closing():
            self._transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)
