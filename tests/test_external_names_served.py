"""k8s_external and multicluster names served by ``kdns serve`` over real sockets: from a snapshot, and
following the fake API server through the real client as Services get load balancer IPs and
ServiceImports come and go (their CRD missing at first)."""

from __future__ import annotations

import json
import subprocess

import dns.rcode
import pytest

from tests.kube_fake import KubeFake
from tests.support.client import ask, lookup
from tests.support.host import an_own_ipv4
from tests.support.objects import (
    endpoint_slice,
    imported_slice,
    namespace,
    service,
    service_import,
)
from tests.support.polling import eventually
from tests.support.process import running

pytestmark = pytest.mark.slow  # each test runs kdns as a process, some through changes for seconds

HTTP = [("http", 80, "TCP")]
MISSING_CRD = "does not serve multicluster.x-k8s.io/v1alpha1"


def with_ingress(obj: dict, *ips: str) -> dict:
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    return obj


def snapshot_objects() -> list[dict]:
    return [
        namespace("default"),
        namespace("kube-system"),
        with_ingress(service("web", ip="10.96.0.80", ports=HTTP, externalIPs=["192.0.2.10"]), "192.0.2.11"),
        # kdns's own Service: its endpoint is one of the host's addresses, where kdns listens
        service("kube-dns", "kube-system", ip="10.96.0.10", externalIPs=["192.0.2.53"]),
        endpoint_slice("kube-dns-1", "kube-dns", "kube-system", addresses=[an_own_ipv4()]),
        service("db", ip="None", ports=[("pg", 5432, "TCP")]),
        endpoint_slice(
            "db-1",
            "db",
            addresses=[{"addresses": ["10.1.0.1"], "hostname": "db-0", "conditions": {"ready": True}}],
            ports=[("pg", 5432, "TCP")],
        ),
        service_import("web", ips=["10.42.0.5"], ports=HTTP),
        imported_slice("db-a", "db", "cluster-a", addresses=["10.7.0.1"], ports=[("pg", 5432, "TCP")]),
        service_import("db", kind="Headless", ports=[("pg", 5432, "TCP")]),
    ]


@pytest.fixture
def snapshot(tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": snapshot_objects()}))
    return str(path)


COREFILE = """.:0 {
    bind 0.0.0.0
    kubernetes cluster.local clusterset.local in-addr.arpa ip6.arpa {
        multicluster clusterset.local
    }
    k8s_external example.org {
        headless
    }
}
"""


@pytest.mark.parametrize("configured", ["options", "corefile"])
def test_external_and_multicluster_names_from_a_snapshot(snapshot, tmp_path, configured):
    options = (
        *("--listen", "0.0.0.0"),
        *("--multicluster", "clusterset.local", "--external", "example.org", "--external-headless"),
    )
    if configured == "corefile":  # the same plugins as a Corefile asks for them
        corefile = tmp_path / "Corefile"
        corefile.write_text(COREFILE)
        options = ("--corefile", str(corefile))
    with running("--snapshot", snapshot, *options) as server:
        port = server.port
        assert lookup(port, "web.default.example.org") == ("NOERROR", {"192.0.2.10", "192.0.2.11"})
        assert lookup(port, "_http._tcp.web.default.example.org", "SRV") == (
            "NOERROR",
            {"0 50 80 web.default.example.org."},
        )
        assert lookup(port, "db-0.db.default.example.org") == ("NOERROR", {"10.1.0.1"})
        assert lookup(port, "ns1.dns.example.org") == ("NOERROR", {"192.0.2.53"})
        apex = ask(port, "example.org", "NS")
        assert [rrset.to_text() for rrset in apex.answer] == ["example.org. 5 IN NS ns1.dns.example.org."]
        assert [rrset.to_text() for rrset in apex.additional] == ["ns1.dns.example.org. 5 IN A 192.0.2.53"]
        missing = ask(port, "nothing.default.example.org")
        assert missing.rcode() == dns.rcode.NXDOMAIN
        assert missing.authority[0].to_text().startswith("example.org. 5 IN SOA ns1.dns.example.org.")

        assert lookup(port, "web.default.svc.clusterset.local") == ("NOERROR", {"10.42.0.5"})
        assert lookup(port, "web.default.svc.cluster.local") == ("NOERROR", {"10.96.0.80"})
        assert lookup(port, "db-0.cluster-a.db.default.svc.clusterset.local") == ("NXDOMAIN", set())
        assert lookup(port, "10-7-0-1.cluster-a.db.default.svc.clusterset.local") == ("NOERROR", {"10.7.0.1"})


def test_dig_asks_over_tcp_too(snapshot):
    with running("--snapshot", snapshot, "--external", "example.org") as server:
        printed = subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(server.port), "+tcp", "+short", "web.default.example.org", "A"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        assert set(printed.split()) == {"192.0.2.10", "192.0.2.11"}


@pytest.fixture
def kubeconfig(kube_api: KubeFake, tmp_path):
    return str(kube_api.write_kubeconfig(tmp_path / "kubeconfig"))


def test_a_load_balancer_ip_assigned_later_is_answered(kube_api, kubeconfig):
    for obj in (namespace("default"), service("shop", ip="10.96.0.90", ports=HTTP, type="LoadBalancer")):
        kube_api.create(obj)
    with running("--kubeconfig", kubeconfig, "--external", "example.org") as server:
        port = server.port
        assert lookup(port, "shop.default.example.org") == ("NXDOMAIN", set())  # no IP yet, and cached
        kube_api.update(
            with_ingress(service("shop", ip="10.96.0.90", ports=HTTP, type="LoadBalancer"), "203.0.113.9")
        )
        eventually(lambda: lookup(port, "shop.default.example.org") == ("NOERROR", {"203.0.113.9"}))
        kube_api.update(service("shop", ip="10.96.0.90", ports=HTTP, type="LoadBalancer"))
        eventually(lambda: lookup(port, "shop.default.example.org") == ("NXDOMAIN", set()))


def test_service_imports_are_followed_once_their_crd_is_installed(kube_api, kubeconfig):
    kube_api.create(namespace("default"))
    kube_api.create(service("web", ip="10.96.0.80", ports=HTTP))
    kube_api.uninstall("ServiceImport")
    with running("--kubeconfig", kubeconfig, "--multicluster", "clusterset.local") as server:
        port = server.port
        assert server.logged("synced with the Kubernetes API")  # a missing CRD does not hold it back
        assert lookup(port, "web.default.svc.cluster.local") == ("NOERROR", {"10.96.0.80"})
        assert lookup(port, "web.default.svc.clusterset.local") == ("NXDOMAIN", set())
        eventually(lambda: kube_api.list_count("ServiceImport") >= 2, timeout=10)  # looked for again
        assert len(server.logged(MISSING_CRD)) == 1  # said once
        assert not server.logged("Kubernetes API unavailable")  # not an outage

        kube_api.install("ServiceImport")
        kube_api.create(service_import("web", ips=["10.42.0.5"], ports=HTTP))
        eventually(
            lambda: lookup(port, "web.default.svc.clusterset.local") == ("NOERROR", {"10.42.0.5"}), timeout=40
        )
        assert server.logged("serves multicluster.x-k8s.io/v1alpha1 now")

        kube_api.create(service_import("db", kind="Headless", ports=[("pg", 5432, "TCP")]))
        kube_api.create(
            imported_slice("db-b", "db", "cluster-b", addresses=["10.8.0.2"], ports=[("pg", 5432, "TCP")])
        )
        eventually(lambda: lookup(port, "db.default.svc.clusterset.local") == ("NOERROR", {"10.8.0.2"}))
        eventually(
            lambda: (
                lookup(port, "_pg._tcp.db.default.svc.clusterset.local", "SRV")
                == ("NOERROR", {"0 100 5432 10-8-0-2.cluster-b.db.default.svc.clusterset.local."})
            )
        )
        kube_api.delete("ServiceImport", "default", "web")
        eventually(lambda: lookup(port, "web.default.svc.clusterset.local") == ("NXDOMAIN", set()))
