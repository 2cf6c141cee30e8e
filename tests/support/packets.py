"""DNS messages built byte by byte, for what dnspython will not send: any header, counts that lie,
names at and past the limits, OPT records anywhere."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import dns.name


def raw_query(
    name: str = "web.shop.svc.cluster.local",
    qtype: int = 1,
    qclass: int = 1,
    *,
    qid: int = 0x4242,
    flags: int = 0x0100,
    qd: int = 1,
    an: int = 0,
    ns: int = 0,
    ar: int = 0,
) -> bytes:
    """A header with these fields and counts, then one question (whatever the counts say)."""
    header = struct.pack("!6H", qid, flags, qd, an, ns, ar)
    return header + dns.name.from_text(name).to_wire() + struct.pack("!HH", qtype, qclass)


def raw_opt(*, version: int = 0, size: int = 1232, owner: bytes = b"\x00") -> bytes:
    """An OPT record (RFC 6891) with no options."""
    return owner + struct.pack("!HHIH", 41, size, version << 16, 0)


def framed(wire: bytes) -> bytes:
    """A message as it goes over TCP: after its length in two octets (RFC 1035 4.2.2)."""
    return len(wire).to_bytes(2, "big") + wire


def labels_wire(labels: Sequence[bytes]) -> bytes:
    """Labels in wire form, each after its length (no terminating root label)."""
    return b"".join(bytes([len(label)]) + label for label in labels)


def wire_name(text: str) -> bytes:
    """A name in wire form, uncompressed; ``""`` is the root."""
    return labels_wire([label.encode() for label in text.split(".") if label]) + b"\x00"
