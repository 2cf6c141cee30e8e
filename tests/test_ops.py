"""Running kdns as a cluster add-on: a kubeadm Corefile served as written, probes and metrics over
HTTP, lameduck, reload, hosts, loadbalance, query logs and config files."""

from __future__ import annotations

import re
import signal
import time

import dns.message
import dns.rcode
import pytest

from tests.fake_upstream import upstream
from tests.kube_fake import KubeFake
from tests.support.client import ask
from tests.support.metrics import endpoint, get, metric
from tests.support.paths import COREFILES, EXAMPLE
from tests.support.polling import eventually
from tests.support.process import run_kdns, running

KUBEADM = (COREFILES / "kubeadm.Corefile").read_text()


def test_kubeadm_corefile_runs_as_written(tmp_path):
    """kubeadm's Corefile, with only the forward target pointed at a loopback upstream: port 53,
    health on :8080 with lameduck, ready on :8181, metrics on :9153, cache 30, reload, loadbalance."""
    with upstream("example.com. 300 IN A 93.184.216.34") as fake:
        corefile = tmp_path / "Corefile"
        corefile.write_text(KUBEADM.replace("forward . /etc/resolv.conf", f"forward . {fake.address}"))
        with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
            ready = server.logged("ready:")[0]
            assert "listening on 0.0.0.0, :: port 53 (udp, tcp)" in ready
            assert "; health on *:8080; ready on *:8181; metrics on *:9153" in ready
            assert get("http://127.0.0.1:8080/health") == (200, "OK")
            assert get("http://127.0.0.1:8181/ready") == (200, "OK")
            web = ask(53, "web.shop.svc.cluster.local")
            assert web.answer[0].ttl == 30 and web.answer[0][0].address == "10.96.100.10"
            assert ask(53, "example.com").answer[0][0].address == "93.184.216.34"
            assert ask(53, "10.100.96.10.in-addr.arpa", "PTR").answer[0][0].to_text() == (
                "web.shop.svc.cluster.local."
            )
            assert ask(53, "example.com").answer[0].ttl <= 30  # cache 30
            status, text = get("http://127.0.0.1:9153/metrics")
            assert status == 200
            assert metric(text, "coredns_dns_requests_total", proto="udp", type="A") >= 3
            assert metric(text, "coredns_dns_responses_total", rcode="NOERROR") >= 4
            assert metric(text, "coredns_cache_hits_total", type="success") >= 1
            assert metric(text, "coredns_forward_requests_total", to=fake.address) == 1
            assert metric(text, "coredns_dns_request_duration_seconds_count") >= 4
            assert "process_resident_memory_bytes" in text
            server.process.send_signal(signal.SIGTERM)  # lameduck 5s: still answering, not ready
            eventually(lambda: server.logged("lameduck: answering for 5.0 s more"))
            assert get("http://127.0.0.1:8080/health") == (200, "OK")
            assert get("http://127.0.0.1:8181/ready")[0] == 503
            assert ask(53, "web.shop.svc.cluster.local").rcode() == dns.rcode.NOERROR
            assert server.stop(signal.SIGTERM) == 0  # a second signal ends lameduck


@pytest.mark.slow
def test_probes_follow_the_sync(tmp_path):
    with KubeFake() as api:
        kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
        api.stop()
        with running(
            "--kubeconfig",
            kubeconfig,
            "--startup-timeout",
            "0.5",
            "--health",
            "127.0.0.1:0",
            "--ready",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ) as server:
            assert get(endpoint(server, "ready") + "/ready") == (503, "kubernetes")
            assert get(endpoint(server, "health") + "/health") == (200, "OK")
            assert metric(get(endpoint(server, "metrics") + "/metrics")[1], "kdns_kubernetes_synced") == 0
            api.start()
            eventually(lambda: get(endpoint(server, "ready") + "/ready") == (200, "OK"))
            text = get(endpoint(server, "metrics") + "/metrics")[1]
            assert metric(text, "kdns_kubernetes_synced") == 1
            assert metric(text, "kdns_kubernetes_lists_total", kind="Service") == 1


@pytest.mark.slow
def test_reload_applies_a_changed_corefile_without_dropping_queries(tmp_path):
    corefile = tmp_path / "Corefile"
    corefile.write_text(
        ".:0 {\n  bind 127.0.0.1\n  kubernetes cluster.local {\n    ttl 30\n  }\n  reload 2s\n}\n"
    )
    with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
        assert ask(server.port, "web.shop.svc.cluster.local").answer[0].ttl == 30
        corefile.write_text(corefile.read_text().replace("ttl 30", "ttl 7"))
        answered = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            reply = ask(server.port, "web.shop.svc.cluster.local")
            answered += 1
            if reply.answer[0].ttl == 7:
                break
        assert reply.answer[0].ttl == 7 and answered > 1
        # logged once the HTTP endpoints are back, after the new answers are served
        eventually(lambda: server.logged(f"reloaded {corefile}"))
        corefile.write_text("this is { not a Corefile")
        eventually(lambda: server.logged(f"reload of {corefile} failed, keeping the running configuration"))
        assert ask(server.port, "web.shop.svc.cluster.local").answer[0].ttl == 7


@pytest.mark.slow
def test_a_reload_that_changes_what_the_cluster_source_hands_over_is_refused(tmp_path):
    """noendpoints and namespace_labels choose which objects are read at the start: a reload that
    changes them keeps the running configuration and says to restart."""
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:0 {\n  bind 127.0.0.1\n  kubernetes cluster.local\n  reload 2s\n}\n")
    with running("--corefile", str(corefile), "--snapshot", str(EXAMPLE)) as server:
        headless = "postgres.data.svc.cluster.local"
        assert ask(server.port, headless).rcode() == dns.rcode.NOERROR
        corefile.write_text(
            corefile.read_text().replace("cluster.local\n", "cluster.local {\n    noendpoints\n  }\n", 1)
        )
        eventually(
            lambda: server.logged("reload: noendpoints changed; restart kdns to follow the new cluster")
        )
        assert ask(server.port, headless).rcode() == dns.rcode.NOERROR


@pytest.mark.slow
def test_hosts_file_answers_and_reloads(tmp_path):
    hosts = tmp_path / "NodeHosts"
    hosts.write_text("172.18.0.2 control-plane\n172.18.0.3 worker-1 worker-1.local\n")
    with (
        upstream("example.com. 300 IN A 93.184.216.34") as fake,
        running("--hosts", str(hosts), "--hosts-fallthrough", "--upstream", fake.address) as server,
    ):
        assert ask(server.port, "control-plane").answer[0][0].address == "172.18.0.2"
        assert ask(server.port, "worker-1.local").answer[0][0].address == "172.18.0.3"
        assert ask(server.port, "3.0.18.172.in-addr.arpa", "PTR").answer[0][0].to_text() == "worker-1."
        assert ask(server.port, "example.com").answer[0][0].address == "93.184.216.34"  # fallthrough
        time.sleep(1.1)  # a new mtime
        hosts.write_text("172.18.0.9 control-plane\n")
        eventually(lambda: ask(server.port, "control-plane").answer[0][0].address == "172.18.0.9")
    with running("--hosts", str(hosts)) as server:  # without fallthrough: CoreDNS's hosts answers SERVFAIL
        assert ask(server.port, "not-in-hosts").rcode() == dns.rcode.SERVFAIL
        assert ask(server.port, "web.shop.svc.cluster.local").answer  # cluster names stay the cluster's


def test_loadbalance_rotates_addresses(tmp_path):
    with running("--loadbalance") as server:
        orders = {
            tuple(r.address for r in ask(server.port, "postgres.data.svc.cluster.local").answer[0])
            for _ in range(6)
        }
        assert orders == {("10.244.1.30", "10.244.2.31"), ("10.244.2.31", "10.244.1.30")}
    with running() as server:
        orders = {
            tuple(r.address for r in ask(server.port, "postgres.data.svc.cluster.local").answer[0])
            for _ in range(6)
        }
        assert len(orders) == 1


def test_query_log_lines():
    """--log-queries is CoreDNS's plain 'log': every query, in the common log format (TCP queries
    show CoreDNS's 65535 as their buffer size, durations are seconds to the nanosecond)."""
    with running("--log-queries") as server:
        query = dns.message.make_query("web.shop.svc.cluster.local", "A", use_edns=0, payload=1232)
        ask(server.port, query)
        ask(server.port, "nope.shop.svc.cluster.local", "AAAA", tcp=True)
        lines = eventually(lambda: len(server.logged("kdns.query")) >= 2 and server.logged("kdns.query"))
        assert re.search(
            rf'127\.0\.0\.1:\d+ - {query.id} "A IN web\.shop\.svc\.cluster\.local\. udp {len(query.to_wire())} '
            r'false 1232" NOERROR qr,aa,rd \d+ \d+(\.\d{1,9})?s$',
            lines[0],
        )
        assert re.search(
            r'"AAAA IN nope\.shop\.svc\.cluster\.local\. tcp \d+ false 65535" NXDOMAIN qr,aa,rd \d+ ',
            lines[1],
        )


def test_config_file_collects_options(tmp_path):
    config = tmp_path / "kdns.yaml"
    config.write_text("ttl: 42\nloadbalance: true\nzone: [cluster.local, corp.example]\nno-forward: true\n")
    with running("--config", str(config)) as server:
        assert ask(server.port, "web.shop.svc.corp.example").answer[0].ttl == 42
    bad = tmp_path / "bad.yaml"
    bad.write_text("ttl: 5\nnot_an_option: 1\n")
    result = run_kdns("serve", "--config", str(bad))
    assert (
        result.returncode == 2 and f"{bad}: 'not_an_option' is not an option of kdns serve" in result.stderr
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--corefile", "tests/corefiles/kubeadm.Corefile", "--ttl", "9"], "--ttl cannot be given with it"),
        (["--corefile", "/nonexistent/Corefile"], "/nonexistent/Corefile"),
    ],
)
def test_corefile_usage_errors(args, message):
    result = run_kdns("serve", *args)
    assert result.returncode == 2 and message in result.stderr


def test_unsupported_corefile_plugins_are_named(tmp_path):
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:53 {\n  kubernetes cluster.local\n  etcd example.org\n  bogus\n}\n")
    result = run_kdns("serve", "--corefile", str(corefile))
    assert result.returncode == 2
    assert (
        f"{corefile}:3: plugin etcd is not supported by kdns: it serves a zone kept in etcd" in result.stderr
    )
    assert f"{corefile}:4: unknown directive 'bogus': not a plugin of CoreDNS itself" in result.stderr


@pytest.mark.slow
def test_workers_share_the_port_and_report_together():
    with running("--workers", "2", "--metrics", "127.0.0.1:0", "--ready", "127.0.0.1:0") as server:
        eventually(lambda: server.logged("ready: 2 workers"))
        eventually(lambda: len(server.logged("ready: listening on")) == 2)
        for _ in range(40):  # each from a new socket: the kernel spreads them by source port
            assert ask(server.port, "web.shop.svc.cluster.local").answer[0][0].address == "10.96.100.10"
        assert get(endpoint(server, "ready") + "/ready") == (200, "OK")
        text = get(endpoint(server, "metrics") + "/metrics")[1]
        assert metric(text, "coredns_dns_requests_total", type="A") == 40  # both workers, added up
        assert metric(text, "kdns_zone_names") == 138  # the same zone in each, not added up
        assert server.stop() == 0
    assert server.logged("shutting down")
