"""``python -m bench.fuzz``: pushes generated DNS packets through kdns's packet path and checks every reply.

``make fuzz`` (or ``.venv/bin/python -m bench.fuzz --packets 1000000 --jobs 2``) runs two fuzzers:

- a structure-aware generator (``make_query``): queries of any type, class, opcode and flags, EDNS
  with any version, size, options and DO bit, several questions, records in every section,
  compression pointers and reserved label types in the question, names at and past 255 octets and
  labels at and past 63, binary labels, counts that lie, truncated packets and trailing garbage;
- with ``--atheris-runs N`` (atheris installed), libFuzzer's coverage-guided mutation of raw bytes,
  seeded from ``tests/corpus/packets``, over instrumented kdns and dnslib code.

Each packet goes through ``Responder.respond`` over UDP and TCP for two targets: the example zone
(``zones/example.yaml`` plus a large headless Service) answered authoritatively with names outside
it REFUSED, and the same zone with forwarding on, a forward cache holding a few answers, round-robin
rotation and a search-path namespace for the client. ``check_packet`` holds it to ``verdict`` (the
rules of RFC 1035, 6891, 8482, 7766 as kdns applies them) and to ``check_reply``: no exception escapes;
nothing is dropped but what ``verdict`` drops; every reply parses with dnspython and carries the
query's ID and QR; FORMERR, NOTIMP, BADVERS and REFUSED exactly where the rules put them; UDP replies
fit the client's buffer with TC set exactly when records of the answer or authority were cut; ANY
gets one RRset; no record is added that the answer does not need. The fast path must answer byte for
byte as the full parse does. ``--distill`` keeps a coverage-distilled set of the inputs seen in
``tests/corpus/packets`` (libFuzzer's merge), which ``tests/test_packet_corpus.py`` replays.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import multiprocessing
import random
import re
import struct
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.rdatatype
import dnslib

from kdns.cluster.convert import to_object
from kdns.config import CacheSettings, ServeConfig, ZoneSettings
from kdns.resolver import Resolver
from kdns.responder import TCP4, TCP6, UDP4, UDP6, Responder
from kdns.sources.snapshot import read_snapshot
from kdns.upstream.cache import ResponseCache
from kdns.wire.packed import Packed, pack_records
from kdns.wire.pending import PendingQuery
from kdns.zone.cluster_zone import ClusterZone

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "zones" / "example.yaml"
CORPUS = ROOT / "tests" / "corpus" / "packets"
OUT = ROOT / "bench" / "out" / "fuzz"
T = TypeVar("T")

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, BADVERS = 0, 1, 2, 3, 4, 5, 16
OPT, SRV, NS, IXFR, AXFR, ANY = 41, 33, 2, 251, 252, 255
QR, OPCODE, AA, TC, RD, Z, CD = 0x8000, 0x7800, 0x0400, 0x0200, 0x0100, 0x0040, 0x0010
MAX_UDP = 1232  # kdns's default --max-udp-size
CLIENT = "10.244.1.7"  # the client of the forwarding target, whose pod lives in namespace "shop"


# -- choices: one generator, driven by random.Random here and by hypothesis in the tests ------------------
class Choices(Protocol):
    def integer(self, low: int, high: int) -> int: ...

    def chance(self, probability: float) -> bool: ...

    def choice(self, options: Sequence[T]) -> T: ...

    def binary(self, low: int, high: int) -> bytes: ...


class RandomChoices:
    """``Choices`` from a seeded ``random.Random``: fast enough for millions of packets."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        return self._random.randint(low, high)

    def chance(self, probability: float) -> bool:
        return self._random.random() < probability

    def choice(self, options: Sequence[T]) -> T:
        return options[self._random.randrange(len(options))]

    def binary(self, low: int, high: int) -> bytes:
        return self._random.randbytes(self._random.randint(low, high))


# -- the structure-aware generator --------------------------------------------------------------------
QTYPES = (1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 43, 48, 65, 99, 249, 250, 251, 252, 253, 254, 255, 0, 65535)
COMMON_QTYPES = (1, 1, 28, 33, 12, 5, 6, 2, 16, 255)
QCLASSES = (1, 1, 1, 1, 1, 1, 3, 4, 254, 255, 0, 65535)  # IN, CH, HS, NONE, ANY, reserved
UDP_SIZES = (0, 1, 511, 512, 513, 1024, 1232, 1233, 1400, 4096, 65535)
OPTION_CODES = (3, 8, 9, 10, 11, 12, 15, 65001, 0, 65535)
HEAVY = ("crowd.shop.svc.cluster.local", "_http._tcp.crowd.shop.svc.cluster.local", "big.example.com")
OUTSIDE = ("example.com", "www.example.com", "nx.example.com", "big.example.com", "version.bind", "com", "")


def _case(c: Choices, wire: bytes) -> bytes:
    """``wire`` with some letters' case flipped (0x20 clients)."""
    if not c.chance(0.5):
        return wire
    out = bytearray(wire)
    for i, byte in enumerate(out):
        if 0x61 <= (byte | 0x20) <= 0x7A and c.chance(0.3):
            out[i] = byte ^ 0x20
    return bytes(out)


def _label(c: Choices) -> bytes:
    match c.integer(0, 5):
        case 0:
            return c.binary(1, 63)  # binary: zero bytes, dots, uppercase, anything
        case 1:
            return b"x" * c.choice((1, 62, 63))
        case 2:
            return c.choice((b"a\x00b", b"\x00", b"a.b", b"*", b"_tcp", b"_http", b" ", b"\xff", b"A"))
        case _:
            return bytes(c.choice(b"abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(c.integer(1, 12)))


def _labels_wire(labels: Sequence[bytes]) -> bytes:
    return b"".join(bytes([len(label)]) + label for label in labels)


def make_name(c: Choices, names: Sequence[bytes]) -> bytes:
    """A question name in wire form: usually one the zone or an upstream knows, else anything."""
    kind = c.integer(0, 11)
    if kind <= 5:
        prefix = _labels_wire([_label(c) for _ in range(c.integer(0, 2))]) if kind == 5 else b""
        return _case(c, prefix + c.choice(names))
    if kind == 6:  # random labels, sometimes in front of a zone name
        suffix = c.choice(names) if c.chance(0.5) else b"\x00"
        return _labels_wire([_label(c) for _ in range(c.integer(1, 4))]) + suffix
    if kind == 7:  # about 255 octets: at, just under and past the limit
        total = c.choice((253, 254, 255, 256, 257, 300))
        suffix = c.choice(names) if c.chance(0.5) else b"\x00"
        out = b""
        while len(out) + len(suffix) < total:
            room = total - len(out) - len(suffix) - 1
            size = min(63, room) if room > 0 else 1
            out += bytes([size]) + b"a" * size
        return out + suffix
    if kind == 8:  # a label of 63, 64 (a reserved label type) or more octets
        size = c.choice((63, 64, 65, 127, 191))
        return bytes([size]) + b"b" * min(size, 70) + c.choice(names)
    if kind == 9:  # a compression pointer, alone or after labels
        target = c.choice((12, 0, 13, 16, 0x3FFF, c.integer(0, 0x3FFF)))
        prefix = _labels_wire([_label(c) for _ in range(c.integer(0, 2))])
        return prefix + struct.pack("!H", 0xC000 | target)
    if kind == 10:  # reserved label types 0x40 and 0x80 (RFC 6891 retired EDNS0 extended labels)
        return bytes([c.choice((0x40, 0x41, 0x7F, 0x80, 0xBF))]) + c.binary(0, 8) + b"\x00"
    return c.choice((b"\x00", b"", c.binary(0, 20)))


def _record(c: Choices, names: Sequence[bytes]) -> bytes:
    owner = c.choice((b"\x00", b"\xc0\x0c", c.choice(names), make_name(c, names)))
    rtype = c.choice(QTYPES) if c.chance(0.8) else c.integer(0, 65535)
    rdata = c.binary(0, 40)
    rdlength = len(rdata) if c.chance(0.95) else c.integer(0, 80)
    return owner + struct.pack("!HHIH", rtype, c.choice(QCLASSES), c.integer(0, 0xFFFFFFFF), rdlength) + rdata


def make_opt(c: Choices) -> bytes:
    """An OPT record: any UDP size, extended rcode, version, DO bit, Z bits and options."""
    owner = b"\x00" if c.chance(0.95) else c.choice((b"\x03foo\x00", b"\xc0\x0c"))
    size = c.choice(UDP_SIZES) if c.chance(0.8) else c.integer(0, 65535)
    extended = 0 if c.chance(0.9) else c.integer(0, 255)
    version = 0 if c.chance(0.85) else c.choice((1, 2, 255))
    flags = 0x8000 if c.chance(0.5) else 0
    if c.chance(0.05):
        flags |= c.integer(0, 0x7FFF)
    options = b""
    for _ in range(c.choice((0, 0, 0, 1, 1, 2, 5))):
        data = c.binary(0, 24)
        length = len(data) if c.chance(0.9) else c.integer(0, 40)
        options += struct.pack("!HH", c.choice(OPTION_CODES), length) + data
    rdlength = len(options) if c.chance(0.95) else c.integer(0, 60)
    ttl = extended << 24 | version << 16 | flags
    return owner + struct.pack("!HHIH", OPT, size, ttl, rdlength) + options


def _flags(c: Choices) -> int:
    if c.chance(0.6):
        return c.choice((RD, RD, RD | 0x0020, RD | CD, 0, RD | Z))
    flags = c.integer(0, 0xFFFF)
    if c.chance(0.8):
        flags &= ~QR
    if c.chance(0.6):
        flags &= ~OPCODE
    return flags


def make_query(c: Choices, names: Sequence[bytes]) -> bytes:
    """One query packet; often well formed, often not, in every way the rules tell apart."""
    qid = c.integer(0, 0xFFFF)
    if c.chance(0.3):  # the common shape: what the fast path serves
        question = _case(c, c.choice(names)) + struct.pack("!HH", c.choice(COMMON_QTYPES), 1)
        opt = make_opt(c) if c.chance(0.5) else b""
        flags = c.choice((RD, RD, RD | 0x0020, RD | CD, 0))
        return struct.pack("!6H", qid, flags, 1, 0, 0, 1 if opt else 0) + question + opt
    questions = [
        make_name(c, names)
        + struct.pack(
            "!HH",
            c.choice(QTYPES) if c.chance(0.9) else c.integer(0, 65535),
            c.choice(QCLASSES) if c.chance(0.9) else c.integer(0, 65535),
        )
        for _ in range(c.choice((1, 1, 1, 1, 1, 1, 0, 2, 3)))
    ]
    answers = [_record(c, names) for _ in range(c.choice((0, 0, 0, 0, 1, 2)))]
    authority = [_record(c, names) for _ in range(c.choice((0, 0, 0, 0, 1)))]
    additional = [_record(c, names) for _ in range(c.choice((0, 0, 0, 0, 1)))]
    if c.chance(0.6):
        additional.insert(c.integer(0, len(additional)), make_opt(c))
    if c.chance(0.03):
        additional.append(make_opt(c))  # a second OPT
    if c.chance(0.03):
        answers.append(make_opt(c))  # an OPT outside the additional section
    counts = [len(questions), len(answers), len(authority), len(additional)]
    if c.chance(0.05):
        counts[c.integer(0, 3)] = c.choice((0, 1, 2, 3, 0xFFFF))
    packet = struct.pack("!6H", qid, _flags(c), *counts) + b"".join(
        (*questions, *answers, *authority, *additional)
    )
    if c.chance(0.04):
        packet = packet[: c.integer(0, len(packet))]  # truncated
    if c.chance(0.04):
        packet += c.binary(1, 20)  # trailing garbage
    if c.chance(0.04) and packet:
        i = c.integer(0, len(packet) - 1)
        packet = packet[:i] + bytes([c.integer(0, 255)]) + packet[i + 1 :]
    return packet


# -- the rules ----------------------------------------------------------------------------------------
DROP, ERROR, BAD_VERSION, ANSWER = "drop", "error", "badvers", "answer"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the RFCs (as README.md's "How it answers" applies them) say a server does with a packet.

    ``action``: ``drop`` (no reply), ``error`` (a header-only reply with ``rcode``), ``badvers``
    (BADVERS with the question and an OPT) or ``answer``; for the last two, where the question ends,
    the question and the OPT's UDP size (``None`` without EDNS) and DO bit."""

    action: str
    rcode: int = NOERROR
    end: int = 0
    qname: tuple[bytes, ...] = ()  # lowercased labels
    qtype: int = 0
    qclass: int = 0
    edns_size: int | None = None
    do: bool = False

    def udp_limit(self, max_udp: int = MAX_UDP) -> int:
        """RFC 1035 4.2.1: 512 octets; RFC 6891 6.2.5: the advertised size, at least 512, at most ours."""
        if self.edns_size is None:
            return 512
        return min(max(self.edns_size, 512), max_udp)


def _name_end(packet: bytes, i: int, *, pointers: bool) -> int | None:
    """Where the name at ``i`` ends, or ``None`` when it is cut short or uses a reserved label type
    (RFC 1035 4.1.4, RFC 6891 5), or a pointer where none may be."""
    while True:
        if i >= len(packet):
            return None
        length = packet[i]
        if length == 0:
            return i + 1
        if length >= 0xC0:
            return i + 2 if pointers and i + 2 <= len(packet) else None
        if length > 63:
            return None
        i += length + 1


def verdict(packet: bytes) -> Verdict:
    """The fate of one query, in the order the checks apply:

    1. shorter than a header (12 octets): dropped, there is no ID to answer (RFC 1035 4.1.1);
    2. QR set: a response, dropped (answering responses makes loops);
    3. OPCODE other than QUERY (0): NOTIMP (RFC 1035 4.1.1);
    4. QDCOUNT other than 1: FORMERR (RFC 9619);
    5. the question cut short, a label of 64+ octets (reserved types) or a compression pointer in it
       (it has nothing before it to point at), or a name past 255 octets (RFC 1035 2.3.4): FORMERR;
    6. QTYPE OPT: FORMERR (RFC 6891 6.1.1: OPT is a pseudo-record of the additional section);
    7. a record that the counts announce missing or cut short, or octets after the last one: FORMERR;
    8. an OPT outside the additional section, a second OPT, or one not owned by the root: FORMERR
       (RFC 6891 6.1.1);
    9. an OPT with a version other than 0: BADVERS (RFC 6891 6.1.3);
    10. anything else is answered (REFUSED, NOERROR, NXDOMAIN... see ``expected_rcodes``).
    Records in the answer and authority sections of a query, unknown EDNS options and other
    types (TSIG included) are ignored (RFC 6891 6.1.2)."""
    if len(packet) < 12:
        return Verdict(DROP)
    _, flags, qdcount, ancount, nscount, arcount = struct.unpack_from("!6H", packet)
    if flags & QR:
        return Verdict(DROP)
    if flags & OPCODE:
        return Verdict(ERROR, NOTIMP)
    if qdcount != 1:
        return Verdict(ERROR, FORMERR)
    qend = _name_end(packet, 12, pointers=False)
    if qend is None or qend - 12 > 255 or qend + 4 > len(packet):
        return Verdict(ERROR, FORMERR)
    qtype, qclass = struct.unpack_from("!HH", packet, qend)
    if qtype == OPT:
        return Verdict(ERROR, FORMERR)
    i, opt = qend + 4, None
    for n in range(ancount + nscount + arcount):
        owner = i
        i = _name_end(packet, i, pointers=True)
        if i is None or i + 10 > len(packet):
            return Verdict(ERROR, FORMERR)
        rtype, rclass, ttl, rdlength = struct.unpack_from("!HHIH", packet, i)
        i += 10 + rdlength
        if i > len(packet):
            return Verdict(ERROR, FORMERR)
        if rtype == OPT:
            if n < ancount + nscount or opt is not None or packet[owner] != 0:
                return Verdict(ERROR, FORMERR)
            opt = (rclass, ttl)
    if i != len(packet):
        return Verdict(ERROR, FORMERR)
    labels, j = [], 12
    while packet[j]:
        labels.append(packet[j + 1 : j + 1 + packet[j]].lower())
        j += packet[j] + 1
    question = {"end": qend + 4, "qname": tuple(labels), "qtype": qtype, "qclass": qclass}
    if opt is None:
        return Verdict(ANSWER, **question)
    size, ttl = opt
    edns = {"edns_size": size, "do": bool(ttl & 0x8000)}
    if (ttl >> 16) & 0xFF:
        return Verdict(BAD_VERSION, BADVERS, **question, **edns)
    return Verdict(ANSWER, **question, **edns)


# -- the targets --------------------------------------------------------------------------------------
class NamespaceOf:
    """Search paths for one client: its pod lives in ``shop``; no search result is cached."""

    def namespace_of(self, client: str) -> str | None:
        return "shop" if client == CLIENT else None

    def cached(self, key: bytes) -> Packed | None:
        return None


@dataclass
class Target:
    """A responder set up one way, and what its answers must look like."""

    name: str
    responder: Responder
    apexes: tuple[tuple[bytes, ...], ...]
    forwarding: bool
    cached: dict[bytes, int] = field(default_factory=dict)  # forward cache keys -> their rcode
    client: str | None = None
    deterministic: bool = True  # the same query gets the same bytes (no rotation)

    def within(self, labels: tuple[bytes, ...]) -> bool:
        return any(
            labels[len(labels) - len(apex) :] == apex for apex in self.apexes if len(apex) <= len(labels)
        )


def big_service() -> list[dict]:
    """A headless Service with many endpoints of both families, so answers need truncating."""
    slices = []
    for family, count, make in (
        ("IPv4", 100, lambda n: f"10.77.{n // 200}.{n % 200 + 1}"),
        ("IPv6", 40, lambda n: f"fd00:77::{n + 1:x}"),
    ):
        slices.append(
            {
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"crowd-{family.lower()}",
                    "namespace": "shop",
                    "labels": {"kubernetes.io/service-name": "crowd"},
                },
                "addressType": family,
                "endpoints": [
                    {"addresses": [make(n)], "hostname": f"member-{n}", "conditions": {"ready": True}}
                    for n in range(count)
                ],
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            }
        )
    service = {
        "kind": "Service",
        "metadata": {"name": "crowd", "namespace": "shop"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }
    return [service, *slices]


def _wire(text: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in text.split(".") if label) + b"\x00"


def _forward_cache() -> tuple[ResponseCache, dict[bytes, int]]:
    """Upstream answers as the forwarder would have cached them: a plain one, a large one, a
    negative one; for queries with and without DO. The clock stands still, so they never expire."""
    cache = ResponseCache(CacheSettings(), clock=lambda: 1000.0)
    keys: dict[bytes, int] = {}
    answers = {
        "example.com": (NOERROR, [dnslib.RR("example.com", 1, rdata=dnslib.A("192.0.2.1"), ttl=60)]),
        "www.example.com": (
            NOERROR,
            [
                dnslib.RR("www.example.com", 5, rdata=dnslib.CNAME("example.com"), ttl=60),
                dnslib.RR("example.com", 1, rdata=dnslib.A("192.0.2.1"), ttl=60),
            ],
        ),
        "big.example.com": (
            NOERROR,
            [dnslib.RR("big.example.com", 1, rdata=dnslib.A(f"192.0.2.{n}"), ttl=60) for n in range(1, 121)],
        ),
        "nx.example.com": (NXDOMAIN, []),
    }
    soa = dnslib.RR(
        "example.com", 6, rdata=dnslib.SOA("ns.example.com", "h.example.com", (1, 2, 3, 4, 30)), ttl=30
    )
    for name, (rcode, records) in answers.items():
        question = _wire(name) + struct.pack("!HH", 1, 1)
        record = dnslib.DNSRecord(dnslib.DNSHeader(qr=1, rcode=rcode), q=dnslib.DNSQuestion(name))
        record.rr = records
        record.auth = [soa] if rcode else []
        packed = pack_records(rcode, (record.rr, record.auth, []), _wire(name), question[-4:])
        for key in (question, question + b"\x01"):
            cache.put(key, packed, record)
            keys[key] = rcode
    return cache, keys


def build_zone() -> ClusterZone:
    zone = ClusterZone(ZoneSettings())
    zone.load([*read_snapshot(EXAMPLE), *(to_object(raw) for raw in big_service())])
    return zone


def make_targets(zone: ClusterZone | None = None, *, cache_size: int = 2000) -> list[Target]:
    """The two ways the fuzzer runs kdns (see the module docstring)."""
    zone = zone or build_zone()
    apexes = tuple(
        tuple(label.lower() for label in apex.split(b".") if label)
        for apex in (z.encode() for z in zone.settings.zones)
    )
    max_udp_size = ServeConfig().max_udp_size
    authoritative = Responder(
        Resolver(zone.index, zone.layout, zone.settings), max_udp_size=max_udp_size, cache_size=cache_size
    )
    cache, keys = _forward_cache()
    forwarding = Responder(
        Resolver(zone.index, zone.layout, zone.settings, forwarding=True),
        max_udp_size=max_udp_size,
        cache_size=cache_size,
        recursion_available=True,
        forward_cache=cache.get,
        loadbalance=True,
    )
    forwarding.autopath = NamespaceOf()
    return [
        Target("authoritative", authoritative, apexes, forwarding=False),
        Target(
            "forwarding", forwarding, apexes, forwarding=True, cached=keys, client=CLIENT, deterministic=False
        ),
    ]


def zone_names(zone: ClusterZone) -> list[bytes]:
    """Names the generator starts from: every name of the zone, some computed and some outside."""
    names = sorted(zone.index.nodes)
    names += [_wire(n) for n in ("10-244-1-7.shop.pod.cluster.local", "10-1-2-3.nope.pod.cluster.local")]
    names += [
        _wire(n)
        for n in ("7.1.244.10.in-addr.arpa", "1.0.0.10.in-addr.arpa", "missing.shop.svc.cluster.local")
    ]
    names += [_wire(n) for n in OUTSIDE]
    return names + [_wire(n) for n in HEAVY] * 6  # answers that need truncating, often


# -- the checks ---------------------------------------------------------------------------------------
class Defect(AssertionError):
    """A reply (or its absence, or an exception) that breaks the rules."""


def expected_rcodes(v: Verdict, target: Target) -> set[int]:
    """The rcodes an answered query may get: REFUSED for other classes and zone transfers (README),
    and outside the zones when nothing forwards them; an authoritative rcode inside them; what the
    forward cache holds outside them."""
    if v.qclass != 1 or v.qtype in (AXFR, IXFR):
        return {REFUSED}
    if target.within(v.qname):
        return {NOERROR, NXDOMAIN, SERVFAIL}
    if not target.forwarding:
        return {REFUSED}
    key = _wire_key(v)
    return {target.cached[key]} if key in target.cached else set()  # else a delegation, not bytes


def _wire_key(v: Verdict) -> bytes:
    return _labels_wire(v.qname) + b"\x00" + struct.pack("!HH", v.qtype, v.qclass)


def _fail(message: str) -> None:
    raise Defect(message)


_parsed: dict[bytes, dns.message.Message] = {}
PARSED_KEPT = 50_000


def _parse(reply: bytes) -> dns.message.Message:
    """dnspython's reading of ``reply``; replies equal but for the ID (checked apart) are read once."""
    key = reply[2:]
    message = _parsed.get(key)
    if message is not None:
        return message
    try:
        message = dns.message.from_wire(reply, ignore_trailing=False)
    except dns.exception.DNSException as exc:
        raise Defect(f"dnspython cannot parse the reply {reply[:80]!r}: {exc!r}") from None
    if len(_parsed) >= PARSED_KEPT:
        _parsed.clear()
    _parsed[key] = message
    return message


def check_reply(
    packet: bytes, v: Verdict, target: Target, tcp: bool, reply: object
) -> dns.message.Message | None:
    """Hold one reply to the rules; the parsed reply when there is one."""
    if v.action == DROP:
        if reply is not None:
            _fail(f"expected no reply, got {reply!r}")
        return None
    if reply is None:
        _fail("dropped a query that must be answered")
    qid, qflags = struct.unpack_from("!HH", packet)
    if isinstance(reply, PendingQuery):
        _check_delegation(packet, v, target, tcp, reply)
        return None
    if not isinstance(reply, bytes):
        _fail(f"reply of type {type(reply).__name__}")
    message = _parse(reply)
    flags = message.flags
    if reply[:2] != packet[:2] or not flags & QR:
        _fail(f"reply ID {reply[:2].hex()} / flags {flags:#06x} to query {qid}")
    if (flags & OPCODE) != (qflags & OPCODE) or (flags & (RD | CD)) != (qflags & (RD | CD)):
        _fail(f"opcode, RD or CD not copied (RFC 1035 4.1.1, RFC 4035 3.2.2): {flags:#06x} for {qflags:#06x}")
    if flags & Z:
        _fail("Z bit set in a reply")
    if v.action == ERROR:
        if len(reply) != 12 or message.rcode() != v.rcode:
            _fail(f"expected a header-only rcode {v.rcode}, got {message.rcode()} in {len(reply)} octets")
        return message
    if reply[12 : v.end] != packet[12 : v.end] or len(message.question) != 1:
        _fail("the question is not echoed as asked")
    if (message.edns >= 0) != (v.edns_size is not None):
        _fail(f"EDNS {message.edns} in the reply to a query with EDNS size {v.edns_size}")
    if message.edns >= 0:
        if message.edns != 0 or message.payload != target.responder.max_udp_size or message.options:
            _fail(f"reply OPT: version {message.edns}, size {message.payload}, {message.options}")
        if bool(message.ednsflags & dns.flags.DO) != v.do:
            _fail("DO bit not echoed")
    rcode = message.rcode()
    if v.action == BAD_VERSION:
        if rcode != BADVERS or message.answer or message.authority or message.additional:
            _fail(f"expected BADVERS alone, got rcode {rcode}")
        return message
    allowed = expected_rcodes(v, target)
    if rcode not in allowed:
        _fail(f"rcode {rcode} where {sorted(allowed) or 'a delegation'} is due")
    if tcp and flags & TC:
        _fail("TC over TCP")
    if not tcp and len(reply) > v.udp_limit(target.responder.max_udp_size):
        _fail(f"{len(reply)} octets over UDP to a client that takes {v.udp_limit()}")
    if rcode == REFUSED and (message.answer or message.authority or message.additional or flags & AA):
        _fail("REFUSED with records or AA")
    if v.qtype == ANY and (len(message.answer) > 1 or message.additional):
        _fail(f"ANY answered with {len(message.answer)} RRsets and {len(message.additional)} more (RFC 8482)")
    if target.within(v.qname):
        _check_in_zone(message)
    return message


def _check_in_zone(message: dns.message.Message) -> None:
    """An authoritative answer holds the question's RRset (after CNAMEs), at most the zone's SOA in
    authority, and in additional only the addresses of SRV and NS targets."""
    owners = {message.question[0].name}
    for rrset in message.answer:
        if rrset.name not in owners:
            _fail(f"answer RRset {rrset.name} {rrset.rdtype} is not on the way to the question's name")
        if rrset.rdtype == 5:
            owners.add(rrset[0].target)
    if len(message.authority) > 1 or any(rrset.rdtype != 6 for rrset in message.authority):
        _fail(f"authority holds more than the SOA: {[r.rdtype for r in message.authority]}")
    if message.additional:
        needed = {r.target for rrset in message.answer if rrset.rdtype in (SRV, NS) for r in rrset}
        extra = [rrset for rrset in message.additional if rrset.name not in needed]
        if extra:
            _fail(f"additional records nobody asked for: {extra[0].name} {extra[0].rdtype}")


def _check_delegation(packet: bytes, v: Verdict, target: Target, tcp: bool, d: PendingQuery) -> None:
    if v.action != ANSWER or not target.forwarding or v.qclass != 1 or v.qtype in (AXFR, IXFR):
        _fail(f"delegated a query that must be answered here ({v.action})")
    if not target.within(v.qname) and _wire_key(v) in target.cached:
        _fail("delegated a question the forward cache holds")
    limit = 65535 if tcp else v.udp_limit(target.responder.max_udp_size)
    if (d.qid, d.end, d.limit, bool(d.opt), d.do) != (
        struct.unpack_from("!H", packet)[0],
        v.end,
        limit,
        v.edns_size is not None,
        v.do,
    ):
        _fail(f"delegation ID {d.qid} end {d.end} limit {d.limit} opt {d.opt!r} DO {d.do}")
    if d.key != packet[12 : v.end - 4].lower() + packet[v.end - 4 : v.end]:
        _fail("delegation key is not the lowercased question")


def _counts(message: dns.message.Message) -> tuple[int, int]:
    return sum(len(r) for r in message.answer), sum(len(r) for r in message.authority)


def check_truncation(udp: dns.message.Message, full: dns.message.Message) -> None:
    """TC exactly when the UDP reply lacks answer or authority records the full (TCP) reply has
    (RFC 2181 9); never more octets or records than the full reply."""
    cut = _counts(udp) != _counts(full)
    if bool(udp.flags & TC) != cut:
        _fail(f"TC {bool(udp.flags & TC)} with {_counts(udp)} of {_counts(full)} records")
    if sum(_counts(udp)) > sum(_counts(full)):
        _fail("the UDP reply holds more records than the full one")


def respond(target: Target, packet: bytes, channel: int) -> object:
    try:
        return target.responder.respond(packet, channel, target.client)
    except Exception as exc:
        raise Defect(f"{type(exc).__name__} escaped the responder: {exc}") from exc


def check_packet(targets: Sequence[Target], packet: bytes) -> Verdict:
    """Push ``packet`` through every target over UDP and TCP; raise ``Defect`` on any broken rule."""
    v = verdict(packet)
    for n, target in enumerate(targets):
        udp_channel, tcp_channel = (UDP4, TCP4) if n % 2 == 0 else (UDP6, TCP6)
        udp = respond(target, packet, udp_channel)
        tcp = respond(target, packet, tcp_channel)
        if target.deterministic and isinstance(udp, bytes):
            full_path = target.responder._respond(packet, udp_channel, target.client)
            if full_path != udp:
                _fail("the fast path answers otherwise than the full parse")
        try:
            parsed_udp = check_reply(packet, v, target, False, udp)
            parsed_tcp = check_reply(packet, v, target, True, tcp)
            if parsed_udp is not None and parsed_tcp is not None and v.action == ANSWER:
                check_truncation(parsed_udp, parsed_tcp)
                if len(udp) > len(tcp):
                    _fail("the UDP reply is longer than the full one")
        except Defect as exc:
            raise Defect(f"{target.name}: {exc}") from None
    return v


# -- running ------------------------------------------------------------------------------------------
@dataclass
class Tally:
    packets: int = 0
    seconds: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)
    defects: list[tuple[bytes, str]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.packets += other.packets
        self.seconds = max(self.seconds, other.seconds)
        for key, count in other.verdicts.items():
            self.verdicts[key] = self.verdicts.get(key, 0) + count
        self.defects += other.defects


def fuzz(packets: int, *, seed: int = 0, seconds: float | None = None, keep_defects: int = 20) -> Tally:
    """Generate and check ``packets`` queries (or as many as fit in ``seconds``)."""
    zone = build_zone()
    targets, names = make_targets(zone), zone_names(zone)
    choices = RandomChoices(seed)
    tally = Tally()
    started = time.perf_counter()
    deadline = started + seconds if seconds else None
    for n in range(packets):
        if deadline is not None and n % 256 == 0 and time.perf_counter() > deadline:
            break
        packet = make_query(choices, names)
        try:
            v = check_packet(targets, packet)
        except Defect as exc:
            if len(tally.defects) < keep_defects:
                tally.defects.append((packet, str(exc)))
            key = "defect"
        else:
            key = v.action if v.action != ERROR else f"rcode {v.rcode}"
        tally.verdicts[key] = tally.verdicts.get(key, 0) + 1
        tally.packets += 1
    tally.seconds = time.perf_counter() - started
    return tally


def _fuzz_job(args: tuple[int, int, float | None]) -> Tally:
    packets, seed, seconds = args
    return fuzz(packets, seed=seed, seconds=seconds)


def save(packet: bytes, directory: Path, prefix: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{prefix}{hashlib.sha1(packet).hexdigest()}"
    path.write_bytes(packet)
    return path


# -- atheris (libFuzzer) ------------------------------------------------------------------------------
def _libfuzzer(argv: list[str]) -> None:
    """Runs inside a child process: libFuzzer exits when done and on the first defect."""
    import atheris  # noqa: PLC0415 (only the fuzz target installs it)

    zone = build_zone()
    targets = make_targets(zone)
    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith(("kdns.", "dnslib")):
            atheris.instrument_func(obj)

    def one_input(data: bytes) -> None:
        check_packet(targets, data)

    atheris.Setup([str(_relauncher()), *argv], one_input)
    atheris.Fuzz()


def _relauncher() -> Path:
    """An executable that starts this fuzz target again: libFuzzer's merge re-runs its own argv[0]."""
    path = OUT / "libfuzzer.sh"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\ncd "{ROOT}" && exec "{sys.executable}" -m bench.fuzz --libfuzzer -- "$@"\n')
    path.chmod(0o755)
    return path


def run_atheris(
    runs: int, *, jobs: int = 1, max_len: int = 700, extra: Sequence[str] = ()
) -> tuple[int, float]:
    """``runs`` coverage-guided inputs per job; returns (inputs run, seconds) from libFuzzer's report."""
    work = OUT / "corpus"
    work.mkdir(parents=True, exist_ok=True)
    (OUT / "artifacts").mkdir(parents=True, exist_ok=True)
    options = [
        f"-runs={runs}",
        f"-max_len={max_len}",
        f"-artifact_prefix={OUT / 'artifacts'}/",
        "-print_final_stats=1",
        *extra,
    ]
    commands = [
        [
            sys.executable,
            "-m",
            "bench.fuzz",
            "--libfuzzer",
            "--",
            *options,
            f"-seed={job + 1}",
            str(work),
            str(CORPUS),
        ]
        for job in range(jobs)
    ]
    started = time.perf_counter()
    processes = [subprocess.Popen(c, cwd=ROOT, stderr=subprocess.PIPE, text=True) for c in commands]
    total, failed = 0, False
    for process in processes:
        _, err = process.communicate(timeout=max(600, runs / 50))
        done = re.search(r"Done (\d+) runs in (\d+) second", err)
        total += int(done[1]) if done else 0
        if process.returncode:
            failed = True
            print(err[-4000:], file=sys.stderr)
    if failed:
        raise SystemExit("atheris found a defect; see the input in bench/out/fuzz/artifacts/")
    return total, time.perf_counter() - started


def distill(generated: int = 3000, seed: int = 7) -> int:
    """Merge what atheris found and ``generated`` structured packets into a minimal set covering the same
    kdns and dnslib code, written to tests/corpus/packets (files found by defects are kept)."""
    zone = build_zone()
    names = zone_names(zone)
    choices = RandomChoices(seed)
    with tempfile.TemporaryDirectory() as tmp:
        seeds = Path(tmp) / "seeds"
        for _ in range(generated):
            save(make_query(choices, names), seeds)
        merged = Path(tmp) / "merged"
        merged.mkdir()
        sources = [d for d in (OUT / "corpus", CORPUS, seeds) if d.exists()]
        command = [
            sys.executable,
            "-m",
            "bench.fuzz",
            "--libfuzzer",
            "--",
            "-merge=1",
            "-max_len=700",
            str(merged),
        ]
        subprocess.run(
            [*command, *map(str, sources)], cwd=ROOT, check=True, timeout=1800, capture_output=True
        )
        kept = {p.name for p in CORPUS.glob("defect-*")} if CORPUS.exists() else set()
        for old in CORPUS.glob("*") if CORPUS.exists() else ():
            if old.name not in kept:
                old.unlink()
        for path in merged.iterdir():
            save(path.read_bytes(), CORPUS)
    return len(list(CORPUS.iterdir()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="structure-aware packets (all jobs)")
    parser.add_argument("--jobs", type=int, default=max(1, multiprocessing.cpu_count()), help="processes")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--seconds", type=float, default=None, help="stop each job after this long")
    parser.add_argument("--atheris-runs", type=int, default=0, help="coverage-guided raw inputs per job")
    parser.add_argument("--distill", action="store_true", help="rewrite tests/corpus/packets afterwards")
    parser.add_argument("--libfuzzer", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.libfuzzer:
        _libfuzzer([a for a in rest if a != "--"])
        return 0
    total, figures = Tally(), {"seed": args.seed, "jobs": args.jobs}
    if args.packets:
        share = -(-args.packets // args.jobs)
        jobs = [(share, args.seed + job, args.seconds) for job in range(args.jobs)]
        started = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            for tally in pool.imap_unordered(_fuzz_job, jobs):
                total.add(tally)
        wall = time.perf_counter() - started
        print(
            f"structure-aware: {total.packets:,} packets in {wall:.1f} s "
            f"({total.packets / wall:,.0f} packets/s over {args.jobs} processes, seed {args.seed}); "
            f"each through 2 responders x UDP and TCP"
        )
        print("  verdicts: " + ", ".join(f"{k} {v:,}" for k, v in sorted(total.verdicts.items())))
        figures |= {"packets": total.packets, "seconds": wall, "verdicts": dict(total.verdicts)}
    raw = 0
    if args.atheris_runs:
        raw, seconds = run_atheris(args.atheris_runs, jobs=args.jobs)
        print(f"atheris: {raw:,} raw inputs in {seconds:.1f} s ({raw / seconds:,.0f}/s, coverage-guided)")
        figures |= {"atheris_inputs": raw, "atheris_seconds": seconds}
    if args.distill:
        print(f"distilled corpus: {distill()} files in {CORPUS.relative_to(ROOT)}")
    print(f"total: {total.packets + raw:,} packets, {len(total.defects)} defects")
    defects = []
    for packet, message in total.defects:
        path = save(packet, OUT / "defects")
        defects.append(f"{path.relative_to(ROOT)}: {message}")
        print(f"DEFECT {defects[-1]}")
    figures |= {"total": total.packets + raw, "defects": defects, "corpus": len(list(CORPUS.glob("*")))}
    readme = report_figures(figures, full=total.packets + raw >= 1_000_000)
    print(f"wrote {readme.relative_to(ROOT)}")
    return 1 if total.defects else 0


def report_figures(figures: dict, *, full: bool) -> Path:
    """The Fuzzing section of bench/README.md (bench/out/README.md for a run under a million)."""
    from bench import report  # noqa: PLC0415 (the libFuzzer children need none of the harness)
    from bench.run import machine  # noqa: PLC0415

    m, now = machine(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    names = {"rcode 1": "FORMERR", "rcode 4": "NOTIMP", "rcode 5": "REFUSED", "badvers": "BADVERS"}
    verdicts = ", ".join(
        f"{names.get(name, name)} {n:,}" for name, n in sorted(figures.get("verdicts", {}).items())
    )
    lines = [
        report.FUZZ_HEADING,
        "",
        f"Written by `python -m bench.fuzz` (`make fuzz`) on {now} ({m['cpu']}, {m['nproc']} CPUs), seed "
        f"{figures['seed']}, {figures['jobs']} processes. Every packet goes through an authoritative "
        "responder (the example cluster and a 140-endpoint headless Service) and a forwarding one (forward "
        "cache, rotation, search paths), over UDP and TCP, and is checked against the RFC rules of "
        "`verdict()`: no exception escapes, drops only where allowed, every reply parses with dnspython "
        "with the query's ID, error replies header-only, UDP replies within the client's size with TC "
        "exactly when records were cut, ANY one RRset, the fast path byte for byte the full parse.",
        "",
    ]
    if "packets" in figures:
        packets, seconds = figures["packets"], figures["seconds"]
        lines.append(
            f"- Structure-aware queries: {packets:,} in {seconds:.0f} s ({packets / seconds:,.0f}/s); "
            f"verdicts: {verdicts}."
        )
    if "atheris_inputs" in figures:
        raw, seconds = figures["atheris_inputs"], figures["atheris_seconds"]
        lines.append(
            f"- Coverage-guided raw bytes (atheris): {raw:,} in {seconds:.0f} s ({raw / seconds:,.0f}/s)."
        )
    found = "; ".join(figures["defects"]) or "none"
    lines += [
        f"- In all {figures['total']:,} packets; defects: {found}.",
        f"- The corpus replayed by `make test` (`tests/corpus/packets`): {figures['corpus']} files.",
        "",
    ]
    readme = ROOT / "bench" / ("README.md" if full else "out/README.md")
    report.write_section(readme, report.FUZZ_HEADING, "\n".join(lines))
    return readme


if __name__ == "__main__":
    sys.exit(main())
