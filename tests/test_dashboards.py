"""CoreDNS's dashboards and alerts on kdns's /metrics, unchanged: a real Prometheus scrapes kdns (a
Corefile of several server blocks, and ``--workers 2``) following a real API server, while real
queries come in (cluster names, forwarded names, NXDOMAIN, a DO query, TCP, IPv6, a malformed
packet); then every collected alert expression must evaluate and find every series it reads, and
every panel and template-variable query of each dashboard must return data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fake_upstream import upstream
from tests.support.client import ask, udp_exchange
from tests.support.coredns import Ports, kubeadm_corefile
from tests.support.metrics import endpoint, scrape
from tests.support.polling import eventually
from tests.support.process import free_port, running
from tests.support.prometheus import (
    Prometheus,
    dashboards,
    scraped,
    scraping,
    selectors,
    substitute,
    variables,
)
from tests.support.real_objects import core_api, create_namespace, create_service, run_pod

pytestmark = pytest.mark.slow

# Metrics only a Go process has: kdns has no goroutines, and makes up no such series.
GO_RUNTIME_ONLY = re.compile(r"\bgo_\w+")
FORWARDED = "www.example.org."
BROKEN = "broken.example.org."  # upstream answers SERVFAIL: the error-rate alerts read SERVFAIL series
TARGET_LABELS = {"k8s_app": "kube-dns", "cluster": "test"}


@dataclass
class Traffic:
    """The names the queries are for, in the namespace the test made."""

    service: str
    headless: str


def cluster_objects(kubeconfig: Path, namespace: str) -> Traffic:
    """A ClusterIP and a headless Service with a selector; their pods are made ready later, so the real
    EndpointSlice controller changes their slices (stamping the trigger time) while kdns watches."""
    api = core_api(kubeconfig)
    create_namespace(api, namespace, for_pods=True)
    create_service(api, namespace, "web", ports=[("http", 80, "TCP")], selector={"app": "web"})
    create_service(
        api, namespace, "db", ports=[("pg", 5432, "TCP")], selector={"app": "db"}, cluster_ip="None"
    )
    return Traffic(f"web.{namespace}.svc.cluster.local.", f"db.{namespace}.svc.cluster.local.")


DASHBOARD_SUBNETS = 60  # pod addresses 10.244.60+N.x: apart from the other tests sharing the cluster


def make_ready(kubeconfig: Path, namespace: str, subnet: int) -> None:
    """Run a pod for each Service, then report it Ready with the time it became so, as a kubelet does:
    the EndpointSlice controller stamps that time on the slice it changes."""
    api = core_api(kubeconfig)
    prefix = f"10.244.{DASHBOARD_SUBNETS + subnet}"
    for name, app, ip in (("web-0", "web", f"{prefix}.10"), ("db-0", "db", f"{prefix}.20")):
        run_pod(api, namespace, name, ip, labels={"app": app}, ready=False)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": now}
        api.patch_namespaced_pod_status(name, namespace, {"status": {"conditions": [ready]}})


def send_queries(traffic: Traffic, ports: list[tuple[str, int]]) -> None:
    """Each kind of query, to each server block (``host``, ``port``)."""
    malformed = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www"  # the question cut short
    for host, port in ports:
        for _ in range(3):
            ask(port, FORWARDED, host=host)
            ask(port, BROKEN, host=host)
            ask(port, FORWARDED, "AAAA", host=host, want_dnssec=True)  # a DO query
            ask(port, f"missing.{traffic.service.split('.', 1)[1]}", host=host)  # NXDOMAIN
            ask(port, traffic.service, host=host, tcp=True)
            ask(port, traffic.service, "SRV", host=host, use_edns=0)
            ask(port, traffic.headless, host=host)
        if host == "127.0.0.1":
            reply = udp_exchange(port, malformed)
            assert reply is not None and reply[3] & 0x0F == 1  # FORMERR


def check_dashboards(prometheus: Prometheus) -> dict[str, tuple[int, int]]:
    """Assert what the dashboards and alerts need; return each dashboard's (queries with data, all)."""
    counts = {}
    for name, dashboard in dashboards().items():
        for rule in dashboard.get("alerts", ()):
            prometheus.results(rule["expr"])  # evaluates without error
            for selector in selectors(rule["expr"]):
                assert prometheus.results(f"count({selector})"), f"{rule['alert']}: no series {selector}"
        values = variables(prometheus, dashboard)
        for variable, found in values.items():
            assert found, f"{name}: variable ${variable} has no values"
        answered = total = 0
        for panel in dashboard["panels"]:
            for query in panel["queries"]:
                total += 1
                expr = substitute(query, values)
                data = prometheus.results(expr)
                if GO_RUNTIME_ONLY.search(expr):
                    assert not data, f"{name}: {panel['title']}: a Go runtime series from kdns"
                    continue
                assert data, f"{name}: {panel['title']}: no data for {expr}"
                answered += 1
        counts[name] = (answered, total)
    return counts


def programmed(url: str) -> bool:
    samples = scrape(url)
    return any(
        name == "coredns_kubernetes_dns_programming_duration_seconds_count" and value > 0
        for (name, _), value in samples.items()
    )


@pytest.fixture
def forwarded() -> Iterator[str]:
    with upstream(f"{FORWARDED} 300 IN A 192.0.2.80\n{FORWARDED} 300 IN AAAA 2001:db8::80\n") as fake:
        fake.rcodes[BROKEN.rstrip(".")] = 2  # SERVFAIL
        yield f"127.0.0.1:{fake.port}"


def test_dashboards_and_alerts_on_a_corefile_of_several_server_blocks(real_cluster, forwarded, tmp_path):
    traffic = cluster_objects(real_cluster.kubeconfig, "dash-corefile")
    ports = Ports.free()
    other = free_port()
    corefile = kubeadm_corefile(ports, kubeconfig=real_cluster.kubeconfig, upstream=forwarded)
    corefile += f"example.org:{other} {{\n    bind 127.0.0.1 ::1\n    errors\n    forward . {forwarded}\n    cache 30\n}}\n"
    path = tmp_path / "Corefile"
    path.write_text(corefile)
    with running("--corefile", str(path)) as server:
        url = f"http://127.0.0.1:{ports.metrics}/metrics"
        eventually(lambda: ask(ports.dns, traffic.service).rcode() == 0, timeout=30)
        make_ready(real_cluster.kubeconfig, "dash-corefile", 1)
        eventually(lambda: programmed(url), timeout=30)
        with scraping(tmp_path, [f"127.0.0.1:{ports.metrics}"], TARGET_LABELS) as prometheus:
            send_queries(traffic, [("127.0.0.1", ports.dns), ("127.0.0.1", other), ("::1", other)])
            scraped(prometheus, 5)
            counts = check_dashboards(prometheus)
            servers = {r["metric"]["server"] for r in prometheus.results("coredns_dns_requests_total")}
        assert server.process.poll() is None
    assert servers == {f"dns://127.0.0.1:{ports.dns}", f"dns://127.0.0.1:{other}", f"dns://[::1]:{other}"}
    print(counts)


def test_dashboards_and_alerts_on_two_workers(real_cluster, forwarded, tmp_path):
    traffic = cluster_objects(real_cluster.kubeconfig, "dash-workers")
    args = ("--kubeconfig", str(real_cluster.kubeconfig), "--upstream", forwarded)
    with running(
        *args, "--workers", "2", "--metrics", "127.0.0.1:0", "--listen", "127.0.0.1", "::1"
    ) as server:
        url = endpoint(server, "metrics")
        eventually(lambda: ask(server.port, traffic.service).rcode() == 0, timeout=30)
        make_ready(real_cluster.kubeconfig, "dash-workers", 2)
        eventually(lambda: programmed(f"{url}/metrics"), timeout=30)
        with scraping(tmp_path, [url.removeprefix("http://")], TARGET_LABELS) as prometheus:
            send_queries(traffic, [("127.0.0.1", server.port), ("::1", server.port)])
            scraped(prometheus, 5)
            counts = check_dashboards(prometheus)
            workers = {r["metric"]["worker"] for r in prometheus.results("process_resident_memory_bytes")}
    assert workers == {"0", "1"}  # each worker's memory, not their sum
    print(counts)
