"""kdns following a cluster: ``kdns serve --kubeconfig`` against the fake API server, through the real
client, observed through real DNS queries."""

from __future__ import annotations

import os
import re

import pytest

from tests.kube_fake import NO_RESPONSE, KubeFake
from tests.support.client import lookup
from tests.support.dot import Certificates
from tests.support.objects import endpoint_slice, namespace, pod, service
from tests.support.polling import eventually
from tests.support.process import free_port, run_kdns, running

pytestmark = pytest.mark.slow  # each test follows the fake API through changes and outages for seconds


def answers(port: int, name: str, expected: set[str], qtype: str = "A"):
    return eventually(lambda: lookup(port, name, qtype) == ("NOERROR", expected))


def gone(port: int, name: str):
    return eventually(lambda: lookup(port, name)[0] == "NXDOMAIN")


def ready(address: str, *, ready: bool = True) -> dict:
    return {"addresses": [address], "conditions": {"ready": ready}}


@pytest.fixture
def cluster(kube_api: KubeFake) -> KubeFake:
    for obj in (
        namespace("default"),
        namespace("db"),
        service("web", ip="10.96.0.50", ports=[("http", 80, "TCP")]),
        endpoint_slice("web-1", "web", addresses=["10.1.0.1", "10.1.0.2"], ports=[("http", 8080, "TCP")]),
        service("pg", "db", ip="None", ports=[("pg", 5432, "TCP")]),
        endpoint_slice("pg-1", "pg", "db", addresses=[ready("10.2.0.1")], ports=[("pg", 5432, "TCP")]),
    ):
        kube_api.create(obj)
    return kube_api


@pytest.fixture
def kubeconfig(kube_api: KubeFake, tmp_path):
    return str(kube_api.write_kubeconfig(tmp_path / "kubeconfig"))


def test_serves_the_cluster_once_synced(cluster, kubeconfig):
    with running("--kubeconfig", kubeconfig) as server:
        assert server.logged("synced with the Kubernetes API")
        assert lookup(server.port, "web.default.svc.cluster.local") == ("NOERROR", {"10.96.0.50"})
        assert lookup(server.port, "pg.db.svc.cluster.local") == ("NOERROR", {"10.2.0.1"})
        assert "2 services (1 headless), 3 endpoints" in server.logged("ready:")[0]
        assert cluster.list_count("pods") == 0  # pods are watched only for --pods verified


def test_creates_updates_and_deletes_show_up(cluster, kubeconfig):
    with running("--kubeconfig", kubeconfig) as server:
        port = server.port
        cluster.update(service("web", ip="10.96.0.51", ports=[("http", 80, "TCP")]))
        answers(port, "web.default.svc.cluster.local", {"10.96.0.51"})
        answers(port, "51.0.96.10.in-addr.arpa", {"web.default.svc.cluster.local."}, "PTR")

        cluster.create(service("api", ip="10.96.0.60", ports=[("grpc", 9090, "TCP")]))
        answers(
            port,
            "_grpc._tcp.api.default.svc.cluster.local",
            {"0 100 9090 api.default.svc.cluster.local."},
            "SRV",
        )
        cluster.delete("Service", "default", "api")
        gone(port, "api.default.svc.cluster.local")

        cluster.update(
            endpoint_slice("web-1", "web", addresses=["10.1.0.2", "10.1.0.3"], ports=[("http", 8080, "TCP")])
        )
        answers(port, "10-1-0-3.web.default.svc.cluster.local", {"10.1.0.3"})
        gone(port, "10-1-0-1.web.default.svc.cluster.local")


def test_endpoints_going_not_ready_and_slices_split(cluster, kubeconfig):
    with running("--kubeconfig", kubeconfig) as server:
        port = server.port
        cluster.create(
            endpoint_slice("pg-2", "pg", "db", addresses=[ready("10.2.0.2")], ports=[("pg", 5432, "TCP")])
        )
        answers(port, "pg.db.svc.cluster.local", {"10.2.0.1", "10.2.0.2"})
        answers(
            port,
            "_pg._tcp.pg.db.svc.cluster.local",
            {"0 50 5432 10-2-0-1.pg.db.svc.cluster.local.", "0 50 5432 10-2-0-2.pg.db.svc.cluster.local."},
            "SRV",
        )
        cluster.update(
            endpoint_slice(
                "pg-1", "pg", "db", addresses=[ready("10.2.0.1", ready=False)], ports=[("pg", 5432, "TCP")]
            )
        )
        answers(port, "pg.db.svc.cluster.local", {"10.2.0.2"})
        gone(port, "10-2-0-1.pg.db.svc.cluster.local")
        cluster.delete("EndpointSlice", "db", "pg-2")
        gone(port, "pg.db.svc.cluster.local")  # a headless Service without ready endpoints


def test_watch_dropped_and_resumed_without_relisting(cluster, kubeconfig):
    with running("--kubeconfig", kubeconfig) as server:
        lists, watches = cluster.list_count("services"), cluster.watch_count("services")
        cluster.close_watches()
        cluster.create(service("late", ip="10.96.0.70"))
        answers(server.port, "late.default.svc.cluster.local", {"10.96.0.70"})
        assert cluster.list_count("services") == lists
        assert cluster.watch_count("services") > watches
        watches = [
            r
            for r in cluster.requests
            if r.path.endswith("/services") and r.query.get("watch") and not r.query.get("sendInitialEvents")
        ]  # the watch list the fake refused aside, every watch resumes from a version
        assert all(r.query["resourceVersion"] not in ("", "0") for r in watches)


def test_gone_relists_and_forgets_what_was_deleted_in_the_gap(cluster, kubeconfig):
    with running("--kubeconfig", kubeconfig) as server:
        port = server.port
        lists = cluster.list_count("services")
        cluster.stop()
        cluster.delete("Service", "default", "web")
        cluster.delete("EndpointSlice", "default", "web-1")
        cluster.create(service("new", ip="10.96.0.80"))
        cluster.compact()  # the versions kdns holds are gone: its next watch gets 410
        cluster.start()
        gone(port, "web.default.svc.cluster.local")
        answers(port, "new.default.svc.cluster.local", {"10.96.0.80"})
        gone(port, "10-1-0-1.web.default.svc.cluster.local")
        assert cluster.list_count("services") > lists
        assert server.logged("expired; listing again")
        eventually(lambda: server.logged("relisted Services: 2 objects, "))


def test_api_outage_keeps_the_zone_and_converges_when_back(cluster, kubeconfig):
    with running("--kubeconfig", kubeconfig) as server:
        port = server.port
        cluster.stop()
        eventually(lambda: server.logged("Kubernetes API unavailable"))
        for _ in range(20):
            assert lookup(port, "web.default.svc.cluster.local") == ("NOERROR", {"10.96.0.50"})
        cluster.update(service("web", ip="10.96.0.99", ports=[("http", 80, "TCP")]))
        cluster.delete("Service", "db", "pg")
        cluster.start()
        answers(
            port,
            "web.default.svc.cluster.local",
            {"10.96.0.99"},
        )
        gone(port, "pg.db.svc.cluster.local")
        eventually(lambda: server.logged("Kubernetes API available again"))
        assert len(server.logged("Kubernetes API unavailable")) == 1
        assert len(server.logged("Kubernetes API available again")) == 1


def test_an_api_that_resets_every_request_is_reported_unavailable(cluster, kubeconfig):
    """A proxy in front of a dead API accepts connections and closes them: after a few broken
    requests in a row that is an outage, logged once, and its end once."""
    with running("--kubeconfig", kubeconfig) as server:
        cluster.fail(NO_RESPONSE, count=10_000)
        cluster.reset_connections()  # the open watches break; every retry breaks too
        eventually(lambda: server.logged("Kubernetes API unavailable"))
        assert lookup(server.port, "web.default.svc.cluster.local") == ("NOERROR", {"10.96.0.50"})
        cluster.clear_failures()
        eventually(lambda: server.logged("Kubernetes API available again"), timeout=40)
        assert len(server.logged("Kubernetes API unavailable")) == 1


def test_a_silent_watch_is_restarted(cluster, kubeconfig):
    with running("--kubeconfig", kubeconfig, "--watch-idle-timeout", "1") as server:
        cluster.hang_watches(True)
        cluster.create(service("quiet", ip="10.96.0.77"))
        eventually(lambda: server.logged("services: watch went silent; again from"))
        assert lookup(server.port, "quiet.default.svc.cluster.local")[0] == "NXDOMAIN"
        cluster.hang_watches(False)
        answers(server.port, "quiet.default.svc.cluster.local", {"10.96.0.77"})
        assert not server.logged("Kubernetes API unavailable")


def test_starts_after_the_startup_timeout_when_the_api_is_down(cluster, kubeconfig):
    cluster.stop()
    with running("--kubeconfig", kubeconfig, "--startup-timeout", "1") as server:
        assert server.logged("starting unsynced after 1.0 s")
        assert lookup(server.port, "cluster.local", "SOA")[0] == "NOERROR"
        # not listed yet, it may exist: SERVFAIL, as CoreDNS answers before its first sync
        assert lookup(server.port, "web.default.svc.cluster.local")[0] == "SERVFAIL"
        cluster.start()
        answers(server.port, "web.default.svc.cluster.local", {"10.96.0.50"})
        eventually(lambda: server.logged("synced with the Kubernetes API"))


def test_bad_objects_are_skipped_with_a_log_line(cluster, kubeconfig):
    cluster.create(service("broken", ip="10.96.0.999"))
    cluster.create(endpoint_slice("web-fqdn", "web", address_type="FQDN"))
    with running("--kubeconfig", kubeconfig) as server:
        assert server.logged("services: skipped Service default/broken: invalid IP address '10.96.0.999'")
        assert server.logged("endpointslices: ignored EndpointSlice default/web-fqdn: addressType 'FQDN'")
        assert lookup(server.port, "web.default.svc.cluster.local") == ("NOERROR", {"10.96.0.50"})
        cluster.update(service("web", ip="not-an-ip"))
        eventually(lambda: server.logged("skipped Service default/web"))
        assert lookup(server.port, "web.default.svc.cluster.local") == (
            "NOERROR",
            {"10.96.0.50"},
        )  # last good


def test_pods_verified_watches_pods(cluster, kubeconfig):
    cluster.create(
        {
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "db"},
            "status": {"phase": "Running", "podIP": "10.2.0.9", "podIPs": [{"ip": "10.2.0.9"}]},
        }
    )
    with running("--kubeconfig", kubeconfig, "--pods", "verified") as server:
        assert lookup(server.port, "10-2-0-9.db.pod.cluster.local") == ("NOERROR", {"10.2.0.9"})
        assert lookup(server.port, "10-2-0-8.db.pod.cluster.local")[0] == "NXDOMAIN"
        cluster.delete("Pod", "db", "p")
        gone(server.port, "10-2-0-9.db.pod.cluster.local")


def test_pods_verified_forgets_a_pod_once_it_terminates_or_finishes(cluster, kubeconfig):
    cluster.create(pod("p", "db", ips=["10.2.0.9"]))
    cluster.create(pod("q", "db", ips=["10.2.0.10"]))
    with running("--kubeconfig", kubeconfig, "--pods", "verified") as server:
        assert lookup(server.port, "10-2-0-9.db.pod.cluster.local") == ("NOERROR", {"10.2.0.9"})
        assert lookup(server.port, "10-2-0-10.db.pod.cluster.local") == ("NOERROR", {"10.2.0.10"})
        cluster.update(pod("p", "db", ips=["10.2.0.9"], deleting=True))
        gone(server.port, "10-2-0-9.db.pod.cluster.local")
        cluster.update(pod("q", "db", ips=["10.2.0.10"], phase="Failed"))
        gone(server.port, "10-2-0-10.db.pod.cluster.local")


def test_labels_select_services_on_the_server_and_namespaces_filter(cluster, kubeconfig):
    labelled = service("shop", ip="10.96.0.90")
    labelled["metadata"]["labels"] = {"app": "shop"}
    cluster.create(labelled)
    with running("--kubeconfig", kubeconfig, "--labels", "app=shop", "--namespace", "default") as server:
        assert lookup(server.port, "shop.default.svc.cluster.local") == ("NOERROR", {"10.96.0.90"})
        assert lookup(server.port, "web.default.svc.cluster.local")[0] == "NXDOMAIN"
        assert lookup(server.port, "db.svc.cluster.local")[0] == "NXDOMAIN"
        assert all(
            r.query.get("labelSelector") == ["app=shop"] or r.query.get("labelSelector") == "app=shop"
            for r in cluster.requests
            if r.path.endswith("/services")
        )
        unlabelled = service("shop", ip="10.96.0.90")
        cluster.update(unlabelled)  # stops matching: the API sends DELETED
        gone(server.port, "shop.default.svc.cluster.local")


def test_dump_lists_the_live_cluster(cluster, kubeconfig):
    result = run_kdns("dump", "--kubeconfig", kubeconfig)
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "web.default.svc.cluster.local. 5 IN A 10.96.0.50" in lines
    assert "pg.db.svc.cluster.local. 5 IN A 10.2.0.1" in lines


UNAVAILABLE = re.compile(r"Kubernetes API unavailable \((?P<resource>[a-z]+): (?P<error>.+?)\)")


def test_dump_of_an_unreachable_api_is_one_line_worded_as_serve_logs_it(tmp_path):
    nobody = KubeFake(port=free_port())  # never started: nothing listens on its loopback port
    kubeconfig = str(nobody.write_kubeconfig(tmp_path / "kubeconfig"))
    dumped = run_kdns("dump", "--kubeconfig", kubeconfig)
    assert dumped.returncode == 2
    [line] = dumped.stderr.splitlines()
    assert line.startswith("kdns: error: Kubernetes API unavailable (namespaces: ")
    assert "Connection refused" in line
    with running("--kubeconfig", kubeconfig, "--startup-timeout", "0.2") as server:
        warned = eventually(lambda: server.logged("Kubernetes API unavailable ("))
    served = UNAVAILABLE.search(warned[0])
    assert UNAVAILABLE.search(line)["error"] == served["error"]


def test_dump_refused_by_the_api_is_one_line(kube_api: KubeFake, kubeconfig):
    kube_api.fail(403, count=10)
    dumped = run_kdns("dump", "--kubeconfig", kubeconfig)
    assert dumped.returncode == 2
    assert dumped.stderr.splitlines() == [
        "kdns: error: namespaces: forbidden to list them (HTTP 403 Forbidden: fake failure: Forbidden); "
        "kdns needs list and watch on namespaces: grant them in the role bound to its service account or user"
    ]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--in-cluster"], {}, "in-cluster API"),
        (
            [],
            {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1"},
            "in-cluster API at 127.0.0.1:1",
        ),
        (["--kubeconfig", "/nonexistent"], {}, "--kubeconfig: /nonexistent is not a readable file"),
        (["--kubeconfig", "/dev/null", "--snapshot", "x.yaml"], {}, "are alternatives"),
    ],
)
def test_connection_problems_stop_startup(args, env, message):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    result = run_kdns("serve", "--port", "0", *args, env={**clean, **env})
    assert result.returncode == 2
    assert message in result.stderr


def test_a_kubeconfig_that_is_not_yaml_stops_startup_naming_it(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nclusters: [\n  - {name: c\n")
    result = run_kdns("serve", "--port", "0", "--no-forward", "--kubeconfig", str(kubeconfig))
    assert result.returncode == 2
    assert f"{kubeconfig}: invalid YAML at line" in result.stderr
    assert "Traceback" not in result.stderr


def corefile(tmp_path, *options: str) -> str:
    """A Corefile serving the cluster on a free loopback port, its kubernetes given ``options``."""
    lines = "".join(f"        {option}\n" for option in options)
    path = tmp_path / "Corefile"
    path.write_text(
        f".:0 {{\n    bind 127.0.0.1\n    kubernetes cluster.local in-addr.arpa {{\n{lines}    }}\n}}\n"
    )
    return str(path)


def test_noendpoints_never_asks_for_endpoint_slices(cluster, kubeconfig, tmp_path):
    """CoreDNS's noendpoints: no EndpointSlice is listed or watched; a ClusterIP Service answers its
    cluster IP and its SRV, a headless one has no endpoints to answer with (NXDOMAIN)."""
    with running("--corefile", corefile(tmp_path, "noendpoints"), "--kubeconfig", kubeconfig) as server:
        assert server.logged("synced with the Kubernetes API")
        assert lookup(server.port, "web.default.svc.cluster.local") == ("NOERROR", {"10.96.0.50"})
        srv = lookup(server.port, "_http._tcp.web.default.svc.cluster.local", "SRV")
        assert srv == ("NOERROR", {"0 100 80 web.default.svc.cluster.local."})
        assert lookup(server.port, "pg.db.svc.cluster.local")[0] == "NXDOMAIN"
        assert lookup(server.port, "10-1-0-1.web.default.svc.cluster.local")[0] == "NXDOMAIN"
        cluster.create(endpoint_slice("pg-2", "pg", "db", addresses=["10.2.0.2"]))
        cluster.create(service("late", ip="10.96.0.51"))
        answers(server.port, "late.default.svc.cluster.local", {"10.96.0.51"})
        assert lookup(server.port, "pg.db.svc.cluster.local")[0] == "NXDOMAIN"
    assert cluster.list_count("services") >= 1
    assert not [r for r in cluster.requests if "endpointslices" in r.path]


def test_namespace_labels_follow_the_labels_of_namespaces(cluster, kubeconfig, tmp_path):
    """CoreDNS's namespace_labels: only namespaces whose labels match are served (the API is asked
    for those alone); a namespace labelled into or out of the selection brings or takes its names."""
    cluster.update(namespace("default", labels={"dns": "on"}))
    options = ("namespace_labels dns=on", "pods insecure")
    with running("--corefile", corefile(tmp_path, *options), "--kubeconfig", kubeconfig) as server:
        assert lookup(server.port, "web.default.svc.cluster.local") == ("NOERROR", {"10.96.0.50"})
        assert lookup(server.port, "pg.db.svc.cluster.local")[0] == "NXDOMAIN"
        assert lookup(server.port, "db.svc.cluster.local")[0] == "NXDOMAIN"
        assert lookup(server.port, "10-2-0-1.db.pod.cluster.local")[0] == "NXDOMAIN"
        assert lookup(server.port, "1.0.2.10.in-addr.arpa", "PTR")[0] == "NXDOMAIN"
        cluster.update(namespace("db", labels={"dns": "on", "team": "data"}))
        answers(server.port, "pg.db.svc.cluster.local", {"10.2.0.1"})
        assert lookup(server.port, "10-2-0-1.db.pod.cluster.local") == ("NOERROR", {"10.2.0.1"})
        cluster.update(namespace("default", labels={"dns": "off"}))
        gone(server.port, "web.default.svc.cluster.local")
        assert lookup(server.port, "default.svc.cluster.local")[0] == "NXDOMAIN"
        cluster.delete("Namespace", None, "db")
        gone(server.port, "pg.db.svc.cluster.local")
    selectors = {
        str(r.query.get("labelSelector")) for r in cluster.requests if r.path.endswith("/namespaces")
    }
    assert selectors and all("dns=on" in selector for selector in selectors)


def test_endpoint_and_tls_reach_an_https_api_with_a_client_certificate(tmp_path):
    """CoreDNS's endpoint and tls without a kubeconfig: kdns connects to that URL, verifies the server
    with the CA and presents the client certificate the API server requires."""
    certificates = Certificates(tmp_path)
    cert, key = certificates.client_files()
    tls = certificates.server_context(client_certificates=True)
    with KubeFake(bookmark_interval=0.1, tls=tls) as api:
        api.create(namespace("default"))
        api.create(service("web", ip="10.96.0.50"))
        options = (f"endpoint {api.url}", f"tls {cert} {key} {certificates.ca_file}")
        with running("--corefile", corefile(tmp_path, *options), env=without_cluster()) as server:
            assert server.logged(f"following the Kubernetes API (the API server at {api.url})")
            assert server.logged("synced with the Kubernetes API")
            assert lookup(server.port, "web.default.svc.cluster.local") == ("NOERROR", {"10.96.0.50"})
            api.create(service("late", ip="10.96.0.51"))
            answers(server.port, "late.default.svc.cluster.local", {"10.96.0.51"})
        assert api.watch_count("services") >= 1


def test_an_api_that_refuses_the_client_certificate_is_never_synced(tmp_path):
    """A client certificate of another CA: the handshake fails, kdns starts unsynced after
    startup_timeout and says why; nothing is answered from a cluster it never saw (a cluster name is
    SERVFAIL: it may exist)."""
    (tmp_path / "other").mkdir()
    certificates, other = Certificates(tmp_path), Certificates(tmp_path / "other")
    cert, key = other.client_files()
    tls = certificates.server_context(client_certificates=True)
    with KubeFake(tls=tls) as api:
        api.create(service("web", ip="10.96.0.50"))
        options = (f"endpoint {api.url}", f"tls {cert} {key} {certificates.ca_file}", "startup_timeout 1s")
        with running("--corefile", corefile(tmp_path, *options), env=without_cluster()) as server:
            assert server.logged("starting unsynced")
            assert lookup(server.port, "web.default.svc.cluster.local")[0] == "SERVFAIL"
        assert not api.requests  # no request got past the handshake


@pytest.mark.parametrize(
    ("missing", "message"), [("cert", "the client certificate"), ("ca", "the CA"), ("key", "the key")]
)
def test_tls_files_that_cannot_be_read_stop_startup_naming_them(tmp_path, missing, message):
    certificates = Certificates(tmp_path)
    cert, key = certificates.client_files()
    files = {"cert": cert, "key": key, "ca": certificates.ca_file}
    files[missing] = tmp_path / "nowhere.pem"
    options = ("endpoint https://127.0.0.1:1", "tls {cert} {key} {ca}".format(**files))
    result = run_kdns("serve", "--corefile", corefile(tmp_path, *options), env=without_cluster())
    assert result.returncode == 2
    assert f"{message} {tmp_path / 'nowhere.pem'} is not a readable file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("which", ["cert", "key", "ca"])
def test_tls_files_that_hold_no_certificate_or_key_stop_startup(tmp_path, which):
    certificates = Certificates(tmp_path)
    cert, key = certificates.client_files()
    files = {"cert": cert, "key": key, "ca": certificates.ca_file}
    files[which] = tmp_path / "garbage.pem"
    files[which].write_text("not a PEM file\n")
    options = ("endpoint https://127.0.0.1:1", "tls {cert} {key} {ca}".format(**files))
    result = run_kdns("serve", "--corefile", corefile(tmp_path, *options), env=without_cluster())
    assert result.returncode == 2
    assert "the API server at https://127.0.0.1:1: the tls files cannot be used" in result.stderr
    assert "Traceback" not in result.stderr


def without_cluster() -> dict[str, str]:
    """This process's environment without the in-cluster variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
