"""End to end: answers where CoreDNS's ``kubernetes`` plugin has particular habits, asked of a running
``kdns serve`` over real sockets by dnspython."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests.support.client import ask, dig, lookup
from tests.support.host import an_own_ipv4, local_addresses
from tests.support.objects import endpoint_slice, namespace, pod, service, srv_repeats
from tests.support.process import Server, running


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of Services whose SRV records repeat, of pods in several states, and of a headless
    Service of 60 endpoints (more A records than 512 octets hold); no kube-dns."""
    path = tmp_path_factory.mktemp("parity") / "cluster.json"
    pods = [
        pod("running", ips=["10.5.0.1"]),
        pod("terminating", ips=["10.5.0.2"], deleting=True),
        pod("lost", ips=["10.5.0.3"], phase="Unknown"),
    ]
    sixty = [
        service("sixty", ip="None", ports=[("http", 80, "TCP")]),
        endpoint_slice("sixty-1", "sixty", addresses=[f"10.6.0.{n}" for n in range(1, 61)]),
    ]
    items = [*srv_repeats(), *pods, *sixty]
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


@pytest.fixture(scope="module")
def server(cluster: Path) -> Iterator[Server]:
    zones = ("cluster.local", "0.10.in-addr.arpa", "in-addr.arpa")
    with running("--snapshot", str(cluster), "--pods", "verified", "--zone", *zones) as served:
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


def test_ns_glue_without_a_dns_service_is_the_addresses_kdns_listens_on(cluster):
    """Listening on the wildcards, kdns names the host's addresses but loopback and link-local ones,
    as CoreDNS names the addresses it is bound to when it finds no Service of its own."""
    expected = {
        text
        for text in local_addresses()
        if not ipaddress.ip_address(text).is_loopback and not ipaddress.ip_address(text).is_link_local
    }
    with running("--snapshot", str(cluster), "--listen", "0.0.0.0", "::") as wide:
        for host in ("127.0.0.1", "::1"):
            reply = ask(wide.port, "cluster.local", "NS", host=host)
            assert [rdata.to_text() for rdata in reply.answer[0]] == ["ns.dns.cluster.local."]
            glue = {rdata.to_text() for rrset in reply.additional for rdata in rrset}
            assert glue == expected
            assert {rrset.name.to_text() for rrset in reply.additional} <= {"ns.dns.cluster.local."}
    with running("--snapshot", str(cluster)) as loopback_only:
        reply = ask(loopback_only.port, "cluster.local", "NS")
        assert [rdata.to_text() for rdata in reply.answer[0]] == ["ns.dns.cluster.local."]
        assert not reply.additional


def test_ns_glue_is_the_service_whose_endpoint_is_kdns_own_address(tmp_path):
    """CoreDNS's rule: the Service backed by the server's own pod gives the name server its addresses,
    whatever the Service is called; a ``kube-system/kube-dns`` backed by other pods gives nothing."""
    snapshot = tmp_path / "cluster.json"
    objects = [
        namespace("kube-system"),
        service("kube-dns", "kube-system", ip="10.96.0.10"),
        endpoint_slice("kube-dns-1", "kube-dns", "kube-system", addresses=["10.244.0.2"]),
        namespace("dns-system"),
        service("coredns", "dns-system", ip=["10.96.0.53", "fd00::53"]),
        endpoint_slice("coredns-1", "coredns", "dns-system", addresses=[an_own_ipv4(), "10.244.0.3"]),
    ]
    snapshot.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    with running("--snapshot", str(snapshot), "--listen", "0.0.0.0") as wide:
        reply = ask(wide.port, "ClUsTeR.LoCaL", "NS")
        assert [rdata.to_text() for rdata in reply.answer[0]] == ["ns.dns.ClUsTeR.LoCaL."]
        glue = sorted(
            (rrset.name.to_text(), rdata.to_text()) for rrset in reply.additional for rdata in rrset
        )
        assert glue == [("ns.dns.ClUsTeR.LoCaL.", "10.96.0.53"), ("ns.dns.ClUsTeR.LoCaL.", "fd00::53")]


def test_a_udp_answer_too_large_keeps_the_records_that_fit(server):
    """A client that never retries over TCP (musl before 1.2.4) uses what a truncated answer holds:
    as many of the 60 A records as fit, TC set, as CoreDNS sends (miekg/dns's Truncate)."""
    name = "sixty.default.svc.cluster.local"
    whole = ask(server.port, name, tcp=True)
    addresses = [rdata.address for rdata in whole.answer[0]]
    assert len(addresses) == 60
    # each A record: a pointer to the question, the fixed part and 4 octets
    fitting = (512 - 12 - (len(name) + 2 + 4)) // (2 + 10 + 4)
    output = dig(server.port, "+ignore", "+noedns", "+notcp", name)
    assert " tc " in output.split("flags:")[1].split(";")[0] + " "
    answer = [line.split()[-1] for line in output.splitlines() if line.startswith(name + ".")]
    assert answer == addresses[:fitting]
    reply = ask(server.port, name, use_edns=0, payload=700)
    assert [rdata.address for rdata in reply.answer[0]] == addresses[
        : (700 - 12 - (len(name) + 6) - 11) // 16
    ]
