"""One line per query, in the format of CoreDNS's ``log`` plugin:

``127.0.0.1:55231 - 28394 "A IN example.org. udp 41 false 4096" NOERROR qr,rd,ra 68 0.000347s``
(client - id "type class name proto size do bufsize" rcode flags response-size duration).
"""

from __future__ import annotations

import logging

import dnslib

from kdns.codes import EDNS_DO, FLAG_NAMES, NO_EDNS_UDP_SIZE, OPT, RCODE_MASK
from kdns.wire.query import FLAGS, ID
from kdns.zone.names import to_text

log = logging.getLogger("kdns.query")


def log_query(client: tuple, query: bytes, response: bytes, proto: str, seconds: float) -> None:
    log.info("%s", describe(client, query, response, proto, seconds))


def describe(client: tuple, query: bytes, response: bytes, proto: str, seconds: float) -> str:
    host = f"[{client[0]}]" if ":" in client[0] else client[0]
    qid = int.from_bytes(query[ID]) if len(query) >= ID.stop else 0
    question, do, size = _question(query)
    flags = int.from_bytes(response[FLAGS]) if len(response) >= FLAGS.stop else 0
    rcode = dnslib.RCODE.get(flags & RCODE_MASK, str(flags & RCODE_MASK))
    names = ",".join(name for name, bit in FLAG_NAMES if flags & bit)
    return (
        f'{host}:{client[1]} - {qid} "{question} {proto} {len(query)} {str(do).lower()} {size}" '
        f"{rcode} {names} {len(response)} {seconds:.6f}s"
    )


def _question(query: bytes) -> tuple[str, bool, int]:
    try:
        record = dnslib.DNSRecord.parse(query)
        q = record.q
        opt = next((rr for rr in record.ar if rr.rtype == OPT), None)
        name = to_text(b"".join(bytes((len(label),)) + label for label in q.qname.label) + b"\x00")
        text = f"{dnslib.QTYPE.get(q.qtype, q.qtype)} {dnslib.CLASS.get(q.qclass, q.qclass)} {name}"
        if opt is None:
            return text, False, NO_EDNS_UDP_SIZE
        return text, bool(opt.ttl & EDNS_DO), opt.rclass
    except Exception:  # a malformed query still gets its line
        return "- - -", False, 0
