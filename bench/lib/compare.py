"""Asking two servers the same sample of queries and listing where their responses differ.

Queries go without EDNS, as dnsperf sends them. A difference in rcode, the AA or TC flag, or the
answer section (records sorted, TTLs included) counts as a mismatch; authority and additional
sections are compared too but reported apart, since servers may fill them differently. SOA serials
are left out: kdns numbers each load of the zone, so the dump Knot serves has a serial of its own.
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from bench.lib.servers import HOST


@dataclass(frozen=True, slots=True)
class Reply:
    rcode: str
    flags: tuple[str, ...]
    answer: tuple[str, ...]
    authority: tuple[str, ...]
    additional: tuple[str, ...]

    def brief(self) -> str:
        answer = "; ".join(self.answer) if self.answer else "no answer"
        return f"{self.rcode} [{' '.join(self.flags)}] {answer}"


@dataclass
class Comparison:
    asked: int = 0
    mismatches: list[tuple[str, Reply, Reply]] = field(default_factory=list)
    section_only: list[tuple[str, Reply, Reply]] = field(default_factory=list)


def _without_serial(line: str) -> str:
    fields = line.split()
    if len(fields) == 11 and fields[3] == "SOA":
        fields[6] = "SERIAL"
    return " ".join(fields)


def _lines(section: list) -> tuple[str, ...]:
    return tuple(sorted(_without_serial(line) for rrset in section for line in rrset.to_text().splitlines()))


def ask(port: int, name: str, qtype: str, timeout: float = 2.0) -> Reply:
    query = dns.message.make_query(name, qtype, use_edns=False)
    try:
        response = dns.query.udp(query, HOST, port=port, timeout=timeout)
    except dns.exception.Timeout:
        return Reply("TIMEOUT", (), (), (), ())
    flags = tuple(f for f in ("AA", "TC") if response.flags & dns.flags.Flag[f])
    return Reply(
        dns.rcode.to_text(response.rcode()),
        flags,
        _lines(response.answer),
        _lines(response.authority),
        _lines(response.additional),
    )


def sample(lines: list[str], size: int, seed: int = 1) -> list[tuple[str, str]]:
    """Up to ``size`` distinct ``(name, type)`` pairs of a query file, chosen with ``seed``."""
    distinct = sorted({tuple(line.split()[:2]) for line in lines if line.strip()})
    return random.Random(seed).sample(distinct, min(size, len(distinct)))


def compare(queries: list[tuple[str, str]], port_a: int, port_b: int) -> Comparison:
    result = Comparison()
    for name, qtype in queries:
        a, b = ask(port_a, name, qtype), ask(port_b, name, qtype)
        result.asked += 1
        key = f"{name} {qtype}"
        if (a.rcode, a.flags, a.answer) != (b.rcode, b.flags, b.answer):
            result.mismatches.append((key, a, b))
        elif (a.authority, a.additional) != (b.authority, b.additional):
            result.section_only.append((key, a, b))
    return result


def exchange(port: int, query: bytes, timeout: float = 2.0) -> bytes:
    """The raw response to ``query``, b"" when none comes within ``timeout``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query, (HOST, port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return b""


def identical(queries: list[tuple[str, str]], port_a: int, port_b: int) -> list[str]:
    """The questions whose responses differ in any byte when both servers get the same query bytes; each
    name is asked as written and upper-cased, since answers keep the query's case."""
    differ = []
    for name, qtype in queries:
        for asked in (name, name.upper()):
            query = dns.message.make_query(asked, qtype, use_edns=False).to_wire()
            if exchange(port_a, query) != exchange(port_b, query):
                differ.append(f"{asked} {qtype}")
    return differ
