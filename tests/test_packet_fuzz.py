"""Any bytes in, a well-formed reply or nothing out: the packet path never raises, and answers by the rules.

The rules (``tests.support.oracle.verdict``) and the checks of each reply (``check_packet``) are the
ones ``python -m bench.fuzz`` applies to millions of packets; here hypothesis drives the same
structure-aware generator, so a failure shrinks to a small packet.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdns.config import ServeConfig
from kdns.responder import Responder
from kdns.wire.pending import PendingQuery
from kdns.wire.query import TCP4, TCP6, UDP4, UDP6
from tests.support.client import ask
from tests.support.fuzz_targets import (
    build_zone,
    forward_cache,
    forwarding_responder,
    make_targets,
    zone_names,
)
from tests.support.generator import make_opt, make_query
from tests.support.objects import big_service
from tests.support.oracle import (
    ANSWER,
    BAD_VERSION,
    BADVERS,
    DROP,
    ERROR,
    FORMERR,
    NOTIMP,
    REFUSED,
    Target,
    check_packet,
    verdict,
)
from tests.support.packets import raw_opt, raw_query
from tests.support.paths import EXAMPLE
from tests.support.process import running

NAMES = ["web.shop.svc.cluster.local", "postgres.data.svc.cluster.local", "x.y", "cluster.local", ""]


@pytest.fixture(scope="module")
def targets() -> list[Target]:
    return make_targets(cache_size=500)


@pytest.fixture(scope="module")
def names() -> list[bytes]:
    return zone_names(build_zone())


class DrawnChoices:
    """The generator's choices drawn by hypothesis: a failing packet shrinks towards plain choices."""

    def __init__(self, data: st.DataObject) -> None:
        self._data = data

    def integer(self, low: int, high: int) -> int:
        return self._data.draw(st.integers(low, high))

    def chance(self, probability: float) -> bool:
        return self._data.draw(st.integers(0, 999)) >= 1000 * (1 - probability)

    def choice(self, options: Sequence):
        return self._data.draw(st.sampled_from(options))

    def binary(self, low: int, high: int) -> bytes:
        return self._data.draw(st.binary(min_size=low, max_size=high))


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_structured_queries_are_answered_by_the_rules(targets, names, data):
    check_packet(targets, make_query(DrawnChoices(data), names))


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(targets, packet):
    check_packet(targets, packet)


@pytest.mark.slow
@settings(max_examples=800, deadline=None)
@given(st.binary(min_size=12, max_size=12), st.data())
def test_any_header_in_front_of_a_question(targets, names, header, data):
    """Every combination of ID, flags and counts before a good question (and maybe an OPT)."""
    choices = DrawnChoices(data)
    question = choices.choice(names) + struct.pack("!HH", choices.choice((1, 28, 33, 255, 252)), 1)
    check_packet(targets, header + question + (make_opt(choices) if choices.chance(0.5) else b""))


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


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(mutated_queries())
def test_mutated_queries(targets, packet):
    check_packet(targets, packet)


def test_well_formed_queries_get_their_answers(targets):
    for name in NAMES[:2]:
        reply = targets[0].responder.respond(dns.message.make_query(name, "A").to_wire())
        parsed = dns.message.from_wire(reply)
        assert parsed.rcode() == dns.rcode.NOERROR and parsed.answer


@st.composite
def cacheable_queries(draw, names: Sequence[str] = tuple(NAMES[:4])) -> tuple[bytes, int]:
    """Queries of every shape the fast path looks at: any flags, letter case, EDNS size, DO bit,
    version and options, names with a zero byte inside a label; and the channel they came by."""
    labels = [label.encode() for label in draw(st.sampled_from(names)).split(".")]
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


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(cacheable_queries())
def test_fast_path_answers_as_the_full_path_does(targets, query):
    """Whatever the shortcut takes, it answers byte for byte as the full parse does."""
    packet, channel = query
    responder = targets[0].responder
    full = responder._respond(packet, channel, None)  # also fills the answer cache
    assert responder.respond(packet, channel) == full
    check_packet(targets, packet)


@pytest.fixture(scope="module")
def forwarding() -> Responder:
    """A forwarding responder (no rotation) whose forward cache holds answers for example.com names."""
    cache, _ = forward_cache()
    return forwarding_responder(build_zone(), cache.get, cache_size=ServeConfig().answer_cache_size)


FORWARDED = ("example.com", "www.example.com", "big.example.com", "nx.example.com", "not-cached.example.org")


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cacheable_queries(FORWARDED))
def test_forward_cache_hits_on_the_fast_path_answer_as_the_full_path_does(forwarding, query):
    packet, channel = query
    full = forwarding._respond(packet, channel, None)
    fast = forwarding.respond(packet, channel)
    assert fast == full or (isinstance(fast, PendingQuery) and isinstance(full, PendingQuery))


# -- the rules, case by case ----------------------------------------------------------------------------
def _name(total: int) -> str:
    """A name whose wire form is ``total`` octets, ending in cluster.local."""
    room = total - len(b"\x07cluster\x05local\x00")
    labels = []
    while room > 0:
        size = min(63, room - 1) if room - 1 > 0 else 1
        labels.append("a" * size)
        room -= size + 1
    return ".".join([*labels, "cluster.local"])


RULES = {
    "11 octets: no room for an ID": (raw_query()[:11], DROP, None),
    "a response (QR)": (raw_query(flags=0x8100), DROP, None),
    "opcode IQUERY": (raw_query(flags=0x0900), ERROR, NOTIMP),
    "opcode STATUS": (raw_query(flags=0x1100), ERROR, NOTIMP),
    "opcode NOTIFY": (raw_query(flags=0x2100), ERROR, NOTIMP),
    "opcode UPDATE": (raw_query(flags=0x2900), ERROR, NOTIMP),
    "opcode 15": (raw_query(flags=0x7900), ERROR, NOTIMP),
    "no question": (raw_query()[:12], ERROR, FORMERR),
    "QDCOUNT 0 with a question": (raw_query(qd=0), ERROR, FORMERR),
    "two questions": (raw_query(qd=2) + raw_query()[12:], ERROR, FORMERR),
    "question cut short": (raw_query()[:-2], ERROR, FORMERR),
    "pointer in the question": (
        struct.pack("!6H", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack("!HH", 1, 1),
        ERROR,
        FORMERR,
    ),
    "label of 64 octets": (
        raw_query("x.cluster.local").replace(b"\x01x", b"\x40" + b"a" * 64),
        ERROR,
        FORMERR,
    ),
    "label of 63 octets": (raw_query("x.cluster.local").replace(b"\x01x", b"\x3f" + b"a" * 63), ANSWER, 3),
    "name of 255 octets": (raw_query(_name(255)), ANSWER, None),
    "name of 256 octets": (
        raw_query(_name(255)).replace(b"\x07cluster", b"\x08clusterx"),
        ERROR,
        FORMERR,
    ),
    "QTYPE OPT": (raw_query(qtype=41), ERROR, FORMERR),
    "trailing garbage": (raw_query() + b"\x00", ERROR, FORMERR),
    "ARCOUNT without the record": (raw_query(ar=1), ERROR, FORMERR),
    "two OPT records": (raw_query(ar=2) + raw_opt() + raw_opt(), ERROR, FORMERR),
    "OPT in the answer section": (raw_query(an=1) + raw_opt(), ERROR, FORMERR),
    "OPT not owned by the root": (raw_query(ar=1) + raw_opt(owner=b"\x01a\x00"), ERROR, FORMERR),
    "EDNS version 1": (raw_query(ar=1) + raw_opt(version=1), BAD_VERSION, BADVERS),
    "EDNS version 1 with CD": (raw_query(flags=0x0110, ar=1) + raw_opt(version=1), BAD_VERSION, BADVERS),
    "EDNS size 0 counts as 512": (raw_query(ar=1) + raw_opt(size=0), ANSWER, None),
    "AXFR": (raw_query(qtype=252), ANSWER, REFUSED),
    "IXFR": (raw_query(qtype=251), ANSWER, REFUSED),
    "class CH": (raw_query("version.bind", 16, 3), ANSWER, REFUSED),
    "class ANY": (raw_query(qclass=255), ANSWER, REFUSED),
    "class NONE": (raw_query(qclass=254), ANSWER, REFUSED),
    "outside the zones, not forwarding": (raw_query("example.com"), ANSWER, REFUSED),
}


@pytest.mark.parametrize("case", RULES.values(), ids=RULES.keys())
def test_rules(targets, case):
    """Each rule on its own: the verdict names it, and kdns replies as it says."""
    packet, action, rcode = case
    v = verdict(packet)
    assert v.action == action
    check_packet(targets, packet)
    reply = targets[0].responder.respond(packet, UDP4)
    if action == DROP:
        assert reply is None
        return
    parsed = dns.message.from_wire(reply)
    assert parsed.id == struct.unpack_from("!H", packet)[0]
    assert parsed.flags & dns.flags.CD == struct.unpack_from("!H", packet, 2)[0] & dns.flags.CD
    if rcode is not None:
        assert parsed.rcode() == rcode
    if action == ERROR:
        assert len(reply) == 12


def test_errors_and_badvers_copy_the_cd_bit(targets):
    """RFC 4035 3.2.2: CD is copied to every response, BADVERS and header-only errors too."""
    for packet in (raw_query(flags=0x0110, ar=1) + raw_opt(version=1), raw_query(flags=0x0110, qd=2)):
        reply = targets[0].responder.respond(packet, UDP4)
        assert dns.message.from_wire(reply).flags & dns.flags.CD


# -- ANY over a real socket (RFC 8482) ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def crowd_server(tmp_path_factory):
    crowd = tmp_path_factory.mktemp("any") / "crowd.yaml"
    crowd.write_text(yaml.safe_dump({"kind": "List", "items": big_service()}))
    with running("--snapshot", str(EXAMPLE), "--snapshot", str(crowd)) as server:
        yield server


ANY_NAMES = {
    "cluster.local": "SOA",  # the apex: its SOA
    "web.shop.svc.cluster.local": "A",
    "crowd.shop.svc.cluster.local": "A",  # 100 A and 40 AAAA records: the A RRset alone
    "_http._tcp.crowd.shop.svc.cluster.local": "SRV",
    "10.0.96.10.in-addr.arpa": "PTR",
}


@pytest.mark.parametrize(("name", "rrtype"), ANY_NAMES.items())
def test_any_gets_one_rrset(crowd_server, name, rrtype):
    """ANY is answered with one RRset, the one asking for its type gets (RFC 8482 4.1), and no
    additional records; over UDP it fits the client's buffer like any answer."""
    port = crowd_server.port
    full = ask(port, name, "ANY", tcp=True)
    assert full.rcode() == dns.rcode.NOERROR
    assert [dns.rdatatype.to_text(r.rdtype) for r in full.answer] == [rrtype]
    assert not full.additional
    typed = ask(port, name, rrtype, tcp=True)
    assert {r.to_text() for r in full.answer[0]} == {r.to_text() for r in typed.answer[0]}
    for use_edns in (False, 0):
        udp = ask(port, name, "ANY", use_edns=use_edns, payload=1232)
        assert len(udp.to_wire()) <= (512 if use_edns is False else 1232)
        fits = len(full.to_wire()) + (11 if use_edns == 0 else 0) <= (512 if use_edns is False else 1232)
        assert bool(udp.flags & dns.flags.TC) != fits
        assert len(udp.answer) == 1  # whole, or its first records when cut
        assert [r.to_text() for r in udp.answer[0]] == [r.to_text() for r in full.answer[0]][
            : len(udp.answer[0])
        ]


def test_any_for_a_name_without_data_is_nodata(crowd_server):
    reply = ask(crowd_server.port, "shop.svc.cluster.local", "ANY")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert [r.rdtype for r in reply.authority] == [dns.rdatatype.SOA]
