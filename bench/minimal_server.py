"""The minimal UDP DNS server the benchmark compares kdns with: a dict of pre-packed responses.

At start-up it asks kdns (``--kdns-port``) every distinct question of the query file, plus the SOA of
each zone for the harness's readiness check, with the same bytes dnsperf sends (no EDNS, RD set), and
keeps each response as kdns packed it. Per query it does what no server can do less of: find the end
of the question, lowercase the name, one dict lookup, then send the stored response with the query's
ID and question bytes spliced in (kdns's answers point at the question for their owner names, so the
query's case carries through). Anything not in the dict gets REFUSED.

Usage: ``python -m bench.minimal_server --kdns-port PORT --queries FILE [--port 0] [--loop uvloop|asyncio]``
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import struct
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

HOST = "127.0.0.1"
ZONES = ("cluster.local", "in-addr.arpa", "ip6.arpa")
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
REFUSED = 5
Responses = dict[bytes, tuple[bytes, bytes]]


def questions(query_file: Path) -> list[tuple[str, str]]:
    """The distinct ``(name, type)`` pairs of a dnsperf query file, then each zone's SOA."""
    seen: dict[tuple[str, str], None] = {}
    for line in query_file.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            seen[fields[0], fields[1].upper()] = None
    for zone in ZONES:
        seen[zone, "SOA"] = None
    return list(seen)


def qtype_number(name: str) -> int:
    if name in TYPES:
        return TYPES[name]
    if name.startswith("TYPE") and name[4:].isdigit():
        return int(name[4:])
    raise ValueError(f"unknown query type {name!r}")


def make_query(qid: int, name: str, qtype: str) -> bytes:
    """A query as dnsperf sends it: RD set, one question of class IN, no EDNS."""
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.rstrip(".").split("."))
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return header + labels + b"\0" + struct.pack("!HH", qtype_number(qtype), 1)


def question_end(data: bytes) -> int:
    """Where the question ends: names in questions are uncompressed, and host names hold no zero byte,
    so the name ends at the first zero from offset 12; type and class follow."""
    return data.index(0, 12) + 5


def key_of(data: bytes, end: int) -> bytes:
    """The lowercased name, then type and class as they are."""
    return data[12 : end - 4].lower() + data[end - 4 : end]


def ask_all(pairs: Iterable[tuple[str, str]], port: int, timeout: float = 2.0) -> list[tuple[bytes, bytes]]:
    """``(query, response)`` for each question, asked of kdns on ``port`` one at a time."""
    exchanges = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((HOST, port))
        for qid, (name, qtype) in enumerate(pairs):
            query = make_query(qid & 0xFFFF, name, qtype)
            for _attempt in range(3):
                sock.send(query)
                try:
                    response = sock.recv(65535)
                except TimeoutError:
                    continue
                if response[:2] == query[:2]:
                    break
            else:
                raise TimeoutError(f"kdns on port {port} does not answer {name} {qtype}")
            end = question_end(query)
            if response[12:end] != query[12:end]:
                raise ValueError(f"kdns answered {name} {qtype} with another question")
            exchanges.append((query, response))
    return exchanges


def fetch(pairs: Iterable[tuple[str, str]], port: int) -> Responses:
    """kdns's response to each question, split around the question: ``key -> (header[2:], rest)``."""
    responses: Responses = {}
    for query, response in ask_all(pairs, port):
        end = question_end(query)
        responses[key_of(query, end)] = (response[2:12], response[end:])
    return responses


class MinimalProtocol(asyncio.DatagramProtocol):
    """Answers from ``responses``; everything else gets REFUSED."""

    def __init__(self, responses: Responses) -> None:
        self.responses = responses
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            end = data.index(0, 12) + 5
        except ValueError:
            return
        entry = self.responses.get(data[12 : end - 4].lower() + data[end - 4 : end])
        if entry is not None:
            self.transport.sendto(data[:2] + entry[0] + data[12:end] + entry[1], addr)
        elif len(data) >= end:
            flags = 0x8000 | (data[2] & 0x79) << 8 | REFUSED
            self.transport.sendto(data[:2] + struct.pack("!HHHHH", flags, 1, 0, 0, 0) + data[12:end], addr)


async def serve(responses: Responses, port: int, loop_name: str) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: MinimalProtocol(responses), local_addr=(HOST, port)
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound = transport.get_extra_info("sockname")[1]
    print(
        f"ready: listening on {HOST} port {bound} (udp) on {loop_name}; {len(responses)} responses",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.minimal_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--kdns-port", type=int, required=True, help="kdns to take the responses from")
    parser.add_argument("--queries", type=Path, required=True, help="the dnsperf query file")
    parser.add_argument("--port", type=int, default=0, help="UDP port on 127.0.0.1 (default: 0, any)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop")
    args = parser.parse_args(argv)
    responses = fetch(questions(args.queries), args.kdns_port)
    if args.loop == "uvloop":
        import uvloop  # noqa: PLC0415

        uvloop.run(serve(responses, args.port, "uvloop"))
    else:
        asyncio.run(serve(responses, args.port, "asyncio"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
