"""UDP: one datagram in, at most one datagram out, answered inside ``datagram_received``."""

from __future__ import annotations

import asyncio
import logging

from kdns.responder import Responder
from kdns.wire import error_response

log = logging.getLogger(__name__)
SERVFAIL = 2


class UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder) -> None:
        self._respond = responder.respond
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            response = self._respond(data)
        except Exception:
            log.exception("failed to answer a %d-byte query from %s", len(data), addr[0])
            response = error_response(data, SERVFAIL) if len(data) >= 12 else None
        if response is not None:
            self._transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP socket error: %s", exc)
