"""Packing at the edges: name compression in large answers, and what fits a small UDP answer."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdns.config import ServeConfig
from kdns.responder import Responder
from kdns.wire import packed
from kdns.wire.pending import forward_key
from kdns.wire.query import TCP4, opt_record, parse_query, query_options, with_options
from tests.support.objects import endpoint_slice, namespace, service
from tests.support.zone import responder_of, zone_of


def members(count: int, *, v6: bool = False) -> list[dict]:
    return [
        {
            "addresses": [f"fd00::{i + 1:x}" if v6 else f"10.8.{i // 250}.{i % 250 + 1}"],
            "hostname": f"a-rather-long-hostname-for-member-{i:04d}",
            "conditions": {"ready": True},
        }
        for i in range(count)
    ]


def responder_for(count: int) -> Responder:
    zone = zone_of(
        [
            namespace("big"),
            service("wide", "big", ip="None", ports=[("http", 80, "TCP")]),
            endpoint_slice("w4", "wide", "big", ports=[("http", 80, "TCP")], addresses=members(count)),
            endpoint_slice(
                "w6",
                "wide",
                "big",
                ports=[("http", 80, "TCP")],
                addresses=members(count, v6=True),
                address_type="IPv6",
            ),
        ]
    )
    return responder_of(zone, ServeConfig())


def test_names_past_16k_are_never_pointed_at():
    """A 14-bit pointer cannot reach past offset 16383: names there are written out again."""
    query = dns.message.make_query("wide.big.svc.cluster.local", "SRV")
    reply = dns.message.from_wire(responder_for(400).respond(query.to_wire(), TCP4))
    targets = {rdata.target for rdata in reply.answer[0]}
    assert len(targets) == 400
    owners = [rrset.name for rrset in reply.additional]
    assert len(owners) > 300
    assert set(owners) <= targets  # a wrong pointer would name something else


def test_srv_additions_compress_against_the_targets():
    query = dns.message.make_query("_http._tcp.wide.big.svc.cluster.local", "SRV")
    wire = responder_for(3).respond(query.to_wire())
    reply = dns.message.from_wire(wire)
    assert not reply.flags & dns.flags.TC
    assert sum(len(rrset) for rrset in reply.additional) == 6
    # Each additional owner name is a 2-byte pointer to its SRV target: 2+10+4 (A) and 2+10+16 (AAAA).
    question = len(query.question[0].name.to_wire()) + 4
    answers = sum(12 + 6 + len(r.target.to_wire()) for r in reply.answer[0])
    assert len(wire) == 12 + question + answers + 3 * (16 + 28)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", "ns", "dns", "hostmaster", "x" * 40, "svc", "default", "a\x00b"]), max_size=4
    ),
    st.sampled_from([("cluster", "local"), ("svc", "cluster", "local"), ("ns", "dns", "cluster", "local")]),
    st.sampled_from(["A", "AAAA", "TXT", "MX"]),
)
def test_negative_answers_packed_once_are_the_answers_packed_anew(head, tail, qtype):
    """NXDOMAIN and NODATA bodies are reused between questions of one shape; whatever the question's
    last labels (some the SOA's own names compress against), the reply is the one a fresh pack makes."""
    zone = zone_of([namespace("default")])
    name = dns.name.Name([label.encode("latin-1") for label in (*head, *tail)] + [b""])
    query = dns.message.make_query(name, qtype).to_wire()
    reused = responder_of(zone, ServeConfig()).respond(query)
    packed._NEGATIVE_BODIES.clear()
    fresh = responder_of(zone, ServeConfig()).respond(query)
    assert reused == fresh
    assert dns.message.from_wire(fresh).rcode() in (dns.rcode.NXDOMAIN, dns.rcode.NOERROR)


def test_srv_targets_are_written_out_with_the_zone_as_asked():
    """RFC 2782: an SRV target is never compressed, so the query's case of the zone is copied into
    each answer; the rest of the target is the cluster's lowercase."""
    responder = responder_for(2)
    for use_edns in (False, 0):
        query = dns.message.make_query("_HTTP._tcp.WIDE.big.SVC.Cluster.LOCAL", "SRV", use_edns=use_edns)
        for _ in range(2):  # packed on the first query, from the cache on the second
            wire = responder.respond(query.to_wire())
            reply = dns.message.from_wire(wire)
            targets = [rdata.target for rdata in reply.answer[0]]
            assert {t.to_text() for t in targets} == {
                f"a-rather-long-hostname-for-member-{i:04d}.wide.big.svc.Cluster.LOCAL." for i in range(2)
            }
            for target in targets:
                assert target.to_wire() in wire  # in full, not as a pointer


# --- EDNS0 options: a client's, kdns's own, and the cache keys they make ---------------------------------


@pytest.mark.parametrize(
    ("options", "edns", "read"),
    [
        ([], -1, ()),  # no OPT record
        ([], 0, ()),
        ([dns.edns.GenericOption(0xFFEE, b"mine")], 0, ((0xFFEE, b"mine"),)),
        (
            [dns.edns.ECSOption("192.0.2.0", 24), dns.edns.GenericOption(65001, b"")],
            0,
            ((8, bytes([0, 1, 24, 0, 192, 0, 2])), (65001, b"")),
        ),
    ],
)
def test_the_options_a_client_sent_are_read_from_its_query(options, edns, read):
    data = dns.message.make_query("a.example", "A", use_edns=edns, options=options).to_wire()
    _, _, _, end, *_ = parse_query(data)
    assert query_options(data, end) == read


def test_an_option_that_runs_past_its_record_ends_the_options():
    data = bytearray(dns.message.make_query("a.example", "A", use_edns=0).to_wire())
    data[-2:] = (8).to_bytes(2, "big")  # RDLENGTH 8: one option head claiming 9 bytes of data
    data += (1).to_bytes(2, "big") + (9).to_bytes(2, "big") + b"abcd"
    _, _, _, end, *_ = parse_query(bytes(data))
    assert query_options(bytes(data), end) == ()


def test_kdns_own_opt_record_carries_exactly_the_options_given():
    opt = opt_record(1232, do=True)
    dressed = with_options(opt, ((0xFFEE, b"mine"), (3, b"")))
    reply = dns.message.from_wire(bytes(12 - 2) + (1).to_bytes(2, "big") + dressed)
    assert (reply.edns, reply.payload, bool(reply.ednsflags & dns.flags.DO)) == (0, 1232, True)
    assert [(o.otype, o.to_wire()) for o in reply.options] == [(0xFFEE, b"mine"), (3, b"")]
    assert with_options(dressed, ()) == opt and with_options(b"", ((1, b"x"),)) == b""


def test_forwarded_answers_are_kept_apart_by_do_and_by_the_options_sent():
    key = b"\x01a\x07example\x00\x00\x01\x00\x01"
    keys = [
        forward_key(key, False),
        forward_key(key, True),
        forward_key(key, False, ((8, bytes([0, 1, 24, 0, 127, 0, 0])),)),
        forward_key(key, False, ((8, bytes([0, 1, 24, 0, 127, 0, 1])),)),
        forward_key(key, True, ((8, bytes([0, 1, 24, 0, 127, 0, 0])),)),
    ]
    assert len(set(keys)) == len(keys)
    assert forward_key(key, False, ()) == key
