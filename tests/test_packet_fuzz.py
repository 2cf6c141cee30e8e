"""Any bytes in, a well-formed reply or nothing out: the packet path never raises."""

from __future__ import annotations

import struct

import dns.exception
import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdns.resolver import Resolver
from kdns.responder import TCP4, UDP4, Responder
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
