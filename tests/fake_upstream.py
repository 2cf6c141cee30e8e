"""A scriptable upstream resolver on 127.0.0.1 (UDP and TCP) for forwarding tests.

It answers from a table of zone-file records (NXDOMAIN with an SOA for anything else) and can be told
to misbehave per name: stay silent, answer late, truncate over UDP, answer with a wrong ID first, or
send garbage. It counts what it was asked, by (name, type, transport).
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from dnslib import QTYPE, RCODE, RR, DNSRecord

SOA = "example. 60 IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 30"


class FakeUpstream:
    def __init__(self, records: str = "", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.records: list[RR] = RR.fromZone(records) if records.strip() else []
        self.asked: Counter[tuple[str, str, str]] = Counter()
        self.silent: set[str] = set()  # names never answered
        self.slow: dict[str, float] = {}  # name -> seconds to wait before answering
        self.truncate: set[str] = set()  # names answered with TC over UDP
        self.spoof_first: set[str] = set()  # names answered first with a wrong ID, then rightly
        self.garbage: set[str] = set()  # names answered with bytes that are not DNS
        self.down = False  # nothing is answered
        self._udp = socketserver.ThreadingUDPServer((host, port), self._udp_handler())
        port = self._udp.server_address[1]
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._tcp = socketserver.ThreadingTCPServer((host, port), self._tcp_handler())
        self.host, self.port = host, port
        for server in (self._udp, self._tcp):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def add(self, records: str) -> None:
        self.records.extend(RR.fromZone(records))

    def close(self) -> None:
        for server in (self._udp, self._tcp):
            server.shutdown()
            server.server_close()

    def count(self, name: str, qtype: str = "A") -> int:
        return sum(n for (q, t, _), n in self.asked.items() if q == name.lower().rstrip(".") and t == qtype)

    # -- answering ---------------------------------------------------------------------------------------
    def reply(self, data: bytes, transport: str) -> list[bytes]:
        """The datagrams (or TCP messages) to send back for one query."""
        try:
            query = DNSRecord.parse(data)
        except Exception:
            return []
        qname = str(query.q.qname).lower().rstrip(".")
        qtype = QTYPE.get(query.q.qtype)
        self.asked[(qname, qtype, transport)] += 1
        if self.down or qname in self.silent:
            return []
        if qname in self.slow:
            time.sleep(self.slow[qname])
        if qname in self.garbage:
            return [b"\xde\xad\xbe\xef" * 4]
        reply = query.reply(ra=True, aa=True)
        name = qname
        for _ in range(8):  # a recursive resolver follows CNAMEs for its client
            matches = [rr for rr in self.records if str(rr.rname).lower().rstrip(".") == name]
            if not matches:
                reply.header.rcode = RCODE.NXDOMAIN
                reply.add_auth(*RR.fromZone(SOA))
                break
            reply.add_answer(*(rr for rr in matches if rr.rtype == query.q.qtype))
            cname = next((rr for rr in matches if rr.rtype == QTYPE.CNAME), None)
            if cname is None or query.q.qtype == QTYPE.CNAME:
                break
            reply.add_answer(cname)
            name = str(cname.rdata.label).lower().rstrip(".")
        if transport == "udp" and qname in self.truncate:
            reply.rr = []
            reply.header.tc = 1
        packed = reply.pack()
        if qname in self.spoof_first:
            wrong = bytearray(packed)
            wrong[0] ^= 0xFF
            return [bytes(wrong), packed]
        return [packed]

    def _udp_handler(self) -> type:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                for message in fake.reply(data, "udp"):
                    sock.sendto(message, self.client_address)

        return Handler

    def _tcp_handler(self) -> type:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(5)
                try:
                    while True:
                        head = sock.recv(2)
                        if len(head) < 2:
                            return
                        length = int.from_bytes(head, "big")
                        data = b""
                        while len(data) < length:
                            chunk = sock.recv(length - len(data))
                            if not chunk:
                                return
                            data += chunk
                        for message in fake.reply(data, "tcp"):
                            sock.sendall(len(message).to_bytes(2, "big") + message)
                except OSError:
                    return

        return Handler


@contextmanager
def upstream(records: str = "", **where: object) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(records, **where)
    try:
        yield fake
    finally:
        fake.close()
