"""TCP (RFC 7766): length-prefixed queries, several per connection; cluster answers go out in order,
forwarded ones when upstream replies (clients match them by ID), a zone transfer's messages one
after the other as the client reads them.

A connection is closed when it has not completed a query for ``idle_timeout`` seconds (so a client
trickling bytes cannot hold it), and reading pauses while the client does not read its answers; one
closed with answers still unread is reset rather than left waiting for a reader; a zone transfer the
client keeps reading counts as a query completing with each message. At
``max_connections``, a new connection takes the place of the one idle longest (RFC 7766 section 6.2.3:
a server short of connections closes idle ones), or is closed at once when every one is busy.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from kdns.plugins.transfer import ZoneTransfer
from kdns.transport.exchange import Client, Exchange, Via
from kdns.wire.query import TCP4, TCP6

log = logging.getLogger(__name__)
PROTO = "tcp"
LENGTH_SIZE = 2  # each message is preceded by its length in two bytes (RFC 1035 4.2.2)
MIN_IDLE_TO_EVICT = 1.0  # seconds without a complete query before a connection may give its place
WARN_EVERY = 10.0  # seconds between warnings about the connection limit
SEND_BUFFER = 64 * 1024  # bytes of answers the kernel holds for one connection


class TcpConnections:
    """Settings and bookkeeping shared by every connection of one server."""

    def __init__(self, exchange: Exchange, *, idle_timeout: float, max_connections: int) -> None:
        self.exchange = exchange
        self.clock = exchange.clock
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.open: set[TcpProtocol] = set()
        self._refused_logged_at = -WARN_EVERY
        self.refused = 0  # connections closed at once, past max_connections
        self.evicted = 0  # idle connections closed to admit new ones
        self.reaped = 0  # connections closed after idle_timeout without a complete query

    def protocol(self) -> TcpProtocol:
        return TcpProtocol(self)

    def admit(self, conn: TcpProtocol) -> bool:
        if len(self.open) >= self.max_connections:
            now = self.clock()
            idlest = min(self.open, key=TcpProtocol.last_query)
            if now - idlest.last_query() >= MIN_IDLE_TO_EVICT:
                idlest.abort()
                self.evicted += 1
                self._warn(now, "closing the connection idle longest to admit a new one")
            else:
                self.refused += 1
                self._warn(now, "every connection is busy: closing new connections")
                return False
        self.open.add(conn)
        return True

    def _warn(self, now: float, action: str) -> None:
        if now - self._refused_logged_at > WARN_EVERY:
            self._refused_logged_at = now
            log.warning(
                "TCP connection limit (%d, --max-tcp-connections) reached: %s (%d closed so far, %d refused)",
                self.max_connections,
                action,
                self.evicted,
                self.refused,
            )

    def close_all(self) -> None:
        for conn in list(self.open):
            conn.close()


class TcpProtocol(asyncio.Protocol):
    def __init__(self, connections: TcpConnections) -> None:
        self._connections = connections
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._last_query = connections.clock()
        self._timer: asyncio.TimerHandle | None = None
        self._channel = TCP4
        self._client = Client(self._send, ("", 0), Via(PROTO, ""))
        self._writing_paused = False
        self._resumed: asyncio.Future | None = None  # what a zone transfer waits on while paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if not self._connections.admit(self):
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        # A fixed send buffer (the kernel would grow it to megabytes) bounds what a client that reads
        # nothing can make kdns answer before reading pauses; one answer is at most 64 KiB.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        if sock.family == socket.AF_INET6:
            self._channel = TCP6
        peer = transport.get_extra_info("peername") or ("", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self._client = Client(self._send, peer, Via(PROTO, local[0]), self._drained, local)
        self._schedule_idle_check(self._connections.idle_timeout)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        exchange = self._connections.exchange
        while len(buffer) >= LENGTH_SIZE:
            end = LENGTH_SIZE + int.from_bytes(buffer[:LENGTH_SIZE])
            if len(buffer) < end:
                break
            query = bytes(buffer[LENGTH_SIZE:end])
            del buffer[:end]
            self._last_query = started = exchange.clock()
            client = self._client
            try:
                response = exchange.respond(query, self._channel, client.address)
            except Exception:
                response = exchange.failed(query, client.address)
            if response is None:
                continue
            if type(response) is bytes:
                exchange.finish(client, query, response, started)
            elif type(response) is ZoneTransfer:
                exchange.stream(response, client, started)
            else:  # answered when it comes; TCP clients match answers by ID (RFC 7766)
                exchange.later(response, client, started)

    def _send(self, response: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(len(response).to_bytes(LENGTH_SIZE, "big") + response)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._transport.resume_reading()
        self._wake()

    async def _drained(self) -> bool:
        """Wait until the client has read enough for another message; False once the connection is
        closing. The client reading counts as the connection being busy (not idle)."""
        while self._writing_paused and not self._transport.is_closing():
            self._resumed = asyncio.get_running_loop().create_future()
            await self._resumed
        self._last_query = self._connections.clock()
        return not self._transport.is_closing()

    def _wake(self) -> None:
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close once the answers written so far are flushed

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.open.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        self._wake()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping answers not yet written (a reset)."""
        if self._transport is not None:
            self._transport.abort()

    def last_query(self) -> float:
        """When a query last completed here (or the connection opened)."""
        return self._last_query

    def _schedule_idle_check(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._idle_check)

    def _idle_check(self) -> None:
        remaining = self._last_query + self._connections.idle_timeout - self._connections.clock()
        if remaining <= 0:
            self._connections.reaped += 1
            if self._transport.get_write_buffer_size():
                self._transport.abort()  # the client reads no answers: close() would wait for it
            else:
                self._transport.close()
        else:
            self._schedule_idle_check(remaining)
