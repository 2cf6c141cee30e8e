"""The structure-aware query generator the oracle is driven with, and a run of it: queries of any type,
class, opcode and flags, EDNS with any version, size, options and DO bit, several questions, records in
every section, compression pointers and reserved label types in the question, names at and past 255
octets and labels at and past 63, binary labels, counts that lie, truncated packets and trailing
garbage. Its ``Choices`` come from ``random.Random`` (``RandomChoices``, for millions of packets) or
from hypothesis in the tests, so that a failure shrinks to a small packet.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from tests.support.fuzz_targets import build_zone, make_targets, zone_names
from tests.support.oracle import CD, ERROR, OPCODE, OPT, QR, RD, Defect, Z, check_packet
from tests.support.packets import labels_wire

T = TypeVar("T")


# -- choices: one generator, driven by random.Random or by hypothesis ---------------------------------
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


def make_name(c: Choices, names: Sequence[bytes]) -> bytes:
    """A question name in wire form: usually one the zone or an upstream knows, else anything."""
    kind = c.integer(0, 11)
    if kind <= 5:
        prefix = labels_wire([_label(c) for _ in range(c.integer(0, 2))]) if kind == 5 else b""
        return _case(c, prefix + c.choice(names))
    if kind == 6:  # random labels, sometimes in front of a zone name
        suffix = c.choice(names) if c.chance(0.5) else b"\x00"
        return labels_wire([_label(c) for _ in range(c.integer(1, 4))]) + suffix
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
        prefix = labels_wire([_label(c) for _ in range(c.integer(0, 2))])
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


# -- a run: generated queries through the oracle ------------------------------------------------------
@dataclass
class Tally:
    """What a run did: packets checked, seconds taken, verdicts counted, the first defects (packet, why)."""

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
