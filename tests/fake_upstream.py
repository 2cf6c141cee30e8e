"""A scriptable upstream resolver on 127.0.0.1 (UDP and TCP) for forwarding tests.

It answers from a table of zone-file records (NXDOMAIN with an SOA for anything else, or a fixed
rcode per name, or by the client subnet a query carries) and can be told to misbehave per name: stay silent, answer late, truncate over UDP,
answer with a wrong ID or another question first, race its own answer with a forged one sent from
another address, cut a reply short, rewrite TTLs, add records of other names, or send garbage. It counts what it was asked, by (name,
type, transport) and by RD bit, notes the source address, port and ID of every UDP query, and the
EDNS0 options of every query.
"""

from __future__ import annotations

import copy
import ipaddress
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from dnslib import EDNS0, QTYPE, RCODE, RR, DNSQuestion, DNSRecord, EDNSOption

SOA = "example. 60 IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 30"
FORGED = "6.6.6.6"  # the address every forged or out-of-place record points at
ECS = 8  # the EDNS0 client subnet option (RFC 7871)


def client_subnet(data: bytes) -> str:
    """An ECS option's subnet as text (``192.0.2.0/24``): family, source prefix, scope, address."""
    family, bits = int.from_bytes(data[:2], "big"), data[2]
    address = data[4:].ljust(4 if family == 1 else 16, b"\x00")
    return f"{ipaddress.ip_address(address)}/{bits}"


def forged_answer(query: DNSRecord, name: str | None = None) -> bytes:
    """A reply to ``query`` (same ID) for ``name`` (default: its own question) pointing at ``FORGED``."""
    reply = query.reply(ra=True, aa=True)
    if name is not None:
        reply.questions = [DNSQuestion(name, query.q.qtype)]
    reply.add_answer(*RR.fromZone(f"{name or query.q.qname} 86400 IN A {FORGED}"))
    return reply.pack()


class FakeUpstream:
    def __init__(self, records: str = "", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.records: list[RR] = RR.fromZone(records) if records.strip() else []
        self.asked: Counter[tuple[str, str, str]] = Counter()
        self.silent: set[str] = set()  # names never answered
        self.slow: dict[str, float] = {}  # name -> seconds to wait before answering
        self.truncate: set[str] = set()  # names answered with TC over UDP
        self.spoof_first: set[str] = set()  # names answered first with a wrong ID, then rightly
        self.garbage: set[str] = set()  # names answered with bytes that are not DNS
        self.wrong_question: set[str] = set()  # answered first with the right ID for another name
        self.race: dict[str, tuple[str, ...]] = {}  # name -> hosts a forged answer comes from first
        self.cut: dict[str, tuple[str, ...]] = {}  # name -> transports its replies are cut short on
        self.ttl: dict[str, int] = {}  # name -> TTL given to every record of its answer
        self.rcodes: dict[str, int] = {}  # name -> the rcode it is answered with, and no records
        self.rd_bits: Counter[tuple[str, str, bool]] = Counter()  # (name, type, RD set) of each query
        self.extra: dict[str, list[RR]] = {}  # name -> records of other names added to its answer
        # name -> {client subnet ("192.0.2.0/24"): the address its A answer gives a query from there};
        # the answer echoes the query's ECS option with a scope as long as its source prefix
        self.by_subnet: dict[str, dict[str, str]] = {}
        self.options: list[tuple[str, tuple[tuple[int, bytes], ...]]] = []  # (name, EDNS0 options) per query
        self.down = False  # nothing is answered
        self.delay = 0.0  # seconds every answer waits (besides ``slow``)
        self.sources: list[tuple[str, int, int, str]] = []  # (address, port, ID, name) per UDP query
        self._lock = threading.Lock()
        self._udp, self._tcp = self._bind(host, port)
        self.host, self.port = host, self._udp.server_address[1]
        for server in (self._udp, self._tcp):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _bind(self, host: str, port: int) -> tuple[socketserver.UDPServer, socketserver.TCPServer]:
        """UDP and TCP servers on one port; with port 0, a port free for both (a free UDP port may be
        taken for TCP by another process: then another one is tried)."""
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        attempts = 1 if port else 20
        while True:
            attempts -= 1
            udp = socketserver.ThreadingUDPServer((host, port), self._udp_handler())
            try:
                tcp = socketserver.ThreadingTCPServer((host, udp.server_address[1]), self._tcp_handler())
            except OSError:
                udp.server_close()
                if attempts <= 0:
                    raise
                continue
            return udp, tcp

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def add(self, records: str) -> None:
        self.records.extend(RR.fromZone(records))

    def close(self) -> None:
        for server in (self._udp, self._tcp):
            server.shutdown()
            server.server_close()

    def add_extra(self, name: str, records: str) -> None:
        """Add ``records`` (zone-file text, other names) to the answer, authority and additional
        sections of every answer for ``name``."""
        self.extra[name] = RR.fromZone(records)

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
        options = tuple((o.code, o.data) for rr in query.ar if rr.rtype == QTYPE.OPT for o in rr.rdata)
        with self._lock:
            self.asked[(qname, qtype, transport)] += 1
            self.rd_bits[(qname, qtype, bool(query.header.rd))] += 1
            self.options.append((qname, options))
        if self.down or qname in self.silent:
            return []
        if qname in self.slow or self.delay:
            time.sleep(self.slow.get(qname, self.delay))
        if qname in self.garbage:
            return [b"\xde\xad\xbe\xef" * 4]
        packed = self._answer(query, qname, transport)
        if transport in self.cut.get(qname, ()):
            return [packed[: len(packed) - 3]]
        if qname in self.spoof_first:
            wrong = bytearray(packed)
            wrong[0] ^= 0xFF
            return [bytes(wrong), packed]
        if qname in self.wrong_question:
            return [forged_answer(query, f"other.{qname}"), packed]
        return [packed]

    def _answer(self, query: DNSRecord, qname: str, transport: str) -> bytes:
        reply = query.reply(ra=True, aa=True)
        if qname in self.by_subnet:
            return self._by_subnet(query, qname, reply)
        if qname in self.rcodes:
            reply.header.rcode = self.rcodes[qname]
            return reply.pack()
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
        for extra in self.extra.get(qname, ()):
            reply.add_answer(extra)
            reply.add_auth(extra)
            reply.add_ar(extra)
        if qname in self.ttl:  # on copies: the table keeps its own TTLs
            reply.rr, reply.auth, reply.ar = (
                [copy.copy(rr) for rr in section] for section in (reply.rr, reply.auth, reply.ar)
            )
            for rr in (*reply.rr, *reply.auth, *reply.ar):
                rr.ttl = self.ttl[qname]
        if transport == "udp" and qname in self.truncate:
            reply.rr = []
            reply.header.tc = 1
        return reply.pack()

    def _by_subnet(self, query: DNSRecord, qname: str, reply: DNSRecord) -> bytes:
        ecs = [o.data for rr in query.ar if rr.rtype == QTYPE.OPT for o in rr.rdata if o.code == ECS]
        address = self.by_subnet[qname].get(client_subnet(ecs[0])) if ecs else None
        if address is None:
            reply.header.rcode = RCODE.REFUSED
            return reply.pack()
        reply.add_answer(*RR.fromZone(f"{qname}. 60 IN A {address}"))
        scoped = ecs[0][:3] + ecs[0][2:3] + ecs[0][4:]  # scope prefix = source prefix
        reply.add_ar(EDNS0(opts=[EDNSOption(ECS, scoped)]))
        return reply.pack()

    def _race(self, data: bytes, client: tuple[str, int]) -> None:
        """Send forged answers to ``client`` from other sockets, before the real answer."""
        query = DNSRecord.parse(data)
        for host in self.race.get(str(query.q.qname).lower().rstrip("."), ()):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
                forger.bind((host, 0))
                forger.sendto(forged_answer(query), client)

    def _udp_handler(self) -> type:
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                replies = fake.reply(data, "udp")
                with fake._lock:
                    fake.sources.append((*self.client_address[:2], int.from_bytes(data[:2]), _name(data)))
                if replies and fake.race:
                    fake._race(data, self.client_address)
                    time.sleep(0.05)  # the forgeries arrive well before the real answer
                for message in replies:
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


def _name(data: bytes) -> str:
    try:
        return str(DNSRecord.parse(data).q.qname).lower().rstrip(".")
    except Exception:
        return ""


@contextmanager
def upstream(records: str = "", **where: object) -> Iterator[FakeUpstream]:
    fake = FakeUpstream(records, **where)
    try:
        yield fake
    finally:
        fake.close()
