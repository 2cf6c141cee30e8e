"""Connections to one upstream over TCP or TLS, kept open for the next query (CoreDNS's ``expire``).

One query at a time on a connection, as CoreDNS's forward does it: a query takes the idle connection
used last, or opens a new one; it sends its message, reads replies until one is its own, and gives
the connection back to wait for the next query. A connection that waits ``expire`` seconds unused is
closed (``expire`` 0: each is closed after its query). A connection on which anything goes wrong, a
timeout included, is closed and never reused, so a reply that comes late can never be read as the
answer to someone else's query. When a connection kept open turns out to have been closed by the
upstream (the usual fate of an idle one), the query is sent once more on a new connection.

Pipelining several queries on one connection (RFC 7766 section 6.2.1.1) would hold fewer connections
under load, but ties every query on it to one reader and to the slowest answer; one at a time keeps
each exchange independent and bounded by its own timeout. Queries at once open connections side by
side, so the idle ones number at most the queries that were in flight together (``max_concurrent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import TypeVar

from kdns.wire.upstream import BadUpstreamAnswer

_Reply = TypeVar("_Reply")
LENGTH = 2  # the two-byte length before each DNS message on a stream (RFC 1035 section 4.2.2)
MAX_SKIPPED = 8  # replies not our own read from one connection before it is given up
CLOSED_BY_PEER = (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError)


class _Connection:
    __slots__ = ("expiry", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.expiry: asyncio.TimerHandle | None = None

    def close(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        self.writer.close()


class ConnectionPool:
    """The connections to ``host``:``port``, over TLS with ``tls`` (verified for ``server_name``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        expire: float,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        self.host, self.port, self.expire = host, port, expire
        self.tls, self.server_name = tls, server_name
        self._idle: list[_Connection] = []  # the one used last at the end
        self.opened = 0  # connections opened so far
        self.reused = 0  # queries sent on a connection kept open

    @property
    def idle(self) -> int:
        """Connections open and waiting for a query."""
        return len(self._idle)

    async def exchange(self, message: bytes, read: Callable[[bytes], _Reply]) -> _Reply:
        """Send ``message`` and return ``read`` of the first reply it accepts (replies it refuses
        with ``BadUpstreamAnswer`` are skipped). The caller bounds the time."""
        framed = len(message).to_bytes(LENGTH, "big") + message
        while self._idle:
            connection = self._idle.pop()
            if connection.expiry is not None:
                connection.expiry.cancel()
            if connection.reader.at_eof():  # closed by the upstream while it waited
                connection.close()
                continue
            self.reused += 1
            try:
                return await self._on(connection, framed, read)
            except CLOSED_BY_PEER as exc:
                if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                    raise  # cut off in the middle of a reply: a fault of this query
                break  # closed before it read our query: ask again on a new connection
        return await self._on(await self._open(), framed, read)

    async def _open(self) -> _Connection:
        if self.tls is None:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        else:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.tls, server_hostname=self.server_name or self.host
            )
        self.opened += 1
        return _Connection(reader, writer)

    async def _on(self, connection: _Connection, framed: bytes, read: Callable[[bytes], _Reply]) -> _Reply:
        """The exchange on one connection; it is given back when it succeeds, closed otherwise."""
        try:
            connection.writer.write(framed)
            for _ in range(MAX_SKIPPED):
                length = int.from_bytes(await connection.reader.readexactly(LENGTH))
                data = await connection.reader.readexactly(length)
                try:
                    reply = read(data)
                except BadUpstreamAnswer:
                    continue
                self._give_back(connection)
                return reply
            raise BadUpstreamAnswer(f"{MAX_SKIPPED} replies on one connection, none to our query")
        except BaseException:
            connection.close()
            raise

    def _give_back(self, connection: _Connection) -> None:
        if self.expire <= 0:
            connection.close()
            return
        self._idle.append(connection)
        connection.expiry = asyncio.get_running_loop().call_later(self.expire, self._expired, connection)

    def _expired(self, connection: _Connection) -> None:
        connection.expiry = None
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
        connection.close()

    def close(self) -> None:
        """Close every idle connection (those in use close when their query ends)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
