"""End to end: answers where CoreDNS's ``kubernetes`` plugin has particular habits, asked of a running
``kdns serve`` over real sockets by dnspython."""

from __future__ import annotations

import json
from collections.abc import Iterator

import dns.rcode
import pytest

from tests.support.client import ask, lookup
from tests.support.objects import pod, srv_repeats
from tests.support.process import Server, running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("parity") / "cluster.json"
    pods = [
        pod("running", ips=["10.5.0.1"]),
        pod("terminating", ips=["10.5.0.2"], deleting=True),
        pod("lost", ips=["10.5.0.3"], phase="Unknown"),
    ]
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [*srv_repeats(), *pods]}))
    zones = ("cluster.local", "0.10.in-addr.arpa", "in-addr.arpa")
    with running("--snapshot", str(path), "--pods", "verified", "--zone", *zones) as served:
        yield served


def test_srv_weights_count_the_records_coredns_makes_before_dropping_repeats(server):
    reply = ask(server.port, "_http._tcp.hl.default.svc.cluster.local", "SRV")
    assert sorted(rdata.to_text() for rdata in reply.answer[0]) == [
        "0 33 80 a.hl.default.svc.cluster.local.",
        "0 33 80 b.hl.default.svc.cluster.local.",
    ]
    reply = ask(server.port, "dual.default.svc.cluster.local", "SRV", tcp=True)
    assert [rdata.to_text() for rdata in reply.answer[0]] == ["0 50 80 dual.default.svc.cluster.local."]


def test_pods_verified_names_no_terminating_or_lost_pod(server):
    assert lookup(server.port, "10-5-0-1.default.pod.cluster.local") == ("NOERROR", {"10.5.0.1"})
    assert lookup(server.port, "10-5-0-2.default.pod.cluster.local")[0] == "NXDOMAIN"
    assert lookup(server.port, "10-5-0-3.default.pod.cluster.local", tcp=True)[0] == "NXDOMAIN"


@pytest.mark.parametrize(
    ("name", "qtype"),
    [
        ("101.0.0.10.in-addr.arpa", "PTR"),
        ("0.10.in-addr.arpa", "A"),
        ("hl.default.svc.0.10.in-addr.arpa", "A"),
    ],
)
def test_negative_answers_in_a_narrow_reverse_zone_carry_its_soa(server, name, qtype):
    reply = ask(server.port, name, qtype)
    soa = reply.authority[0]
    assert soa.name.to_text() == "0.10.in-addr.arpa."
    assert soa[0].mname.to_text() == "ns.dns.0.10.in-addr.arpa."
    assert soa[0].rname.to_text() == "hostmaster.0.10.in-addr.arpa."
    assert dns.rcode.to_text(reply.rcode()) == ("NOERROR" if name == "0.10.in-addr.arpa" else "NXDOMAIN")
