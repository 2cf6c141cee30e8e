"""Least privilege against real authorization: kdns runs as a pod runs it, with a token of the
ServiceAccount of deploy/ bound to the ClusterRole of deploy/, against a real kube-apiserver that
authorizes with RBAC. With the shipped role every request kdns makes is allowed and every name it
follows is answered; with one grant taken away, the API's 403 shows in kdns's readiness, log and
metrics, naming the resource."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest
from kubernetes import client

from kdns.sources.kube import ENDPOINT_SLICES, NAMESPACES, PODS, SERVICE_IMPORTS, SERVICES
from tests.support.client import ask
from tests.support.control_plane import ControlPlane, control_plane
from tests.support.deploy import Manifest
from tests.support.in_cluster import (
    SERVICE_ACCOUNT_DIR,
    apply,
    grants,
    pod_files,
    pod_files_of,
    renamed_account,
    running_in_pod,
    service_account_dir_of,
    shipped,
    token_for,
    without_grant,
)
from tests.support.metrics import endpoint, get, metric, scrape
from tests.support.objects import service_import
from tests.support.polling import eventually
from tests.support.process import Server, run_kdns
from tests.support.real_objects import (
    api_client,
    create_service_import,
    install_service_import_crd,
    token_kubeconfig,
)

pytestmark = pytest.mark.slow

NAMESPACE = "rbac"
EMPTY_NAMESPACE = "rbac-empty"  # a namespace holding nothing: its name exists only through the Namespace
NODE = "rbac-node"
HEADLESS_IP, POD_IP, NO_POD_IP = "10.244.9.7", "10.244.9.8", "10.244.9.99"
IMPORTED_IP = "10.42.0.5"
HTTP = ("--ready", "127.0.0.1:0", "--metrics", "127.0.0.1:0")
NOT_FOUND, FORBIDDEN, NO_WATCH_LIST = "404", "403", "422"


def install(api: client.ApiClient, account: Manifest, role: Manifest, binding: Manifest) -> Manifest:
    """The account's namespace (when the API server has not made it), then the three objects."""
    core = client.CoreV1Api(api)
    name = account["metadata"]["namespace"]
    if name not in {item.metadata.name for item in core.list_namespace().items}:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    apply(api, (account, role, binding))
    return account


# -- the cluster the shared control plane holds for these tests ------------------------------------------
@pytest.fixture(scope="module")
def admin(real_cluster: ControlPlane) -> client.ApiClient:
    return api_client(real_cluster.kubeconfig)


@pytest.fixture(scope="module")
def kdns_account(admin: client.ApiClient) -> Manifest:
    return install(admin, *shipped())


@pytest.fixture(scope="module")
def objects(admin: client.ApiClient) -> str:
    """A ClusterIP Service, a headless one backed by an EndpointSlice, a Running pod and an empty
    namespace; returns the ClusterIP Service's address, allocated by the API server."""
    core = client.CoreV1Api(admin)
    for name in (NAMESPACE, EMPTY_NAMESPACE):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    web = core.create_namespaced_service(
        NAMESPACE,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], selector={"app": "web"}),
        ),
    )
    core.create_namespaced_service(  # selectorless: its slice is made here, as a controller would
        NAMESPACE,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1ServiceSpec(cluster_ip="None", ports=[client.V1ServicePort(name="pg", port=5432)]),
        ),
    )
    client.DiscoveryV1Api(admin).create_namespaced_endpoint_slice(
        NAMESPACE,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [HEADLESS_IP], "hostname": "db-0", "conditions": {"ready": True}}],
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        },
    )
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=NODE)))
    # pods are admitted once the service account controller has made the namespace's "default"
    eventually(lambda: core.list_namespaced_service_account(NAMESPACE).items, timeout=30)
    core.create_namespaced_pod(
        NAMESPACE,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="client"),
            spec=client.V1PodSpec(node_name=NODE, containers=[client.V1Container(name="c", image="busybox")]),
        ),
    )
    core.patch_namespaced_pod_status(  # as the node's kubelet reports it
        "client",
        NAMESPACE,
        {"status": {"phase": "Running", "podIP": POD_IP, "podIPs": [{"ip": POD_IP}]}},
    )
    return web.spec.cluster_ip


def addresses(server: Server, name: str) -> tuple[str, list[str]]:
    reply = ask(server.port, name)
    return dns.rcode.to_text(reply.rcode()), sorted(r.address for rrset in reply.answer for r in rrset)


def requests_by_code(server: Server) -> dict[tuple[str, str, str], float]:
    """kdns's count of its API requests by (kind, verb, HTTP status)."""
    samples = scrape(endpoint(server, "metrics") + "/metrics")
    return {
        (labels["kind"], labels["verb"], labels["code"]): value
        for (name, pairs), value in samples.items()
        if name == "kdns_kubernetes_requests_total"
        for labels in [dict(pairs)]
    }


def corefile(directory: Path) -> Path:
    """The Corefile of a deployment that answers pods verified and a multicluster zone; no forward."""
    path = directory / "Corefile"
    path.write_text(
        ".:0 {\n"
        "    bind 127.0.0.1\n"
        "    ready 127.0.0.1:0\n"
        "    prometheus 127.0.0.1:0\n"
        "    kubernetes cluster.local clusterset.local in-addr.arpa ip6.arpa {\n"
        "        pods verified\n"
        "        multicluster clusterset.local\n"
        "    }\n"
        "}\n"
    )
    return path


MODES = {
    "flags": (),
    "pods-verified": ("--pods", "verified"),
    "multicluster": ("--multicluster", "clusterset.local"),
    "corefile": ("--corefile",),
}


@pytest.mark.parametrize("mode", MODES)
def test_the_shipped_role_allows_every_request_and_every_name_is_answered(
    real_cluster, admin, kdns_account, objects, tmp_path, mode
):
    cluster_ip = objects
    args = (*MODES[mode], str(corefile(tmp_path))) if mode == "corefile" else (*MODES[mode], *HTTP)
    verified = mode in {"pods-verified", "corefile"}
    multicluster = mode in {"multicluster", "corefile"}
    files = pod_files_of(real_cluster, admin, kdns_account, tmp_path / "serviceaccount")
    with running_in_pod(real_cluster, files, *args) as server:
        assert server.logged("synced with the Kubernetes API")
        assert get(endpoint(server, "ready") + "/ready")[0] == 200
        svc = "svc.cluster.local."
        assert addresses(server, f"web.{NAMESPACE}.{svc}") == ("NOERROR", [cluster_ip])
        assert addresses(server, f"db.{NAMESPACE}.{svc}") == ("NOERROR", [HEADLESS_IP])
        assert addresses(server, f"db-0.db.{NAMESPACE}.{svc}") == ("NOERROR", [HEADLESS_IP])
        assert addresses(server, f"{EMPTY_NAMESPACE}.{svc}") == ("NOERROR", [])  # the Namespace's name
        assert addresses(server, f"nosuch.{svc}")[0] == "NXDOMAIN"
        pod, no_pod = (f"{ip.replace('.', '-')}.{NAMESPACE}.pod.cluster.local." for ip in (POD_IP, NO_POD_IP))
        assert addresses(server, pod) == ("NOERROR", [POD_IP])
        # pods verified answers a dashed IP only when a pod of the namespace has it
        assert addresses(server, no_pod) == (("NXDOMAIN", []) if verified else ("NOERROR", [NO_POD_IP]))
        if multicluster:  # the CRD is not installed: the API says 404 once RBAC has allowed the request
            assert addresses(server, f"web.{NAMESPACE}.svc.clusterset.local.")[0] == "NXDOMAIN"
            assert server.logged("serviceimports: the Kubernetes API does not serve multicluster.x-k8s.io")
        # a change made now arrives through the watches
        late = f"late-{mode}"
        client.CoreV1Api(admin).create_namespaced_service(
            NAMESPACE,
            client.V1Service(
                metadata=client.V1ObjectMeta(name=late),
                spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], selector={"app": late}),
            ),
        )
        eventually(lambda: addresses(server, f"{late}.{NAMESPACE}.{svc}")[1], timeout=10)
        counted = requests_by_code(server)
    kinds = {"Namespace", "Service", "EndpointSlice"} | ({"Pod"} if verified else set())
    kinds |= {"ServiceImport"} if multicluster else set()
    assert {kind for kind, _, _ in counted} == kinds
    for kind in kinds - {"ServiceImport"}:  # the state by watch list, which goes on as the watch
        assert counted.get((kind, "watchlist", "200")), (kind, counted)
    refused = {key: n for key, n in counted.items() if key[2] not in {"200", NOT_FOUND}}
    assert refused == {}
    assert {key for key in counted if key[2] == NOT_FOUND} <= {("ServiceImport", "list", NOT_FOUND)}
    assert not [line for line in server.log if "forbidden" in line.lower() or "HTTP 40" in line]


def test_kdns_reads_its_identity_where_kubelet_mounts_it_and_shares_the_test_network(
    real_cluster, admin, kdns_account, objects, tmp_path
):
    """The files are at the fixed path in kdns's mount namespace only; the PID the test stops is
    kdns's own, and its network namespace is the test's."""
    files = pod_files_of(real_cluster, admin, kdns_account, tmp_path / "serviceaccount")
    with running_in_pod(real_cluster, files, *HTTP) as server:
        pid = server.process.pid
        assert "kdns" in Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        ours, its = (
            {name: os.readlink(f"/proc/{who}/ns/{name}") for name in ("net", "mnt", "user")}
            for who in ("self", pid)
        )
        assert its["net"] == ours["net"]
        assert its["mnt"] != ours["mnt"] and its["user"] != ours["user"]
        seen = service_account_dir_of(pid)
        assert (seen / "namespace").read_text() == kdns_account["metadata"]["namespace"]
        token = (files / "token").read_text()
        assert (seen / "token").read_text() == token
        mine = SERVICE_ACCOUNT_DIR / "token"  # the test's own view: not where kdns's token is
        assert not mine.exists() or mine.read_text() != token
        assert server.logged(f"in-cluster API at {real_cluster.url.removeprefix('https://')}")
        assert addresses(server, f"web.{NAMESPACE}.svc.cluster.local.") == ("NOERROR", [objects])
    assert server.process.returncode == 0  # SIGTERM to that PID stopped kdns cleanly


# -- ServiceImports, with their CRD installed ----------------------------------------------------------------
@pytest.fixture(scope="module")
def crd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of its own (a CRD changes the API for every later test) with the ServiceImport
    CRD installed, the shipped ServiceAccount, ClusterRole and binding, and one ClusterSetIP import."""
    with control_plane(tmp_path_factory.mktemp("crd-control-plane"), controller_manager=False) as plane:
        api = api_client(plane.kubeconfig)
        install(api, *shipped())
        install_service_import_crd(api)
        client.CoreV1Api(api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
        )
        create_service_import(
            api, service_import("web", NAMESPACE, ips=[IMPORTED_IP], ports=[("http", 80, "TCP")])
        )
        yield plane


def test_the_shipped_role_lets_kdns_follow_service_imports(crd_cluster, tmp_path):
    """With the CRD installed the shipped role's serviceimports grant is used, and an import is answered."""
    api = api_client(crd_cluster.kubeconfig)
    account = shipped()[0]
    files = pod_files_of(crd_cluster, api, account, tmp_path / "serviceaccount")
    with running_in_pod(crd_cluster, files, "--multicluster", "clusterset.local", *HTTP) as server:
        assert get(endpoint(server, "ready") + "/ready")[0] == 200
        assert addresses(server, f"web.{NAMESPACE}.svc.clusterset.local.") == ("NOERROR", [IMPORTED_IP])
        counted = requests_by_code(server)
    assert counted[("ServiceImport", "list", "200")] == 1 and counted[("ServiceImport", "watch", "200")]
    assert {code for _, _, code in counted} == {"200"}
    assert not server.logged("does not serve") and not server.logged("forbidden")


# -- a role with one grant fewer ---------------------------------------------------------------------------
KINDS = {r.plural: r.kind for r in (NAMESPACES, SERVICES, ENDPOINT_SLICES, PODS, SERVICE_IMPORTS)}
NEEDS = {"pods": ("--pods", "verified"), "serviceimports": ("--multicluster", "clusterset.local")}
GRANTS = {f"{resource}-{verb}": (group, resource, verb) for group, resource, verb in grants(shipped()[1])}


def weakened(admin: client.ApiClient, case: str) -> Manifest:
    """A ServiceAccount bound to a copy of the shipped ClusterRole without ``GRANTS[case]``."""
    account, role, binding = renamed_account(*shipped(), f"kdns-without-{case}")
    return install(admin, account, without_grant(role, *GRANTS[case]), binding)


@pytest.fixture(scope="module")
def list_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane without watch list (the WatchList feature off, as on servers before 1.32 and
    where operators turn it off): kdns gets the state by LIST there, so the list grants are used."""
    with control_plane(
        tmp_path_factory.mktemp("list-control-plane"),
        controller_manager=False,
        apiserver_args=["--feature-gates=WatchList=false"],
    ) as plane:
        yield plane


def plane_for(case: str) -> str:
    """The control plane where ``case``'s grant is used: watches of ServiceImports only where their CRD
    is installed, lists only where no watch list brings the state instead."""
    if case == "serviceimports-watch":
        return "crd_cluster"
    return "list_cluster" if case.endswith("-list") else "real_cluster"


@pytest.mark.parametrize("case", GRANTS)
def test_every_grant_of_the_role_is_needed_and_its_absence_is_named(request, tmp_path, case):
    """Each grant taken away in turn (with the options that use it): the API's 403 reaches the operator
    as one warning naming the verb, the resource and the identity, as the API server put it; the
    refused requests are counted by status; no outage is claimed (the API answered). A list refused
    keeps kdns unready; a watch refused (a watch list too) leaves it ready on what it listed, listed
    again before each retry of the watch, as client-go does. A list
    grant is used only where the API server serves no watch list. A refused ServiceImport
    list is not taken for a missing CRD (RBAC answers before the API looks for the resource); a
    ServiceImport watch is made only where the CRD is installed."""
    group, resource, verb = GRANTS[case]
    kind, options = KINDS[resource], NEEDS.get(resource, ())
    plane = request.getfixturevalue(plane_for(case))
    admin = api_client(plane.kubeconfig)
    account = weakened(admin, case)
    files = pod_files_of(plane, admin, account, tmp_path / "serviceaccount")
    with running_in_pod(plane, files, "--startup-timeout", "1", *options, *HTTP) as server:
        # retried with backoff (0.8 s, then 1.6 s, each with jitter), and said once
        eventually(lambda: requests_by_code(server).get((kind, verb, FORBIDDEN), 0) >= 2, timeout=15)
        unsynced = f"starting unsynced after 1.0 s (still waiting for {resource})"
        if verb == "list":  # said once the startup timeout has passed, maybe after the second refusal
            eventually(lambda: server.logged(unsynced), timeout=5)
        ready = get(endpoint(server, "ready") + "/ready")
        counted = requests_by_code(server)
        api_up = metric(scrape(endpoint(server, "metrics") + "/metrics"), "kdns_kubernetes_api_up")
    said = server.logged(f"{resource}: forbidden to {verb} them")
    assert len(said) == 1 and " WARNING " in said[0], server.log
    user = f"system:serviceaccount:{account['metadata']['namespace']}:{account['metadata']['name']}"
    assert f'User "{user}" cannot {verb} resource "{resource}" in API group "{group}"' in said[0]
    assert "HTTP 403 Forbidden" in said[0]
    assert f"kdns needs list and watch on {resource}" in said[0]
    assert api_up == 1 and not server.logged("Kubernetes API unavailable")
    refused = {key for key in counted if key[2] != "200" and key[1:] != ("watchlist", NO_WATCH_LIST)}
    streams = verb == "watch" and kind != "ServiceImport"  # the custom resource is always listed
    assert refused == {(kind, verb, FORBIDDEN)} | ({(kind, "watchlist", FORBIDDEN)} if streams else set())
    if verb == "watch":  # listed, so synced: ready on the zone as listed
        assert ready == (200, "OK")
        assert counted[(kind, "list", "200")] >= counted[(kind, "watch", FORBIDDEN)]  # before each watch
    else:
        assert ready == (503, "kubernetes")
        assert server.logged(unsynced)
    assert not server.logged("does not serve")


def test_a_token_the_api_no_longer_accepts_is_said_as_such(real_cluster, admin, kdns_account, tmp_path):
    """The token of a ServiceAccount deleted since: 401 to every request, said once per resource."""
    account, role, binding = renamed_account(*shipped(), "kdns-deleted")
    install(admin, account, role, binding)
    token = token_for(admin, account)
    client.CoreV1Api(admin).delete_namespaced_service_account(
        "kdns-deleted", account["metadata"]["namespace"]
    )
    files = pod_files(real_cluster, tmp_path / "serviceaccount", token=token, namespace="kube-system")
    with running_in_pod(real_cluster, files, "--startup-timeout", "1", *HTTP) as server:
        ready = get(endpoint(server, "ready") + "/ready")
    assert ready == (503, "kubernetes")
    for resource in ("namespaces", "services", "endpointslices"):
        said = server.logged(f"{resource}: the Kubernetes API did not accept kdns's credentials to list them")
        assert len(said) == 1 and "(HTTP 401 Unauthorized: Unauthorized)" in said[0]
    assert not server.logged(token[:12])


def test_dump_says_which_list_the_role_does_not_grant(real_cluster, admin, tmp_path):
    """``kdns dump`` lists once: a refused list ends it with exit 2 and the refusal, no traceback."""
    account = weakened(admin, "endpointslices-list")
    kubeconfig = token_kubeconfig(
        tmp_path / "kubeconfig",
        server=real_cluster.url,
        ca_file=real_cluster.ca_file,
        token=token_for(admin, account),
    )
    done = run_kdns("dump", "--kubeconfig", str(kubeconfig))
    assert done.returncode == 2
    assert done.stderr.startswith("kdns: error: endpointslices: forbidden to list them (HTTP 403 Forbidden: ")
    assert "Traceback" not in done.stderr
