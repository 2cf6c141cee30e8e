"""Forwarding and its cache, end to end: ``kdns serve --upstream`` in front of a fake upstream on
loopback, asked by dnspython over UDP and TCP."""

from __future__ import annotations

import threading
import time

import dns.flags
import dns.message
import dns.rcode
import pytest

from kdns.upstream import forward
from tests.fake_upstream import upstream
from tests.support.client import ask
from tests.support.metrics import endpoint, get, metric
from tests.support.paths import ROOT
from tests.support.polling import eventually
from tests.support.process import free_port, run_kdns, running

RECORDS = """
example.com. 300 IN A 93.184.216.34
example.com. 300 IN AAAA 2606:2800:220:1:248:1893:25c8:1946
www.example.org. 120 IN CNAME example.org.
example.org. 120 IN A 93.184.216.35
payments.example.com. 60 IN A 203.0.113.10
8.8.8.8.in-addr.arpa. 600 IN PTR dns.google.
big.example.net. 300 IN TXT "%s"
""" % ("x" * 250)


def values(reply: dns.message.Message) -> list[str]:
    return [f"{rrset.name} {rdata}" for rrset in reply.answer for rdata in rrset]


@pytest.fixture
def fake():
    with upstream(RECORDS) as fake:
        yield fake


@pytest.mark.parametrize("tcp", [False, True])
def test_forwards_names_outside_the_zones(fake, tcp):
    with running("--upstream", fake.address) as server:
        reply = ask(server.port, "example.com", tcp=tcp)
        assert values(reply) == ["example.com. 93.184.216.34"]
        assert reply.flags & dns.flags.RA and not reply.flags & dns.flags.AA
        assert values(ask(server.port, "www.example.org", tcp=tcp)) == [
            "www.example.org. example.org.",
            "example.org. 93.184.216.35",
        ]
        assert ask(server.port, "missing.example.com", tcp=tcp).rcode() == dns.rcode.NXDOMAIN
        # cluster names never leave kdns, search-path misses included
        assert values(ask(server.port, "web.shop.svc.cluster.local", tcp=tcp)) == [
            "web.shop.svc.cluster.local. 10.96.100.10"
        ]
        assert ask(server.port, "example.com.shop.svc.cluster.local", tcp=tcp).rcode() == dns.rcode.NXDOMAIN
        assert fake.count("example.com.shop.svc.cluster.local") == 0
        assert ask(server.port, "web.shop.svc.cluster.local").flags & dns.flags.RA


@pytest.mark.slow
def test_answers_are_cached(fake):
    """Served from the cache in the asker's letter case (the TTL count-down: test_forwarder.py)."""
    with running("--upstream", fake.address) as server:
        first = ask(server.port, "example.com")
        assert first.answer[0].ttl == 300
        again = ask(server.port, "EXAMPLE.com")
        assert values(again) == ["EXAMPLE.com. 93.184.216.34"]  # the question's own case
        assert again.answer[0].ttl <= 300
        assert fake.count("example.com") == 1
        for _ in range(3):
            assert ask(server.port, "gone.example.com").rcode() == dns.rcode.NXDOMAIN
        assert fake.count("gone.example.com") == 1  # negative answers are cached too
        denial = ask(server.port, "gone.example.com")
        assert denial.authority[0].ttl <= 30  # min(SOA TTL 60, SOA minimum 30), RFC 2308


@pytest.mark.slow
def test_cache_ttl_caps_and_no_cache_turns_it_off(fake):
    with running("--upstream", fake.address, "--cache-ttl", "1") as server:
        assert ask(server.port, "example.com").answer[0].ttl == 1  # the first answer is capped too
        assert ask(server.port, "example.com").answer[0].ttl <= 1
        time.sleep(1.2)
        ask(server.port, "example.com")
        assert fake.count("example.com") == 2
    with running("--upstream", fake.address, "--no-cache") as server:
        ask(server.port, "example.org")
        ask(server.port, "example.org")
        assert fake.count("example.org") == 2


def test_truncated_udp_answers_are_asked_again_over_tcp(fake):
    fake.truncate.add("big.example.net")
    with running("--upstream", fake.address) as server:
        reply = ask(server.port, "big.example.net", "TXT")
        assert len(values(reply)) == 1 and "x" * 250 in values(reply)[0]
        assert fake.asked[("big.example.net", "TXT", "udp")] == 1
        assert fake.asked[("big.example.net", "TXT", "tcp")] == 1


def test_queries_go_upstream_over_the_transport_the_client_used(fake):
    """As CoreDNS forwards: a query that came over TCP goes upstream over TCP, one over UDP over UDP;
    --force-tcp sends both over TCP."""
    with running("--upstream", fake.address, "--no-cache") as server:
        for tcp in (False, True):
            assert values(ask(server.port, "example.com", tcp=tcp)) == ["example.com. 93.184.216.34"]
        assert fake.asked[("example.com", "A", "udp")] == 1
        assert fake.asked[("example.com", "A", "tcp")] == 1
    with running("--upstream", fake.address, "--no-cache", "--force-tcp") as server:
        ask(server.port, "example.org")
        assert fake.asked[("example.org", "A", "tcp")] == 1
        assert fake.asked[("example.org", "A", "udp")] == 0


@pytest.mark.slow
def test_failover_and_health_checks():
    with upstream(RECORDS) as dead, upstream(RECORDS) as alive:
        dead.down = True
        with running(
            "--upstream",
            dead.address,
            alive.address,
            "--forward-policy",
            "sequential",
            "--forward-timeout",
            "0.3",
            "--no-cache",
        ) as server:
            for _ in range(3):
                assert values(ask(server.port, "example.com")) == ["example.com. 93.184.216.34"]
            assert dead.count("example.com") == 2  # max_fails, then it is down and tried last
            assert alive.count("example.com") == 3
            eventually(lambda: server.logged(f"upstream {dead.address} is down after 2 failures"))
            dead.down = False
            eventually(lambda: server.logged(f"upstream {dead.address} answers again"))
            assert dead.count(".", "NS") >= 1  # health checks ask ". IN NS"
            ask(server.port, "example.com")
            assert dead.count("example.com") == 3  # back in first place


@pytest.mark.slow
def test_servfail_when_every_upstream_fails_and_serve_stale(fake):
    with running(
        "--upstream", fake.address, "--forward-timeout", "0.3", "--cache-ttl", "1", "--serve-stale", "60"
    ) as server:
        assert values(ask(server.port, "example.com")) == ["example.com. 93.184.216.34"]
        fake.down = True
        time.sleep(1.1)
        stale = ask(server.port, "example.com")
        assert values(stale) == ["example.com. 93.184.216.34"] and stale.answer[0].ttl == 0
        started = time.monotonic()
        assert ask(server.port, "never.example.com").rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - started < 2
        # the first failure's line; later ones within 10 s are counted into the next (consolidated)
        eventually(lambda: server.logged(f"example.com. A: no upstream answered ({fake.address}: timeout)"))


def test_spoofed_replies_are_ignored(fake):
    fake.spoof_first.add("example.com")
    fake.garbage.add("junk.example.com")
    with running("--upstream", fake.address, "--forward-timeout", "0.5") as server:
        assert values(ask(server.port, "example.com")) == ["example.com. 93.184.216.34"]
        assert ask(server.port, "junk.example.com").rcode() == dns.rcode.SERVFAIL


@pytest.mark.slow
def test_refused_beyond_max_concurrent(fake):
    fake.slow["example.com"] = 1.0
    with running("--upstream", fake.address, "--max-concurrent", "1") as server:
        slow = {}
        thread = threading.Thread(target=lambda: slow.update(reply=ask(server.port, "example.com")))
        thread.start()
        eventually(lambda: fake.count("example.com") == 1)
        started = time.monotonic()
        assert ask(server.port, "example.org").rcode() == dns.rcode.REFUSED
        assert time.monotonic() - started < 0.5
        thread.join(5)
        assert values(slow["reply"]) == ["example.com. 93.184.216.34"]


def test_identical_questions_share_one_upstream_query(fake):
    fake.slow["example.com"] = 0.5
    with running("--upstream", fake.address) as server:
        replies = []
        threads = [
            threading.Thread(target=lambda: replies.append(ask(server.port, "example.com"))) for _ in range(5)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert [values(r) for r in replies] == [["example.com. 93.184.216.34"]] * 5
        assert fake.count("example.com") == 1


def test_reverse_names_that_are_not_cluster_ips_go_upstream(fake):
    with running("--upstream", fake.address) as server:
        assert values(ask(server.port, "8.8.8.8.in-addr.arpa", "PTR")) == [
            "8.8.8.8.in-addr.arpa. dns.google."
        ]
        assert values(ask(server.port, "10.0.96.10.in-addr.arpa", "PTR")) == [
            "10.0.96.10.in-addr.arpa. kube-dns.kube-system.svc.cluster.local."
        ]
        assert fake.count("10.0.96.10.in-addr.arpa", "PTR") == 0
    with running("--upstream", fake.address, "--no-fallthrough-reverse") as server:
        assert ask(server.port, "8.8.8.8.in-addr.arpa", "PTR").rcode() == dns.rcode.NXDOMAIN


def test_external_name_targets_are_chased_upstream(fake):
    with running("--upstream", fake.address) as server:
        reply = ask(server.port, "payments.shop.svc.cluster.local")
        assert values(reply) == [
            "payments.shop.svc.cluster.local. payments.example.com.",
            "payments.example.com. 203.0.113.10",
        ]
        assert ask(server.port, "payments.shop.svc.cluster.local", "CNAME").answer[0][0].to_text() == (
            "payments.example.com."
        )
        again = ask(server.port, "payments.shop.svc.cluster.local")  # from the cache now
        assert values(again) == values(reply) and fake.count("payments.example.com") == 1
        assert all(rrset.ttl <= 5 for rrset in again.answer)  # no longer than the CNAME's TTL


def test_forwarding_to_itself_is_refused():
    port = free_port()
    result = run_kdns("serve", "--port", str(port), "--upstream", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"forwarding loop: upstream 127.0.0.1:{port} is this server's own address" in result.stderr


def test_a_loop_through_another_resolver_is_detected():
    """Two servers forwarding to each other: the second one started sees its probe come back."""
    second = free_port()
    with running("--upstream", f"127.0.0.1:{second}", "--forward-timeout", "0.5") as a:
        process = run_kdns("serve", "--port", str(second), "--upstream", f"127.0.0.1:{a.port}")
        assert process.returncode == 2
        assert "forwarding loop: a query for " in process.stderr
        assert f"sent to upstream 127.0.0.1:{a.port} came back to kdns" in process.stderr


def test_resolv_conf_is_the_default_upstream(tmp_path):
    """With no --upstream, the nameservers of resolv.conf (port 53) are asked, as 'forward . /etc/resolv.conf'."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search default.svc.cluster.local\nnameserver 127.0.0.153\noptions ndots:5\n")
    with (
        upstream(RECORDS, host="127.0.0.153", port=53) as fake,
        running("--resolv-conf", str(resolv)) as server,
    ):
        assert server.logged("; forwarding to 127.0.0.153:53")
        assert values(ask(server.port, "example.com")) == ["example.com. 93.184.216.34"]
        assert fake.count("example.com") == 1
    empty = tmp_path / "empty.conf"
    empty.write_text("# nothing\n")
    result = run_kdns("serve", "--port", "0", "--resolv-conf", str(empty))
    assert result.returncode == 2 and f"{empty}: no nameserver lines" in result.stderr


def test_autopath_walks_the_search_path_of_the_asking_pod(fake, tmp_path):
    """The test client (127.0.0.1) is a pod of namespace shop: its search-path misses are walked on the
    server and answered with a CNAME to the first name that exists."""
    me = tmp_path / "me.yaml"
    me.write_text(
        "kind: Pod\nmetadata: {name: client, namespace: shop}\n"
        "status: {phase: Running, podIP: 127.0.0.1, podIPs: [{ip: 127.0.0.1}]}\n"
    )
    args = ("--snapshot", "zones/example.yaml", str(me), "--pods", "verified", "--upstream", fake.address)
    with running(*args, "--autopath") as server:
        reply = ask(server.port, "web.shop.svc.cluster.local.shop.svc.cluster.local")
        assert values(reply) == [
            "web.shop.svc.cluster.local.shop.svc.cluster.local. web.shop.svc.cluster.local.",
            "web.shop.svc.cluster.local. 10.96.100.10",
        ]
        reply = ask(server.port, "example.com.shop.svc.cluster.local")
        assert values(reply) == [
            "example.com.shop.svc.cluster.local. example.com.",
            "example.com. 93.184.216.34",
        ]
        assert ask(server.port, "example.com.shop.svc.cluster.local", tcp=True).answer[1][0].address == (
            "93.184.216.34"
        )
        assert ask(server.port, "nothing.example.shop.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
        assert (
            ask(server.port, "example.com.data.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
        )  # not its ns
        assert fake.count("example.com") == 1  # cached, and cluster candidates never left kdns
    with running(*args) as server:
        assert ask(server.port, "example.com.shop.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    result = run_kdns("serve", "--autopath")
    assert result.returncode == 2 and "--autopath needs --pods verified" in result.stderr


@pytest.mark.slow
def test_a_flood_of_unanswerable_queries_logs_one_line_per_ten_seconds(fake):
    """As CoreDNS's ``errors { consolidate }``: every query still gets SERVFAIL, the log a line."""
    fake.down = True
    with running("--upstream", fake.address, "--forward-timeout", "0.2") as server:
        rcodes = []
        threads = [
            threading.Thread(target=lambda i=i: rcodes.append(ask(server.port, f"n{i}.example.com").rcode()))
            for i in range(30)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert rcodes == [dns.rcode.SERVFAIL] * 30
        time.sleep(0.5)
        assert len(server.logged("no upstream answered")) == 1


def test_consolidated_lines_say_how_many_were_held_back(caplog):
    now = [1000.0]
    lines = forward.Consolidated(every=10, clock=lambda: now[0])
    with caplog.at_level("ERROR", logger="kdns.upstream.forward"):
        for second in range(25):  # three failures a second for 25 s
            now[0] = 1000.0 + second
            for i in range(3):
                lines.error("q%d: no upstream answered", second * 3 + i)
    assert [r.getMessage() for r in caplog.records] == [
        "q0: no upstream answered",
        "q30: no upstream answered; 29 more like it in the last 10 s",
        "q60: no upstream answered; 29 more like it in the last 10 s",
    ]


def test_each_cache_miss_is_counted_once(fake):
    with running("--upstream", fake.address, "--metrics", "127.0.0.1:0") as server:
        for name in ("example.com", "example.org", "example.com", "payments.shop.svc.cluster.local"):
            ask(server.port, name)
        text = get(endpoint(server, "metrics") + "/metrics")[1]
        # as CoreDNS's cache plugin, the cache sees each of the four queries once: the second
        # example.com hits; example.com, example.org and the ExternalName (a cluster answer) miss
        assert metric(text, "coredns_cache_requests_total") == 4
        assert metric(text, "coredns_cache_misses_total") == 3
        assert metric(text, "coredns_cache_hits_total") == 1


@pytest.mark.slow
def test_corefile_cache_options_keepttl_disable_prefetch_and_serve_stale(tmp_path):
    """A Corefile's cache options as ``kdns serve`` runs them (their thresholds: test_forwarder.py)."""
    with upstream(
        "kept.keep.example. 300 IN A 192.0.2.1\n"
        "a.off.keep.example. 300 IN A 192.0.2.2\n"
        "hot.example.net. 2 IN A 192.0.2.3\n"
        "old.example.net. 2 IN A 192.0.2.4\n"
    ) as fake:
        corefile = tmp_path / "Corefile"
        corefile.write_text(
            "keep.example:0 {\n"
            "    bind 127.0.0.1\n"
            f"    forward . {fake.address}\n"
            "    cache {\n"
            "        keepttl\n"
            "        disable success off.keep.example\n"
            "    }\n"
            "}\n"
            ".:0 {\n"
            "    bind 127.0.0.1\n"
            "    prometheus 127.0.0.1:0\n"
            f"    forward . {fake.address} {{\n"
            "        max_fails 0\n"
            "    }\n"
            "    cache {\n"
            "        success 9984 3600 1\n"
            "        prefetch 1 1m 50%\n"
            "        serve_stale\n"
            "    }\n"
            "}\n"
        )

        def answered(name: str) -> tuple[list[str], int]:
            reply = ask(server.port, name)
            return [rdata.address for rdata in reply.answer[0]], reply.answer[0].ttl

        def moved(name: str, address: str) -> None:
            """The fake answers ``name`` with ``address`` from now on."""
            fake.records = [rr for rr in fake.records if str(rr.rname) != f"{name}."]
            fake.add(f"{name}. 2 IN A {address}")

        with running("--corefile", str(corefile)) as server:
            assert answered("kept.keep.example") == (["192.0.2.1"], 300)
            for name in ("a.off.keep.example", "a.off.keep.example", "hot.example.net", "old.example.net"):
                ask(server.port, name)
            time.sleep(1.2)
            assert answered("kept.keep.example") == (["192.0.2.1"], 300)  # keepttl: not counted down
            assert fake.count("kept.keep.example") == 1
            assert fake.count("a.off.keep.example") == 2  # disable success: never cached
            # prefetch 1 1m 50%: asked with no more than half its 2 s left, refreshed in the background
            moved("hot.example.net", "192.0.2.30")
            assert answered("hot.example.net") == (["192.0.2.3"], 1)
            eventually(lambda: answered("hot.example.net")[0] == ["192.0.2.30"])
            assert fake.count("hot.example.net") == 2
            # serve_stale (1h, immediate): expired, answered at once with TTL 0 while it is refreshed
            time.sleep(1.0)
            fake.slow["old.example.net"] = 1.0
            moved("old.example.net", "192.0.2.40")
            started = time.monotonic()
            assert answered("old.example.net") == (["192.0.2.4"], 0)
            assert time.monotonic() - started < 0.5  # not after the upstream's second
            eventually(lambda: answered("old.example.net") == (["192.0.2.40"], 2))
            assert fake.count("old.example.net") == 2
            text = get(endpoint(server, "metrics") + "/metrics")[1]
            assert metric(text, "coredns_cache_prefetch_total") == 1  # hot.example.net's
            assert metric(text, "coredns_cache_served_stale_total") >= 2  # old.example.net, till refreshed


def test_a_chased_external_name_target_is_cached_under_its_own_name(tmp_path):
    """kubeadm's Corefile caches nothing of cluster.local, so the chased answer is not kept under the
    ExternalName's question; its target's answer is kept under the target's name, as it is when a
    client follows the CNAME through CoreDNS: the target goes upstream once, not once per query, and
    its records carry no TTL above ``cache 30`` (the upstream gives 300), counting down. The composed
    answer is held beside kdns's own answer to the cluster name, so it is not made again per query."""
    with upstream("payments.example.com. 300 IN A 203.0.113.10\n") as fake:
        corefile = tmp_path / "Corefile"
        corefile.write_text(
            ".:0 {\n"
            "    bind 127.0.0.1\n"
            "    kubernetes cluster.local {\n"
            "        ttl 30\n"
            "    }\n"
            f"    forward . {fake.address}\n"
            "    cache 30 {\n"
            "        disable success cluster.local\n"
            "        disable denial cluster.local\n"
            "    }\n"
            "}\n"
        )
        example = ROOT / "zones" / "example.yaml"
        with running("--corefile", str(corefile), "--snapshot", str(example)) as server:
            reply = ask(server.port, "payments.shop.svc.cluster.local")
            assert values(reply) == [
                "payments.shop.svc.cluster.local. payments.example.com.",
                "payments.example.com. 203.0.113.10",
            ]
            assert [rrset.ttl for rrset in reply.answer] == [30, 30]
            time.sleep(1.1)
            again = ask(server.port, "PAYMENTS.shop.svc.cluster.local")
            assert values(again) == [
                "PAYMENTS.shop.svc.cluster.local. payments.example.com.",
                values(reply)[1],
            ]
            # held beside kdns's own answer (dropped when the cluster changes: test_real_cluster.py),
            # every TTL counting down as the cache counts it
            assert [rrset.ttl for rrset in again.answer] == [29, 29]
            direct = ask(server.port, "payments.example.com")  # as a client following the CNAME asks
            assert values(direct) == [values(reply)[1]] and direct.answer[0].ttl < 30
            assert fake.count("payments.example.com") == 1
