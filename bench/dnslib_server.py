"""dnslib's own ``DNSServer`` answering the benchmark's names: the obvious DNS server in Python.

At start-up it takes kdns's response to every distinct question of the query file (as
``bench.minimal_server`` does) and parses each with dnslib into a dict ``(name, qtype) -> DNSRecord``.
Per query, dnslib's ``DNSHandler`` (one thread per datagram, from ``socketserver.ThreadingMixIn``)
parses the query with ``DNSRecord.parse``, the resolver looks up the lowercased question and builds the
reply from the stored header bits and sections, and dnslib packs it. Request logging is off; errors
are logged.

Usage: ``python -m bench.dnslib_server --kdns-port PORT --queries FILE [--port 0]``
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from dnslib import RCODE, DNSHeader, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from bench.minimal_server import HOST, ask_all, questions

Answers = dict[tuple[str, int], DNSRecord]


def answers(port: int, query_file: Path) -> Answers:
    """kdns's responses to the query file's questions, parsed by dnslib."""
    parsed: Answers = {}
    for _query, response in ask_all(questions(query_file), port):
        record = DNSRecord.parse(response)
        parsed[str(record.q.qname).lower(), record.q.qtype] = record
    return parsed


class DictResolver(BaseResolver):
    """Replies with kdns's stored answer to the question, REFUSED when there is none."""

    def __init__(self, stored: Answers) -> None:
        self.stored = stored

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        found = self.stored.get((str(request.q.qname).lower(), request.q.qtype))
        if found is None:
            reply = request.reply()
            reply.header.rcode = RCODE.REFUSED
            return reply
        header = DNSHeader(id=request.header.id, bitmap=found.header.bitmap, q=1)
        return DNSRecord(header, q=request.q, rr=list(found.rr), auth=list(found.auth), ar=list(found.ar))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dnslib_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--kdns-port", type=int, required=True, help="kdns to take the answers from")
    parser.add_argument("--queries", type=Path, required=True, help="the dnsperf query file")
    parser.add_argument("--port", type=int, default=0, help="UDP port on 127.0.0.1 (default: 0, any)")
    args = parser.parse_args(argv)
    stored = answers(args.kdns_port, args.queries)
    logger = DNSLogger("-request,-reply,-truncated,-recv,-send,-data", prefix=False)
    server = DNSServer(DictResolver(stored), address=HOST, port=args.port, logger=logger)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start_thread()
    port = server.server.server_address[1]
    print(
        f"ready: listening on {HOST} port {port} (udp) on dnslib DNSServer; {len(stored)} answers", flush=True
    )
    while not stop.wait(1.0):
        if not server.isAlive():
            return 1
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
