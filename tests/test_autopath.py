"""Autopath's search walk, as a pure function: tables of questions, the names upstream is asked for,
what upstream says, and the answer the asking pod gets. No sockets: the zone is the example cluster,
upstream's replies are written down."""

from __future__ import annotations

import struct

import dnslib
import pytest

from kdns.autopath import SearchWalk, search_path
from kdns.blocks import Block, Route, Router
from kdns.codes import IN, NXDOMAIN, A
from kdns.resolver import Resolver
from kdns.zone.names import ROOT, to_text, to_wire
from tests.support.zone import example_zone


@pytest.mark.parametrize(
    ("asked", "namespace", "host_search", "expected"),
    [
        (
            "example.com.shop.svc.cluster.local",
            "shop",
            (),
            ["example.com.svc.cluster.local.", "example.com.cluster.local.", "example.com."],
        ),
        (
            "api.shop.data.svc.cluster.local",
            "data",
            ("corp.example", "example"),
            [
                "api.shop.svc.cluster.local.",
                "api.shop.cluster.local.",
                "api.shop.corp.example.",
                "api.shop.example.",
                "api.shop.",
            ],
        ),
        (  # a name that would grow past 255 octets under a search domain is left out there
            f"{'a' * 63}.{'b' * 63}.{'c' * 63}.x.ns.svc.cluster.local",
            "ns",
            ("d" * 63 + "." + "e" * 30,),
            [
                f"{'a' * 63}.{'b' * 63}.{'c' * 63}.x.svc.cluster.local.",
                f"{'a' * 63}.{'b' * 63}.{'c' * 63}.x.cluster.local.",
                f"{'a' * 63}.{'b' * 63}.{'c' * 63}.x.",
            ],
        ),
    ],
)
def test_the_search_path_of_a_pod(asked, namespace, host_search, expected):
    names = search_path(
        to_wire(asked), namespace, to_wire("cluster.local"), tuple(to_wire(d) for d in host_search)
    )
    assert [to_text(name) for name in names] == expected


ANSWER = "{name} 60 IN A 192.0.2.1"
SOA = "example. 60 IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 30"


def reply(rcode: int, zone_text: str = "") -> dnslib.DNSRecord:
    record = dnslib.DNSRecord(dnslib.DNSHeader(qr=1, rcode=rcode))
    for rr in dnslib.RR.fromZone(zone_text) if zone_text else []:
        (record.add_auth if rr.rtype == dnslib.QTYPE.SOA else record.add_answer)(rr)
    return record


def walk(
    asked: str, namespace: str, upstream: dict[str, dnslib.DNSRecord | None], *, forwarding: bool = True
):
    """Walk ``asked`` for a pod of ``namespace`` in a '.' server block with the cluster and, when
    ``forwarding``, a ``forward .``; upstream answers from ``upstream`` (NXDOMAIN for names it does
    not hold). The names upstream was asked for, and the answer as zone-file lines."""
    zone = example_zone()
    resolver = Resolver(zone.index, zone.layout, zone.settings)
    routes = (Route(1, ROOT),) if forwarding else ()
    router = Router([Block((ROOT,), cluster=resolver, routes=routes)], layout=zone.layout, ttl=resolver.ttl)
    key = to_wire(asked) + struct.pack("!HH", A, IN)
    search = SearchWalk(key, namespace, router, host_search=(to_wire("corp.example"),))
    questions = []
    while (question := search.step()) is not None:
        name = to_text(question[:-4])
        questions.append(name)
        search.heard(upstream.get(name, reply(NXDOMAIN, SOA)))
    if search.result is None:
        return questions, None, []
    end = 12 + len(key)
    response = dnslib.DNSRecord.parse(search.result.render(bytes(12) + key, 0, 0, end, 65535, b""))
    lines = [" ".join(rr.toZone().split()) for rr in response.rr]
    return questions, dnslib.RCODE.get(response.header.rcode), lines


def test_a_cluster_name_down_the_path_is_answered_without_upstream():
    questions, rcode, answer = walk("api.shop.data.svc.cluster.local", "data", {})
    assert questions == []
    assert rcode == "NOERROR"
    assert answer == [
        "api.shop.data.svc.cluster.local. 5 IN CNAME api.shop.svc.cluster.local.",
        "api.shop.svc.cluster.local. 5 IN A 10.96.100.20",
    ]


def test_a_name_outside_the_zones_is_found_upstream_at_the_end_of_the_path():
    upstream = {"example.com.": reply(0, ANSWER.format(name="example.com."))}
    questions, rcode, answer = walk("example.com.shop.svc.cluster.local", "shop", upstream)
    assert questions == ["example.com.corp.example.", "example.com."]  # cluster names never go upstream
    assert rcode == "NOERROR"
    assert answer == [
        "example.com.shop.svc.cluster.local. 60 IN CNAME example.com.",
        "example.com. 60 IN A 192.0.2.1",
    ]


def test_the_first_name_upstream_holds_ends_the_walk():
    upstream = {"intranet.corp.example.": reply(0, ANSWER.format(name="intranet.corp.example."))}
    questions, _, answer = walk("intranet.shop.svc.cluster.local", "shop", upstream)
    assert questions == ["intranet.corp.example."]
    assert answer[0] == "intranet.shop.svc.cluster.local. 60 IN CNAME intranet.corp.example."


def test_nodata_upstream_ends_the_walk_with_nodata():
    upstream = {"example.com.": reply(0, SOA)}
    questions, rcode, answer = walk("example.com.shop.svc.cluster.local", "shop", upstream)
    assert questions[-1] == "example.com."
    assert (rcode, answer) == ("NOERROR", ["example.com.shop.svc.cluster.local. 60 IN CNAME example.com."])


def test_every_name_nxdomain_leaves_the_pod_its_own_nxdomain():
    questions, rcode, answer = walk("nowhere.shop.svc.cluster.local", "shop", {})
    assert questions == ["nowhere.corp.example.", "nowhere."]
    assert (rcode, answer) == (None, [])


def test_no_upstream_answer_is_servfail():
    questions, rcode, answer = walk(
        "example.com.shop.svc.cluster.local", "shop", {"example.com.corp.example.": None}
    )
    assert questions == ["example.com.corp.example."]  # the walk stops there
    assert (rcode, answer) == ("SERVFAIL", [])


def test_without_forwarding_only_the_zone_is_walked():
    questions, rcode, _ = walk("example.com.shop.svc.cluster.local", "shop", {}, forwarding=False)
    assert (questions, rcode) == ([], None)
