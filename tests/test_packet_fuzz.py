"""Any bytes in, a well-formed reply or nothing out: the packet path never raises."""

from __future__ import annotations

import struct

import dns.edns
import dns.exception
import dns.message
import dns.name
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdns.resolver import Resolver
from kdns.responder import TCP4, TCP6, UDP4, UDP6, Responder
from tests.support import example_zone

NAMES = ["web.shop.svc.cluster.local", "postgres.data.svc.cluster.local", "x.y", "cluster.local", ""]


@pytest.fixture(scope="module")
def responder() -> Responder:
    zone = example_zone()
    return Responder(Resolver(zone.index, zone.layout, zone.settings), cache_size=1000)


def check(responder: Responder, packet: bytes, *, tcp: bool = False) -> None:
    reply = responder.respond(packet, TCP4 if tcp else UDP4)
    if reply is None:
        assert len(packet) < 12 or packet[2] & 0x80
        return
    assert reply[:2] == packet[:2]
    assert len(reply) <= (65535 if tcp else 1232)
    try:
        parsed = dns.message.from_wire(reply, ignore_trailing=False)
    except dns.exception.DNSException as exc:
        raise AssertionError(f"unparseable reply {reply!r} to {packet!r}: {exc}") from exc
    assert parsed.flags & 0x8000


@settings(max_examples=3000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_random_bytes(responder, packet):
    check(responder, packet)


@st.composite
def mutated_queries(draw) -> bytes:
    name = draw(st.sampled_from(NAMES))
    qtype = draw(st.sampled_from([1, 28, 33, 12, 5, 6, 2, 16, 255, 41, 252, 0, 65535]))
    message = dns.message.make_query(
        name or ".", qtype, use_edns=draw(st.sampled_from([False, 0, 1])), payload=draw(st.integers(0, 65535))
    )
    wire = bytearray(message.to_wire())
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "append", "count"]))
        if kind == "flip" and wire:
            i = draw(st.integers(0, len(wire) - 1))
            wire[i] = draw(st.integers(0, 255))
        elif kind == "cut":
            del wire[draw(st.integers(0, len(wire))) :]
        elif kind == "append":
            wire += draw(st.binary(max_size=40))
        elif len(wire) >= 12:
            struct.pack_into("!H", wire, draw(st.sampled_from([4, 6, 8, 10])), draw(st.integers(0, 3)))
    return bytes(wire)


@settings(max_examples=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated_queries(), st.booleans())
def test_mutated_queries(responder, packet, tcp):
    check(responder, packet, tcp=tcp)


def test_well_formed_queries_get_their_answers(responder):
    for name in NAMES[:2]:
        reply = dns.message.from_wire(responder.respond(dns.message.make_query(name, "A").to_wire()))
        assert reply.rcode() == dns.rcode.NOERROR and reply.answer


@st.composite
def cacheable_queries(draw) -> tuple[bytes, int]:
    """Queries of every shape the fast path looks at: any flags, letter case, EDNS size, DO bit,
    version and options, names with a zero byte inside a label; and the channel they came by."""
    labels = [label.encode() for label in draw(st.sampled_from(NAMES[:4])).split(".")]
    if draw(st.booleans()):
        labels.insert(0, draw(st.sampled_from([b"a\x00b", b"\x00", b"www"])))
    labels = [bytes(c ^ 0x20 if draw(st.booleans()) and chr(c).isalpha() else c for c in lb) for lb in labels]
    name = dns.name.Name([*labels, b""])
    qtype = draw(st.sampled_from([1, 28, 33, 12, 6, 16, 255]))
    edns = draw(st.sampled_from([-1, 0, 1]))
    options = [dns.edns.GenericOption(65001, b"x")] if draw(st.integers(0, 4)) == 0 else []
    message = dns.message.make_query(
        name, qtype, use_edns=edns, payload=draw(st.integers(0, 4096)), want_dnssec=draw(st.booleans())
    )
    if edns >= 0:
        message.use_edns(edns, payload=message.payload, options=options, ednsflags=message.ednsflags)
    common = st.sampled_from([0x0100, 0x0120, 0x0110, 0])  # RD, RD+AD (dig), RD+CD, none
    message.flags = draw(st.one_of(common, st.integers(0, 0xFFFF))) & ~0x7800 & ~0x8000
    channel = draw(st.sampled_from([UDP4, UDP6, TCP4, TCP6]))
    return message.to_wire(), channel


@settings(max_examples=3000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cacheable_queries())
def test_fast_path_answers_as_the_full_path_does(responder, query):
    """Whatever the shortcut takes, it answers byte for byte as the full parse does."""
    packet, channel = query
    full = responder._respond(packet, channel, None)  # also fills the answer cache
    assert responder.respond(packet, channel) == full
    check(responder, packet, tcp=channel >= TCP4)
