"""Objects made in a real API server through the official client, standing in for the parts of a
cluster the test control plane does not run: a node (no kubelet registers one, and the EndpointSlice
controller leaves out pods bound to a node that does not exist), pods given an IP and a ``Ready``
condition through the status subresource (as a kubelet reports them), and namespaces that admit pods
once the service account controller has made their ``default`` ServiceAccount; ``PodRunner`` schedules
and runs the pods controllers make. Also the kubeconfigs
kdns is given: a ServiceAccount's token, or the admin's identity through another address."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.support.control_plane import write_kubeconfig
from tests.support.paths import ROOT
from tests.support.polling import eventually

CONFLICT = 409
NODE = "node-a"
# the labels the API's EndpointSlice controllers put on the slices they make
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MIRRORING_CONTROLLER = "endpointslicemirroring-controller.k8s.io"


def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def core_api(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(api_client(kubeconfig))


def create_namespace(api: client.CoreV1Api, name: str, *, for_pods: bool = False) -> str:
    """Namespace ``name``; with ``for_pods``, once its ``default`` ServiceAccount exists (the API
    server admits no pod before) and node ``NODE`` does (``run_pod`` binds pods to it)."""
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    if for_pods:
        ensure_node(api)
        eventually(lambda: api.list_namespaced_service_account(name).items, timeout=30)
    return name


def ensure_node(api: client.CoreV1Api, name: str = NODE) -> str:
    """Node ``name``, made unless it exists already (pods are bound to it: no scheduler runs)."""
    try:
        api.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=name)))
    except ApiException as error:
        if error.status != CONFLICT:
            raise
    return name


def report_ready(api: client.CoreV1Api, ns: str, name: str, ready: bool) -> None:
    """Set the pod's ``Ready`` condition through the status subresource, as its kubelet would."""
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    api.patch_namespaced_pod_status(name, ns, {"status": {"conditions": [condition]}})


def run_pod(
    api: client.CoreV1Api,
    ns: str,
    name: str,
    ip: str,
    *,
    labels: dict[str, str],
    hostname: str | None = None,
    subdomain: str | None = None,
    ready: bool = True,
) -> None:
    """A pod bound to ``NODE``, then reported Running with ``ip`` and ``ready`` as a kubelet would
    (in a namespace made by ``create_namespace(..., for_pods=True)``)."""
    api.create_namespaced_pod(
        ns,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1PodSpec(
                node_name=NODE,
                hostname=hostname,
                subdomain=subdomain,
                containers=[client.V1Container(name="main", image="registry.invalid/main")],
            ),
        ),
    )
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    api.patch_namespaced_pod_status(name, ns, {"status": status})


def run_pods(
    api: client.CoreV1Api, ns: str, pods: Iterable[tuple[str, str]], *, labels: dict[str, str]
) -> None:
    """Each (name, ip) of ``pods`` as ``run_pod`` makes it, ready: a ReplicaSet's pods, without the
    ReplicaSet."""
    for name, ip in pods:
        run_pod(api, ns, name, ip, labels=labels)


def create_service(
    api: client.CoreV1Api,
    ns: str,
    name: str,
    *,
    ports: Iterable[tuple[str, int, str]] = (),
    selector: dict[str, str] | None = None,
    **spec: object,
) -> client.V1Service:
    """Service ``name`` with ``ports`` as (name, port, protocol), ``""`` for an unnamed port, and
    ``spec``'s other fields by the client's names (``cluster_ip``, ``type``, ``external_name``,
    ``publish_not_ready_addresses``); returns the API server's answer, its defaults filled in."""
    body = client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(
            ports=[client.V1ServicePort(name=n or None, port=p, protocol=proto) for n, p, proto in ports]
            or None,
            selector=selector,
            **spec,
        ),
    )
    return api.create_namespaced_service(ns, body)


def token_kubeconfig(path: Path, *, server: str, ca_file: Path, token: str) -> Path:
    """A kubeconfig for ``server`` that authenticates with a bearer ``token``, as a pod's would."""
    return write_kubeconfig(path, server=server, ca_file=ca_file, user={"token": token})


SERVICE_IMPORTS_CRD = ROOT / "tests" / "cluster" / "serviceimports-crd.yaml"


def install_service_import_crd(api: client.ApiClient, timeout: float = 20) -> None:
    """Create the ServiceImport CRD (KEP-1645, ``SERVICE_IMPORTS_CRD``) and wait until the API server
    serves it (its ``Established`` condition)."""
    crd = yaml.safe_load(SERVICE_IMPORTS_CRD.read_text())
    extensions = client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(crd)

    def established() -> bool:
        conditions = extensions.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions
        return any(c.type == "Established" and c.status == "True" for c in conditions or ())

    eventually(established, timeout=timeout)


def create_service_import(api: client.ApiClient, imported: dict) -> dict:
    """Create ServiceImport ``imported`` (``tests.support.objects.service_import``) through the API."""
    group, version = imported["apiVersion"].split("/")
    namespace = imported["metadata"]["namespace"]
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        group, version, namespace, "serviceimports", imported
    )


# the value of ``MANAGED_BY_LABEL`` that says a slice was written by hand, not by a controller
HAND_WRITTEN = "kdns-tests"


def discovery_api(kubeconfig: Path) -> client.DiscoveryV1Api:
    return client.DiscoveryV1Api(api_client(kubeconfig))


def create_slice(
    api: client.DiscoveryV1Api,
    ns: str,
    name: str,
    service: str,
    endpoints: Iterable[dict],
    *,
    ports: Iterable[tuple[str, int, str]] = (),
    family: str = "IPv4",
) -> client.V1EndpointSlice:
    """EndpointSlice ``name`` of the selectorless Service ``service``, labelled as the controllers
    label theirs, with ``endpoints`` as the API takes them (``addresses``, ``conditions``, ``hostname``)
    and ``ports`` as (name, port, protocol): exact control over each endpoint's conditions."""
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "labels": {SERVICE_NAME_LABEL: service, MANAGED_BY_LABEL: HAND_WRITTEN},
        },
        "addressType": family,
        "endpoints": list(endpoints),
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
    }
    return api.create_namespaced_endpoint_slice(ns, body)


def run_dual_stack_pod(
    api: client.CoreV1Api, ns: str, name: str, ips: list[str], *, labels: dict[str, str], **spec: str
) -> None:
    """A pod as ``run_pod`` makes it, ready, given every address of ``ips`` (IPv4 then IPv6, as a
    dual-stack kubelet reports them); ``spec`` adds ``hostname`` and ``subdomain``."""
    run_pod(api, ns, name, ips[0], labels=labels, **spec)
    api.patch_namespaced_pod_status(name, ns, {"status": {"podIPs": [{"ip": ip} for ip in ips]}})


class PodRunner:
    """A scheduler and a kubelet for one namespace, in a thread, for pods made by real controllers
    (ReplicaSets): each new pod is bound to ``NODE`` through the binding subresource, then reported
    Running and Ready with an IP of its own through the status subresource; a pod being deleted
    (scaled down, evicted) is finished off with a zero grace period, as its kubelet confirms a stop.
    No scheduling rule is weighed: every pod fits."""

    def __init__(self, api: client.CoreV1Api, ns: str, *, subnet: str = "10.244.7", interval: float = 0.1):
        self.api, self.ns, self.subnet, self.interval = api, ns, subnet, interval
        self.started = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"pod-runner-{ns}", daemon=True)

    def __enter__(self) -> PodRunner:
        ensure_node(self.api)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except ApiException as error:  # a pod changed or went between the list and the write
                if error.status not in (404, CONFLICT):
                    raise

    def step(self) -> None:
        for pod in self.api.list_namespaced_pod(self.ns).items:
            name = pod.metadata.name
            if pod.metadata.deletion_timestamp is not None:
                self.api.delete_namespaced_pod(name, self.ns, grace_period_seconds=0)
            elif not pod.spec.node_name:
                binding = {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
                }
                self.api.create_namespaced_pod_binding(name, self.ns, binding, _preload_content=False)
            elif pod.status.phase != "Running":
                self.started += 1
                if self.started > 250:
                    raise RuntimeError(f"more than 250 pods started in {self.ns}")
                ip = f"{self.subnet}.{self.started}"
                status = {
                    "phase": "Running",
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
                self.api.patch_namespaced_pod_status(name, self.ns, {"status": status})
