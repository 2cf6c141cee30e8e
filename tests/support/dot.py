"""A DNS server over TCP or TLS on loopback (DNS over TLS, RFC 7858, with a certificate made at test
time), to watch how kdns's forwarder uses its connections.

``stream_upstream`` runs it on its own event loop in a thread, so both in-process tests (on their own
loop) and tests of a ``kdns serve`` process can ask through it. It answers from zone-file records
(NXDOMAIN with an SOA for other names, or a fixed rcode per name), and counts connections opened,
connections open now, and each query's name, type and RD bit. ``Certificates`` is a CA made with
``trustme`` and the files and contexts tests build from it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme
from dnslib import QTYPE, RCODE, RR, DNSRecord

HOST = "127.0.0.1"
SOA = "example. 60 IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 30"
SERVER_NAME = "dns.test"  # the name in the server certificate besides 127.0.0.1


@dataclass(frozen=True)
class Query:
    name: str  # lowercase, no trailing dot
    qtype: str
    rd: bool


class StreamUpstream:
    """The server; ``ssl`` given, it speaks TLS."""

    def __init__(self, records: str = "", *, tls: ssl.SSLContext | None = None) -> None:
        self.records: list[RR] = RR.fromZone(records) if records.strip() else []
        self.rcodes: dict[str, int] = {}  # name -> the rcode it is answered with (no records)
        self.idle_timeout: float | None = None  # close a connection that waits this long for a query
        self.opened = 0  # connections accepted
        self.open = 0  # connections open now
        self.queries: list[Query] = []
        self.handshake_failures = 0
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def count(self, name: str, qtype: str = "A") -> int:
        return sum(1 for q in list(self.queries) if q.name == name.rstrip(".") and q.qtype == qtype)

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, HOST, 0, ssl=self._tls)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        self.open += 1
        self._writers.add(writer)
        try:
            for _ in range(10_000):  # queries on one connection
                head = await asyncio.wait_for(reader.readexactly(2), self.idle_timeout)
                data = await reader.readexactly(int.from_bytes(head))
                reply = self.answer(data)
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()

    def answer(self, data: bytes) -> bytes:
        query = DNSRecord.parse(data)
        name = str(query.q.qname).lower().rstrip(".")
        self.queries.append(Query(name, QTYPE.get(query.q.qtype), bool(query.header.rd)))
        reply = query.reply(ra=True)
        if name in self.rcodes:
            reply.header.rcode = self.rcodes[name]
            return reply.pack()
        matches = [
            rr
            for rr in self.records
            if str(rr.rname).lower().rstrip(".") == name and rr.rtype == query.q.qtype
        ]
        if matches or any(str(rr.rname).lower().rstrip(".") == name for rr in self.records):
            reply.add_answer(*matches)
        else:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(*RR.fromZone(SOA))
        return reply.pack()

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                for writer in list(self._writers):
                    writer.close()
                await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(asyncio.wait_for(stop(), 5), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@contextmanager
def stream_upstream(records: str = "", *, tls: ssl.SSLContext | None = None) -> Iterator[StreamUpstream]:
    server = StreamUpstream(records, tls=tls)
    try:
        yield server
    finally:
        server.close()


class Certificates:
    """A CA made for one test, the files a client is given, and server contexts it signs."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.directory = directory
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self, *names: str, client_certificates: bool = False) -> ssl.SSLContext:
        """A TLS server context with a certificate for ``names`` (default: 127.0.0.1 and
        ``SERVER_NAME``); with ``client_certificates`` it requires a client certificate of this CA."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*(names or (HOST, SERVER_NAME))).configure_cert(context)
        if client_certificates:
            context.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(context)
        return context

    def client_files(self, name: str = "kdns.client") -> tuple[Path, Path]:
        """A client certificate of this CA and its key, as files."""
        issued = self.ca.issue_cert(name)
        cert, key = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return cert, key
