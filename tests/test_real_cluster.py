"""kdns following a real kube-apiserver (``tests/support/control_plane.py``): objects made through the
official client are answered over DNS."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dns.rcode
import pytest
from kubernetes import client

from tests.fake_upstream import upstream
from tests.support.client import ask, lookup
from tests.support.control_plane import API_SERVICE_IP, control_plane
from tests.support.in_cluster import apply, shipped, token_for
from tests.support.metrics import endpoint, get
from tests.support.objects import service_import
from tests.support.polling import eventually
from tests.support.process import Server, running
from tests.support.real_objects import (
    MANAGED_BY_LABEL,
    MIRRORING_CONTROLLER,
    SERVICE_NAME_LABEL,
    api_client,
    core_api,
    create_namespace,
    create_service,
    create_service_import,
    install_service_import_crd,
    report_ready,
    run_pod,
    run_pods,
    token_kubeconfig,
)
from tests.support.relay import relay

pytestmark = pytest.mark.slow


def test_service_made_through_the_api_is_answered(real_cluster):
    api = core_api(real_cluster.kubeconfig)
    create_namespace(api, "smoke")
    service = create_service(api, "smoke", "web", ports=[("", 80, "TCP")], selector={"app": "web"})
    cluster_ip = service.spec.cluster_ip
    assert cluster_ip.startswith("10.96.")  # allocated by the API server from its service range

    with running("--kubeconfig", str(real_cluster.kubeconfig)) as server:

        def addresses() -> list[str]:
            reply = ask(server.port, "web.smoke.svc.cluster.local.")
            return [item.address for rrset in reply.answer for item in rrset]

        assert eventually(addresses, timeout=15) == [cluster_ip]


def test_a_pod_made_ready_as_a_kubelet_would_is_answered_through_the_real_endpointslice_controller(
    real_cluster,
):
    """No kubelet runs: the pod gets a node, then an IP, Running and Ready through the status
    subresource, as a kubelet reports them; the real EndpointSlice controller makes the slice."""
    api = core_api(real_cluster.kubeconfig)
    create_namespace(api, "pods", for_pods=True)
    create_service(api, "pods", "db", ports=[("pg", 5432, "TCP")], selector={"app": "db"}, cluster_ip="None")
    run_pod(api, "pods", "db-0", "10.244.0.7", labels={"app": "db"}, hostname="db-0", subdomain="db")
    with running("--kubeconfig", str(real_cluster.kubeconfig)) as server:

        def addresses(name: str) -> list[str]:
            reply = ask(server.port, name)
            return [item.address for rrset in reply.answer for item in rrset]

        assert eventually(lambda: addresses("db.pods.svc.cluster.local."), timeout=30) == ["10.244.0.7"]
        assert addresses("db-0.db.pods.svc.cluster.local.") == ["10.244.0.7"]  # the pod's hostname


def test_a_deleted_namespace_takes_its_names_with_it(real_cluster):
    """The real namespace controller deletes what the namespace held; kdns follows the deletions."""
    api = core_api(real_cluster.kubeconfig)
    create_namespace(api, "gone")
    create_service(api, "gone", "web", ports=[("", 80, "TCP")], selector={"app": "web"})
    with running("--kubeconfig", str(real_cluster.kubeconfig)) as server:
        name = "web.gone.svc.cluster.local."
        eventually(lambda: ask(server.port, name).answer, timeout=15)
        api.delete_namespace("gone")
        eventually(lambda: ask(server.port, name).rcode() == dns.rcode.NXDOMAIN, timeout=60)
        # the Namespace itself goes once the controller has emptied it and removed its finalizer
        namespace = "gone.svc.cluster.local."
        eventually(lambda: ask(server.port, namespace).rcode() == dns.rcode.NXDOMAIN, timeout=60)


# -- scenarios: one kdns follows the shared cluster, each scenario in a namespace of its own ----------


@pytest.fixture(scope="module")
def follower(real_cluster) -> Iterator[Server]:
    """A kdns following the shared cluster, for the scenarios that need no options of their own."""
    with running("--kubeconfig", str(real_cluster.kubeconfig)) as server:
        yield server


@pytest.fixture
def core(real_cluster) -> client.CoreV1Api:
    return core_api(real_cluster.kubeconfig)


def answered(port: int, name: str, qtype: str, expected: tuple[str, set[str]], timeout: float = 30):
    """Wait until kdns answers ``name`` ``qtype`` with ``expected`` (an rcode name and the answer's
    records, as ``lookup`` gives them); fail with the last answer after ``timeout``."""
    seen: list[tuple[str, set[str]]] = []

    def check() -> bool:
        seen[:] = [lookup(port, name, qtype)]
        return seen[0] == expected

    try:
        eventually(check, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{name} {qtype}: {seen[0]} after {timeout} s, not {expected}") from None


def srv_targets(port: int, name: str, **options) -> tuple[str, set[tuple[int, str]]]:
    """The rcode of ``name``'s SRV answer and its (port, target) pairs (weights depend on the count)."""
    rcode, records = lookup(port, name, "SRV", **options)
    return rcode, {(int(text.split()[2]), text.split()[3]) for text in records}


def test_a_cluster_ip_service_is_answered_then_follows_its_ports_and_its_deletion(core, follower):
    ns = create_namespace(core, "kind-clusterip")
    created = create_service(core, ns, "web", ports=[("http", 80, "TCP")], selector={"app": "web"})
    name = f"web.{ns}.svc.cluster.local."
    ip = created.spec.cluster_ip
    answered(follower.port, name, "A", ("NOERROR", {ip}))
    assert srv_targets(follower.port, f"_http._tcp.{name}") == ("NOERROR", {(80, name)})

    created.spec.ports = [
        client.V1ServicePort(name="https", port=443, protocol="TCP"),
        client.V1ServicePort(name="dns", port=53, protocol="UDP"),
    ]
    core.replace_namespaced_service("web", ns, created)
    answered(follower.port, f"_https._tcp.{name}", "SRV", ("NOERROR", {f"0 100 443 {name}"}))
    assert srv_targets(follower.port, f"_dns._udp.{name}") == ("NOERROR", {(53, name)})
    assert lookup(follower.port, f"_http._tcp.{name}", "SRV") == ("NXDOMAIN", set())
    assert lookup(follower.port, name) == ("NOERROR", {ip})  # an update keeps the cluster IP

    core.delete_namespaced_service("web", ns)
    answered(follower.port, name, "A", ("NXDOMAIN", set()))
    assert lookup(follower.port, f"_https._tcp.{name}", "SRV")[0] == "NXDOMAIN"
    assert lookup(follower.port, f"{ns}.svc.cluster.local.")[0] == "NOERROR"  # the namespace stays


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
def test_node_port_and_load_balancer_services_are_answered_as_cluster_ip_ones(core, follower, kind):
    ns = create_namespace(core, f"kind-{kind.lower()}")
    created = create_service(
        core, ns, "edge", ports=[("http", 80, "TCP")], selector={"app": "edge"}, type=kind
    )
    node_port = created.spec.ports[0].node_port
    assert 30000 <= node_port <= 32767  # allocated by the API server from its node port range
    name = f"edge.{ns}.svc.cluster.local."
    answered(follower.port, name, "A", ("NOERROR", {created.spec.cluster_ip}))
    # SRV names the Service's port, not the node port (CoreDNS answers the same)
    assert srv_targets(follower.port, f"_http._tcp.{name}") == ("NOERROR", {(80, name)})


def test_an_external_name_service_is_a_cname_that_follows_its_target(core, follower):
    ns = create_namespace(core, "kind-externalname")
    web = create_service(core, ns, "web", ports=[("http", 80, "TCP")], selector={"app": "web"})
    target = f"web.{ns}.svc.cluster.local."
    alias = create_service(core, ns, "alias", type="ExternalName", external_name=target.rstrip("."))
    assert alias.spec.cluster_ip is None  # the API server allocates none for an ExternalName Service
    name = f"alias.{ns}.svc.cluster.local."
    # a target inside the cluster zone is followed: the CNAME, then the target's address
    answered(follower.port, name, "A", ("NOERROR", {target, web.spec.cluster_ip}))

    core.patch_namespaced_service("alias", ns, {"spec": {"externalName": "db.example.org"}})
    answered(follower.port, name, "CNAME", ("NOERROR", {"db.example.org."}))


def test_a_chased_external_name_held_under_kubeadms_cache_follows_the_service(core, real_cluster, tmp_path):
    """kubeadm's Corefile keeps cluster.local out of the cache, so kdns holds the answer it chased beside
    its own answer to the ExternalName (one upstream question per TTL, not per query); a change to the
    Service drops it at once, not when the held answer's TTL runs out."""
    records = "one.example.net. 300 IN A 192.0.2.1\ntwo.example.net. 300 IN A 192.0.2.2\n"
    with upstream(records) as fake:
        corefile = tmp_path / "Corefile"
        corefile.write_text(
            ".:0 {\n"
            "    bind 127.0.0.1\n"
            f"    kubernetes cluster.local {{\n        kubeconfig {real_cluster.kubeconfig}\n        ttl 30\n    }}\n"
            f"    forward . {fake.address}\n"
            "    cache 30 {\n        disable success cluster.local\n        disable denial cluster.local\n    }\n"
            "}\n"
        )
        ns = create_namespace(core, "kind-externalname-held")
        create_service(core, ns, "db", type="ExternalName", external_name="one.example.net")
        name = f"db.{ns}.svc.cluster.local."
        with running("--corefile", str(corefile)) as server:
            answered(server.port, name, "A", ("NOERROR", {"one.example.net.", "192.0.2.1"}))
            for _ in range(5):
                assert lookup(server.port, name) == ("NOERROR", {"one.example.net.", "192.0.2.1"})
            assert fake.count("one.example.net") == 1
            core.patch_namespaced_service("db", ns, {"spec": {"externalName": "two.example.net"}})
            answered(server.port, name, "A", ("NOERROR", {"two.example.net.", "192.0.2.2"}), timeout=10)


def test_a_headless_service_answers_each_ready_pod_by_address_hostname_and_port(core, follower):
    ns = create_namespace(core, "kind-headless", for_pods=True)
    create_service(
        core,
        ns,
        "db",
        ports=[("pg", 5432, "TCP"), ("stats", 8125, "UDP")],
        selector={"app": "db"},
        cluster_ip="None",
    )
    labels = {"app": "db"}
    run_pod(core, ns, "db-0", "10.244.1.10", labels=labels, hostname="db-0", subdomain="db")
    run_pod(core, ns, "db-1", "10.244.1.11", labels=labels, hostname="db-1", subdomain="db")
    run_pod(core, ns, "worker", "10.244.1.12", labels=labels)  # no hostname: named by its address
    name = f"db.{ns}.svc.cluster.local."
    answered(follower.port, name, "A", ("NOERROR", {"10.244.1.10", "10.244.1.11", "10.244.1.12"}))
    assert lookup(follower.port, f"db-0.{name}") == ("NOERROR", {"10.244.1.10"})
    assert lookup(follower.port, f"db-1.{name}") == ("NOERROR", {"10.244.1.11"})
    assert lookup(follower.port, f"10-244-1-12.{name}") == ("NOERROR", {"10.244.1.12"})
    assert lookup(follower.port, "10.1.244.10.in-addr.arpa.", "PTR") == ("NOERROR", {f"db-0.{name}"})
    members = {f"db-0.{name}", f"db-1.{name}", f"10-244-1-12.{name}"}
    for tcp in (False, True):  # over either transport
        assert srv_targets(follower.port, f"_pg._tcp.{name}", tcp=tcp) == (
            "NOERROR",
            {(5432, member) for member in members},
        )
        assert srv_targets(follower.port, f"_stats._udp.{name}", tcp=tcp) == (
            "NOERROR",
            {(8125, member) for member in members},
        )
    assert lookup(follower.port, f"_pg._udp.{name}", "SRV")[0] == "NXDOMAIN"


def test_a_pod_that_stops_being_ready_leaves_the_answer_unless_not_ready_addresses_are_published(
    core, follower
):
    """The kubelet's Ready condition, True -> False -> True through the status subresource: the real
    EndpointSlice controller marks the endpoint not ready, and ready again."""
    ns = create_namespace(core, "readiness", for_pods=True)
    selector = {"app": "cache"}
    create_service(core, ns, "cache", ports=[("redis", 6379, "TCP")], selector=selector, cluster_ip="None")
    create_service(
        core,
        ns,
        "cache-peers",
        ports=[("gossip", 7000, "TCP")],
        selector=selector,
        cluster_ip="None",
        publish_not_ready_addresses=True,
    )
    run_pods(core, ns, [("cache-0", "10.244.2.10"), ("cache-1", "10.244.2.11")], labels=selector)
    both = ("NOERROR", {"10.244.2.10", "10.244.2.11"})
    ready_only, peers = f"cache.{ns}.svc.cluster.local.", f"cache-peers.{ns}.svc.cluster.local."
    answered(follower.port, ready_only, "A", both)
    answered(follower.port, peers, "A", both)

    report_ready(core, ns, "cache-1", False)
    answered(follower.port, ready_only, "A", ("NOERROR", {"10.244.2.10"}))
    assert lookup(follower.port, f"10-244-2-11.{ready_only}")[0] == "NXDOMAIN"
    assert lookup(follower.port, peers) == both  # published however ready it is
    assert lookup(follower.port, f"10-244-2-11.{peers}") == ("NOERROR", {"10.244.2.11"})

    report_ready(core, ns, "cache-1", True)
    answered(follower.port, ready_only, "A", both)


def test_a_headless_answer_follows_a_scale_up_and_a_scale_down(core, follower):
    """Twenty pods made ready at once, then seventeen deleted: ten as a ReplicaSet deletes them (they
    stay terminating, as no kubelet confirms they stopped), seven at once (grace period 0)."""
    ns = create_namespace(core, "scale", for_pods=True)
    selector = {"app": "worker"}
    create_service(core, ns, "workers", ports=[("http", 8080, "TCP")], selector=selector, cluster_ip="None")
    pods = [(f"worker-{i:02d}", f"10.244.3.{i + 1}") for i in range(20)]
    run_pods(core, ns, pods, labels=selector)
    name = f"workers.{ns}.svc.cluster.local."
    answered(follower.port, name, "A", ("NOERROR", {ip for _, ip in pods}))

    for pod_name, _ in pods[3:13]:
        core.delete_namespaced_pod(pod_name, ns)
    for pod_name, _ in pods[13:]:
        core.delete_namespaced_pod(pod_name, ns, grace_period_seconds=0)
    answered(follower.port, name, "A", ("NOERROR", {ip for _, ip in pods[:3]}))
    terminating = core.read_namespaced_pod(pods[3][0], ns)
    assert terminating.metadata.deletion_timestamp is not None  # still there, as no kubelet runs
    assert srv_targets(follower.port, f"_http._tcp.{name}", tcp=True) == (
        "NOERROR",
        {(8080, f"{ip.replace('.', '-')}.{name}") for _, ip in pods[:3]},
    )


def test_a_changed_selector_moves_the_answer_to_the_other_pods(core, follower):
    ns = create_namespace(core, "selector", for_pods=True)
    run_pods(core, ns, [("a-0", "10.244.4.1"), ("a-1", "10.244.4.2")], labels={"app": "a"})
    run_pods(core, ns, [("b-0", "10.244.4.11"), ("b-1", "10.244.4.12")], labels={"app": "b"})
    create_service(core, ns, "pick", ports=[("http", 80, "TCP")], selector={"app": "a"}, cluster_ip="None")
    name = f"pick.{ns}.svc.cluster.local."
    answered(follower.port, name, "A", ("NOERROR", {"10.244.4.1", "10.244.4.2"}))

    core.patch_namespaced_service("pick", ns, {"spec": {"selector": {"app": "b"}}})
    answered(follower.port, name, "A", ("NOERROR", {"10.244.4.11", "10.244.4.12"}))
    assert lookup(follower.port, f"10-244-4-1.{name}")[0] == "NXDOMAIN"


def test_hand_written_endpoints_of_a_selectorless_service_are_answered_through_their_mirror(
    core, follower, real_cluster
):
    """A v1 Endpoints object for a Service without a selector (an outside database): the real
    EndpointSlice mirroring controller copies it into an EndpointSlice, which kdns answers."""
    ns = create_namespace(core, "mirror")
    create_service(core, ns, "mongo", ports=[("mongo", 27017, "TCP")], cluster_ip="None")
    core.create_namespaced_endpoints(
        ns,
        client.V1Endpoints(
            metadata=client.V1ObjectMeta(name="mongo"),
            subsets=[
                client.V1EndpointSubset(
                    addresses=[client.V1EndpointAddress(ip="192.0.2.10")],
                    ports=[client.CoreV1EndpointPort(name="mongo", port=27017, protocol="TCP")],
                )
            ],
        ),
    )
    discovery = client.DiscoveryV1Api(api_client(real_cluster.kubeconfig))
    mirrored = eventually(
        lambda: (
            discovery.list_namespaced_endpoint_slice(
                ns, label_selector=f"{SERVICE_NAME_LABEL}=mongo,{MANAGED_BY_LABEL}={MIRRORING_CONTROLLER}"
            ).items
        ),
        timeout=30,
    )
    assert [endpoint.addresses for endpoint in mirrored[0].endpoints] == [["192.0.2.10"]]
    name = f"mongo.{ns}.svc.cluster.local."
    answered(follower.port, name, "A", ("NOERROR", {"192.0.2.10"}))
    assert srv_targets(follower.port, f"_mongo._tcp.{name}") == ("NOERROR", {(27017, f"192-0-2-10.{name}")})

    core.patch_namespaced_endpoints(
        "mongo",
        ns,
        {"subsets": [{"addresses": [{"ip": "192.0.2.11"}], "ports": [{"name": "mongo", "port": 27017}]}]},
    )
    answered(follower.port, name, "A", ("NOERROR", {"192.0.2.11"}))


# -- readiness: /ready follows what kdns could list -------------------------------------------------


def test_ready_is_503_while_kdns_may_not_list_the_cluster_and_200_once_its_role_is_bound(tmp_path):
    """The API server answers, but kdns's ServiceAccount (deploy/serviceaccount.yaml) has no grant yet:
    every list is forbidden and /ready says 503, until deploy/'s ClusterRole and ClusterRoleBinding
    are applied and kdns's next lists succeed. A control plane of its own: the session's has the role
    bound."""
    account, role, binding = shipped()
    with control_plane(tmp_path / "plane", controller_manager=False) as plane:
        admin = api_client(plane.kubeconfig)
        apply(admin, [account])
        token = token_for(admin, account)
        kubeconfig = token_kubeconfig(
            tmp_path / "kubeconfig", server=plane.url, ca_file=plane.ca_file, token=token
        )
        with running(
            "--kubeconfig", str(kubeconfig), "--startup-timeout", "0.5", "--ready", "127.0.0.1:0"
        ) as server:
            ready = endpoint(server, "ready") + "/ready"
            assert get(ready) == (503, "kubernetes")
            assert eventually(lambda: server.logged("HTTP 403"), timeout=10)
            apply(admin, [role, binding])
            eventually(lambda: get(ready) == (200, "OK"), timeout=45)
            answered(server.port, "kubernetes.default.svc.cluster.local.", "A", ("NOERROR", {API_SERVICE_IP}))


def test_an_api_server_down_at_start_up_is_followed_once_it_comes_up(core, real_cluster, tmp_path):
    """kdns starts while nothing listens where its kubeconfig points (a relay to the real API server,
    not yet open): it serves, not ready, and keeps retrying; once the relay opens it lists, is ready and
    answers, and a name the cluster lacks is NXDOMAIN again."""
    ns = create_namespace(core, "late-api")
    created = create_service(core, ns, "web", ports=[("http", 80, "TCP")], selector={"app": "web"})
    name = f"web.{ns}.svc.cluster.local."
    with relay(real_cluster.address, opened=False) as front:
        kubeconfig = real_cluster.kubeconfig_for(front.url, tmp_path / "kubeconfig")
        with running(
            "--kubeconfig", str(kubeconfig), "--startup-timeout", "0.5", "--ready", "127.0.0.1:0"
        ) as server:
            ready = endpoint(server, "ready") + "/ready"
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:  # not ready for as long as the API is away
                assert get(ready) == (503, "kubernetes")
                assert server.process.poll() is None
                time.sleep(0.25)
            # the name may exist: a failure, not an NXDOMAIN that clients would cache (as CoreDNS)
            assert lookup(server.port, name) == ("SERVFAIL", set())
            missing = f"nothing.{ns}.svc.cluster.local."
            assert lookup(server.port, missing) == ("SERVFAIL", set())
            assert server.logged("Kubernetes API unavailable")
            front.open()
            eventually(lambda: get(ready) == (200, "OK"), timeout=45)
            answered(server.port, name, "A", ("NOERROR", {created.spec.cluster_ip}))
            assert lookup(server.port, missing) == ("NXDOMAIN", set())
            assert server.logged("Kubernetes API available again")


# -- multicluster: ServiceImports (KEP-1645) from a CRD installed after kdns started ---------------

MCS_GROUP, MCS_VERSION = "multicluster.x-k8s.io", "v1alpha1"


def imported_slice(name: str, imported: str, cluster: str, endpoints: list[dict], port: tuple) -> dict:
    """An EndpointSlice of a ServiceImport from member cluster ``cluster``, labelled as KEP-1645 says
    (and without ``kubernetes.io/service-name``: no Service of this cluster owns it)."""
    port_name, number, protocol = port
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "labels": {
                "multicluster.kubernetes.io/service-name": imported,
                "multicluster.kubernetes.io/source-cluster": cluster,
            },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": port_name, "port": number, "protocol": protocol}],
    }


def test_service_imports_are_answered_once_their_crd_is_installed_after_start_up(tmp_path):
    """kdns with --multicluster starts on a cluster without the ServiceImport CRD: it is ready (the
    missing resource is held empty) and looks again with backoff; once the CRD is installed it lists
    and watches ServiceImports, answered in the clusterset zone. No controller is needed: the
    cluster is its own, as it gains a cluster-wide CRD."""
    with control_plane(tmp_path / "cluster", controller_manager=False) as plane:
        admin = api_client(plane.kubeconfig)
        core = client.CoreV1Api(admin)
        ns = create_namespace(core, "mcs")
        with running(
            "--kubeconfig",
            str(plane.kubeconfig),
            "--multicluster",
            "clusterset.local",
            "--ready",
            "127.0.0.1:0",
        ) as server:
            assert server.logged("serviceimports: the Kubernetes API does not serve")
            assert get(endpoint(server, "ready") + "/ready") == (200, "OK")
            web = f"web.{ns}.svc.clusterset.local."
            assert lookup(server.port, web) == ("NXDOMAIN", set())

            install_service_import_crd(admin)
            http = ("http", 80, "TCP")
            create_service_import(admin, service_import("web", ns, ips=["10.42.0.5"], ports=[http]))
            # the reflector's next look (backoff from 0.8 s, doubling, with jitter) finds the CRD
            answered(server.port, web, "A", ("NOERROR", {"10.42.0.5"}), timeout=45)
            assert srv_targets(server.port, f"_http._tcp.{web}") == ("NOERROR", {(80, web)})

            # a headless import answers the ready endpoints of its slices from every member cluster
            create_service_import(
                admin, service_import("db", ns, kind="Headless", ports=[("pg", 5432, "TCP")])
            )
            discovery = client.DiscoveryV1Api(admin)
            pg = ("pg", 5432, "TCP")
            a_endpoints = [
                {"addresses": ["10.1.0.1"], "hostname": "db-0", "conditions": {"ready": True}},
                {"addresses": ["10.1.0.3"], "hostname": "db-2", "conditions": {"ready": False}},
            ]
            b_endpoints = [{"addresses": ["10.2.0.9"], "conditions": {"ready": True}}]
            discovery.create_namespaced_endpoint_slice(
                ns, imported_slice("db-a", "db", "cluster-a", a_endpoints, pg)
            )
            discovery.create_namespaced_endpoint_slice(
                ns, imported_slice("db-b", "db", "cluster-b", b_endpoints, pg)
            )
            db = f"db.{ns}.svc.clusterset.local."
            answered(server.port, db, "A", ("NOERROR", {"10.1.0.1", "10.2.0.9"}))
            assert lookup(server.port, f"db-0.cluster-a.{db}") == ("NOERROR", {"10.1.0.1"})
            assert lookup(server.port, f"10-2-0-9.cluster-b.{db}") == ("NOERROR", {"10.2.0.9"})
            assert lookup(server.port, f"db-2.cluster-a.{db}")[0] == "NXDOMAIN"  # not ready

            imports = client.CustomObjectsApi(admin)
            imports.patch_namespaced_custom_object(
                MCS_GROUP, MCS_VERSION, ns, "serviceimports", "web", {"spec": {"ips": ["10.42.0.6"]}}
            )
            answered(server.port, web, "A", ("NOERROR", {"10.42.0.6"}))
            imports.delete_namespaced_custom_object(MCS_GROUP, MCS_VERSION, ns, "serviceimports", "web")
            answered(server.port, web, "A", ("NXDOMAIN", set()))
