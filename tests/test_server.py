"""End to end: ``kdns serve`` as a process, asked over real UDP and TCP sockets by dnspython and dig."""

from __future__ import annotations

import signal
import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.client import HOST, ask, dig, udp_exchange
from tests.support.objects import CACHE_MEMBERS
from tests.support.packets import framed, raw_query
from tests.support.process import NO_UVLOOP, running

CASES = [
    ("web.shop.svc.cluster.local", "A", "NOERROR", {"10.96.100.10"}),
    ("api.shop.svc.cluster.local", "AAAA", "NOERROR", {"fd00:10:96::100:20"}),
    ("postgres.data.svc.cluster.local", "A", "NOERROR", {"10.244.1.30", "10.244.2.31"}),
    ("postgres-1.postgres.data.svc.cluster.local", "A", "NOERROR", {"10.244.2.31"}),
    ("_http._tcp.web.shop.svc.cluster.local", "SRV", "NOERROR", {"0 100 80 web.shop.svc.cluster.local."}),
    ("payments.shop.svc.cluster.local", "CNAME", "NOERROR", {"payments.example.com."}),
    ("10.0.96.10.in-addr.arpa", "PTR", "NOERROR", {"kube-dns.kube-system.svc.cluster.local."}),
    ("10-1-2-3.shop.pod.cluster.local", "A", "NOERROR", {"10.1.2.3"}),
    ("dns-version.cluster.local", "TXT", "NOERROR", {'"1.1.0"'}),
    ("web.shop.svc.cluster.local", "AAAA", "NOERROR", set()),
    ("nope.shop.svc.cluster.local", "A", "NXDOMAIN", set()),
    ("example.com", "A", "REFUSED", set()),
]


def last_rrset(message: dns.message.Message) -> set[str]:
    return {rdata.to_text() for rdata in message.answer[-1]} if message.answer else set()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("name", "qtype", "rcode", "expected"), CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_dnspython(example_server, transport, name, qtype, rcode, expected):
    reply = ask(example_server.port, name, qtype, tcp=transport == "tcp")
    assert dns.rcode.to_text(reply.rcode()) == rcode
    assert last_rrset(reply) == expected
    assert bool(reply.flags & dns.flags.AA) == (rcode != "REFUSED")
    if rcode in ("NXDOMAIN", "NOERROR") and not expected:
        assert reply.authority[0].rdtype == dns.rdatatype.SOA
        assert reply.authority[0].ttl == 5


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_dig(example_server, transport):
    port = example_server.port
    assert dig(port, transport, "+short", "web.shop.svc.cluster.local").split() == ["10.96.100.10"]
    assert sorted(dig(port, transport, "+short", "redis.data.svc.cluster.local").split()) == [
        "10.244.1.40",
        "10.244.2.41",
    ]
    assert dig(
        port, transport, "+short", "SRV", "_dns._udp.kube-dns.kube-system.svc.cluster.local"
    ).split() == ["0", "100", "53", "kube-dns.kube-system.svc.cluster.local."]
    assert dig(port, transport, "+short", "-x", "10.244.1.30").split() == [
        "postgres-0.postgres.data.svc.cluster.local."
    ]
    assert dig(port, transport, "+short", "storefront.shop.svc.cluster.local").split() == [
        "web.shop.svc.cluster.local.",
        "10.96.100.10",
    ]
    full = dig(port, transport, "missing.shop.svc.cluster.local")
    assert "status: NXDOMAIN" in full and "flags: qr aa rd;" in full
    assert "cluster.local.\t\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local." in full


def test_question_keeps_the_query_case(example_server):
    """0x20: the question comes back byte for byte; owner names point at it."""
    query = raw_query("wEb.ShOp.SVC.cluster.LOCAL")
    reply = udp_exchange(example_server.port, query)
    question_end = len(query)
    assert reply[12:question_end] == query[12:]
    assert reply[:2] == query[:2]
    parsed = dns.message.from_wire(reply)
    assert parsed.answer[0].name.to_text() == "wEb.ShOp.SVC.cluster.LOCAL."
    assert last_rrset(parsed) == {"10.96.100.10"}


def names_as_sent(reply: dns.message.Message) -> list[str]:
    """Every name in the reply's sections, as written (dnspython keeps the letter case it read)."""
    names = []
    for section in (reply.answer, reply.authority, reply.additional):
        for rrset in section:
            names.append(rrset.name.to_text())
            for rdata in rrset:
                for field in ("target", "mname", "rname"):
                    if hasattr(rdata, field):
                        names.append(getattr(rdata, field).to_text())
    return names


CASE_CASES = [
    # SRV: the owner is the question; the target and its address's owner are built from the zone
    (
        "_HtTp._TcP.wEb.ShOp.SvC.cLuStEr.LoCaL",
        "SRV",
        [
            "_HtTp._TcP.wEb.ShOp.SvC.cLuStEr.LoCaL.",
            "web.shop.svc.cLuStEr.LoCaL.",
            "web.shop.svc.cLuStEr.LoCaL.",
        ],
    ),
    # NS: the target ns.dns.<zone> (no glue on loopback alone; its case: test_coredns_parity.py)
    ("cLuStEr.LoCaL", "NS", ["cLuStEr.LoCaL.", "ns.dns.cLuStEr.LoCaL."]),
    # a CNAME's target is the ExternalName as the cluster wrote it, and so is the name it leads to
    (
        "StoreFront.ShOp.SvC.cLuStEr.LoCaL",
        "A",
        ["StoreFront.ShOp.SvC.cLuStEr.LoCaL.", "web.shop.svc.cluster.local.", "web.shop.svc.cluster.local."],
    ),
    # negative answers: the SOA's names are built from the zone
    (
        "NoPe.ShOp.SvC.cLuStEr.LoCaL",
        "A",
        ["cLuStEr.LoCaL.", "ns.dns.cLuStEr.LoCaL.", "hostmaster.cLuStEr.LoCaL."],
    ),
    (
        "Ns.DnS.cLuStEr.LoCaL",
        "TXT",
        ["cLuStEr.LoCaL.", "ns.dns.cLuStEr.LoCaL.", "hostmaster.cLuStEr.LoCaL."],
    ),
    # a PTR's target names the Service in the primary zone, as the cluster wrote it
    ("10.100.96.10.In-AdDr.ArPa", "PTR", ["10.100.96.10.In-AdDr.ArPa.", "web.shop.svc.cluster.local."]),
]


@pytest.mark.parametrize("edns", [False, 0])
@pytest.mark.parametrize(
    ("name", "qtype", "expected"), CASE_CASES, ids=[f"{c[0]}/{c[1]}" for c in CASE_CASES]
)
def test_names_keep_the_query_case_only_in_the_question_and_the_zone(
    example_server, edns, name, qtype, expected
):
    """As CoreDNS writes them: the question's own name as asked, names built from the zone with the
    zone as asked, names copied from the cluster lowercase. Asked twice (the second answer comes from
    the packed answer cache), and once in lowercase in between, which must not leak into the others."""
    port = example_server.port
    for _ in range(2):
        assert names_as_sent(ask(port, name, qtype, use_edns=edns)) == expected
        lowered = names_as_sent(ask(port, name.lower(), qtype, use_edns=edns))
        assert lowered == [text.lower() for text in expected]
    assert names_as_sent(ask(port, name, qtype, tcp=True)) == expected


def test_edns_is_echoed_and_versions_are_checked(example_server):
    port = example_server.port
    plain = ask(port, "web.shop.svc.cluster.local")
    assert plain.edns == -1
    reply = ask(port, "web.shop.svc.cluster.local", use_edns=0, payload=4096, want_dnssec=True)
    assert reply.edns == 0 and reply.payload == 1232 and reply.ednsflags & dns.flags.DO
    reply = ask(port, "web.shop.svc.cluster.local", use_edns=1)
    assert reply.rcode() == dns.rcode.BADVERS and reply.edns == 0 and not reply.answer


def test_large_answers_truncate_over_udp_and_come_whole_over_tcp(big_server):
    port = big_server.port
    name = "wide.big.svc.cluster.local"
    whole = ask(port, name, tcp=True)
    assert not whole.flags & dns.flags.TC
    assert len(whole.answer[0]) == 200
    addresses = [rdata.address for rdata in whole.answer[0]]
    for query, limit, opt in (
        (dns.message.make_query(name, "A"), 512, 0),
        (dns.message.make_query(name, "A", use_edns=0, payload=4096), 1232, 11),
    ):
        reply = ask(port, query)
        assert reply.flags & dns.flags.TC
        assert len(reply.to_wire()) <= limit
        # as many A records as fit (each a pointer to the question, the fixed part and 4 octets), the
        # first ones of the whole answer: what a client that never retries over TCP can use
        question = len(query.question[0].name.to_wire()) + 4
        fitting = (limit - 12 - question - opt) // (2 + 10 + 4)
        assert [rdata.address for rdata in reply.answer[0]] == addresses[:fitting]
    srv = ask(port, name, "SRV", tcp=True)
    assert len(srv.answer[0]) == 200 and len(srv.additional) == 200


def test_udp_retry_over_tcp_like_a_stub_resolver(big_server):
    """dnspython's udp_with_fallback does what glibc does on TC: ask again over TCP."""
    query = dns.message.make_query("wide.big.svc.cluster.local", "A")
    reply, used_tcp = dns.query.udp_with_fallback(query, HOST, port=big_server.port, timeout=3)
    assert used_tcp and len(reply.answer[0]) == 200


def test_additional_records_are_dropped_before_the_answer_is_truncated(big_server):
    query = dns.message.make_query(
        "_memcache._tcp.cache.big.svc.cluster.local", "SRV", use_edns=0, payload=1232
    )
    wire = udp_exchange(big_server.port, query.to_wire())
    assert len(wire) <= 1232
    reply = dns.message.from_wire(wire)
    assert not reply.flags & dns.flags.TC
    assert len(reply.answer[0]) == CACHE_MEMBERS
    assert 0 < sum(len(rrset) for rrset in reply.additional) < CACHE_MEMBERS


@pytest.mark.parametrize(
    ("payload", "limit"), [(0, 512), (512, 512), (700, 700), (1232, 1232), (65000, 1232)]
)
def test_udp_answers_fit_the_clients_edns_size(big_server, payload, limit):
    name = "_memcache._tcp.cache.big.svc.cluster.local"
    query = dns.message.make_query(name, "SRV", use_edns=0 if payload else False, payload=payload)
    reply = udp_exchange(big_server.port, query.to_wire())
    assert len(reply) <= limit
    parsed = dns.message.from_wire(reply)
    assert parsed.edns == (0 if payload else -1)
    whole = ask(big_server.port, query, tcp=True)
    targets = [rdata.target for rdata in whole.answer[0]]
    whole.additional = []
    answer_fits = len(whole.to_wire()) <= limit
    assert bool(parsed.flags & dns.flags.TC) != answer_fits
    if answer_fits:
        assert len(parsed.answer[0]) == CACHE_MEMBERS
    else:  # the first SRV records, as many as fit: one more would not
        kept = [rdata.target for rdata in parsed.answer[0]]
        assert 0 < len(kept) < CACHE_MEMBERS and kept == targets[: len(kept)]
        assert len(reply) + 12 + 6 + len(targets[len(kept)].to_wire()) > limit
        assert not parsed.additional


def test_several_queries_on_one_tcp_connection(example_server):
    with socket.create_connection((HOST, example_server.port), timeout=3) as conn:
        queries = [
            dns.message.make_query(n, "A")
            for n in (
                "web.shop.svc.cluster.local",
                "api.shop.svc.cluster.local",
                "nope.shop.svc.cluster.local",
            )
        ]
        conn.sendall(b"".join(framed(q.to_wire()) for q in queries))
        replies = [dns.query.receive_tcp(conn, expiration=time.time() + 3)[0] for _ in queries]
    assert [r.id for r in replies] == [q.id for q in queries]
    assert [last_rrset(r) for r in replies] == [{"10.96.100.10"}, {"10.96.100.20"}, set()]


def malformed_packets() -> dict[str, bytes]:
    good = raw_query("web.shop.svc.cluster.local")
    return {
        "header only, no question": struct.pack("!HHHHHH", 7, 0x0100, 0, 0, 0, 0),
        "two questions": struct.pack("!HHHHHH", 7, 0x0100, 2, 0, 0, 0) + good[12:] + good[12:],
        "truncated question": good[:20],
        "missing qtype": good[:-3],
        "label longer than 63": struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0)
        + b"\x40"
        + b"a" * 64
        + b"\x00\x00\x01\x00\x01",
        "compression loop in question": struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0)
        + b"\xc0\x0c\x00\x01\x00\x01",
        "name longer than 255": struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0)
        + (b"\x3f" + b"a" * 63) * 5
        + b"\x00\x00\x01\x00\x01",
        "trailing garbage": good + b"\xde\xad",
        "additional count without records": good[:10] + b"\x00\x02" + good[12:],
        "OPT in the answer section": good[:6]
        + b"\x00\x01"
        + good[8:]
        + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00",
        "two OPT records": good[:10]
        + b"\x00\x02"
        + good[12:]
        + (b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2),
        "question for OPT": raw_query("web.shop.svc.cluster.local", qtype=41),
    }


@pytest.mark.parametrize(("case", "packet"), malformed_packets().items(), ids=malformed_packets().keys())
def test_malformed_packets_get_formerr(example_server, case, packet):
    reply = udp_exchange(example_server.port, packet)
    assert reply is not None, case
    parsed = dns.message.from_wire(reply)
    assert parsed.rcode() == dns.rcode.FORMERR
    assert parsed.id == int.from_bytes(packet[:2])
    assert parsed.flags & dns.flags.QR


@pytest.mark.parametrize(
    ("case", "packet"),
    [
        ("empty", b""),
        ("shorter than a header", b"\x12\x34\x01\x00\x00"),
        ("a response", raw_query("web.shop.svc.cluster.local", flags=0x8000)),
    ],
)
def test_unanswerable_packets_are_dropped(example_server, case, packet):
    assert udp_exchange(example_server.port, packet, timeout=0.3) is None, case


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 15])
def test_other_opcodes_get_notimp(example_server, opcode):
    reply = udp_exchange(example_server.port, raw_query("cluster.local", 6, flags=opcode << 11))
    parsed = dns.message.from_wire(reply)
    assert parsed.rcode() == dns.rcode.NOTIMP and parsed.opcode() == opcode


def test_server_still_answers_after_abuse(example_server):
    for packet in malformed_packets().values():
        udp_exchange(example_server.port, packet, timeout=0.2)
    reply = ask(example_server.port, "web.shop.svc.cluster.local")
    assert last_rrset(reply) == {"10.96.100.10"}


@pytest.mark.slow
def test_tcp_huge_length_prefix_and_idle_connections_are_reaped(big_server):
    with socket.create_connection((HOST, big_server.port), timeout=5) as stalled:
        stalled.sendall(b"\xff\xff" + b"\x00" * 100)  # promises 65535 bytes, sends 100
        reply = ask(big_server.port, "cache.big.svc.cluster.local", tcp=True)
        assert reply.rcode() == dns.rcode.NOERROR
        started = time.monotonic()
        assert stalled.recv(10) == b""  # closed by the server after its 1 s idle timeout
        assert time.monotonic() - started < 4


def test_tcp_short_frame_gets_formerr(big_server):
    with socket.create_connection((HOST, big_server.port), timeout=3) as conn:
        conn.sendall(framed(struct.pack("!HHHHHH", 9, 0, 0, 0, 0, 0)))
        reply, _ = dns.query.receive_tcp(conn, expiration=time.time() + 3)
    assert reply.rcode() == dns.rcode.FORMERR and reply.id == 9


def test_ipv6_listener():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.fail("this machine has no ::1; kdns must still be tested on IPv6 loopback")
    with running("--listen", "::1", "127.0.0.1") as server:
        for host in ("::1", "127.0.0.1"):
            for tcp in (False, True):
                reply = ask(server.port, "web.shop.svc.cluster.local", tcp=tcp, host=host)
                assert last_rrset(reply) == {"10.96.100.10"}


def test_plain_asyncio_without_uvloop():
    with running(launcher=NO_UVLOOP) as server:
        for tcp in (False, True):
            reply = ask(server.port, "postgres.data.svc.cluster.local", tcp=tcp)
            assert last_rrset(reply) == {"10.244.1.30", "10.244.2.31"}
        assert server.stop() == 0
    assert "(udp, tcp) on asyncio;" in server.log[-2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown_on_signals(sig):
    with running() as server:
        assert server.stop(sig) == 0
    assert any("shutting down" in line for line in server.log)


def test_ready_line_names_address_port_and_counts(example_server):
    ready = next(line for line in example_server.log if "ready:" in line)
    assert f"listening on 127.0.0.1 port {example_server.port} (udp, tcp) on uvloop;" in ready
    assert "9 services (2 headless), 13 endpoints" in ready
