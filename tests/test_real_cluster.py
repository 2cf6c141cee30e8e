"""kdns following a real kube-apiserver (``tests/support/control_plane.py``): objects made through the
official client are answered over DNS."""

from __future__ import annotations

import dns.rcode
import pytest
from kubernetes import client, config

from tests.support.client import ask
from tests.support.polling import eventually
from tests.support.process import running

pytestmark = pytest.mark.slow


def test_service_made_through_the_api_is_answered(real_cluster):
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(real_cluster.kubeconfig)))
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="smoke")))
    service = api.create_namespaced_service(
        "smoke",
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], selector={"app": "web"}),
        ),
    )
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
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(real_cluster.kubeconfig)))
    api.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="node-a")))
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pods")))
    # pods are admitted once the service account controller has made the namespace's "default"
    eventually(lambda: api.list_namespaced_service_account("pods").items, timeout=30)
    api.create_namespaced_service(
        "pods",
        client.V1Service(
            metadata=client.V1ObjectMeta(name="db"),
            spec=client.V1ServiceSpec(
                cluster_ip="None", ports=[client.V1ServicePort(name="pg", port=5432)], selector={"app": "db"}
            ),
        ),
    )
    api.create_namespaced_pod(
        "pods",
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="db-0", labels={"app": "db"}),
            spec=client.V1PodSpec(
                node_name="node-a",
                hostname="db-0",
                subdomain="db",
                containers=[client.V1Container(name="db", image="postgres")],
            ),
        ),
    )
    api.patch_namespaced_pod_status(
        "db-0",
        "pods",
        {
            "status": {
                "phase": "Running",
                "podIP": "10.244.0.7",
                "podIPs": [{"ip": "10.244.0.7"}],
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        },
    )
    with running("--kubeconfig", str(real_cluster.kubeconfig)) as server:

        def addresses(name: str) -> list[str]:
            reply = ask(server.port, name)
            return [item.address for rrset in reply.answer for item in rrset]

        assert eventually(lambda: addresses("db.pods.svc.cluster.local."), timeout=30) == ["10.244.0.7"]
        assert addresses("db-0.db.pods.svc.cluster.local.") == ["10.244.0.7"]  # the pod's hostname


def test_a_deleted_namespace_takes_its_names_with_it(real_cluster):
    """The real namespace controller deletes what the namespace held; kdns follows the deletions."""
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(real_cluster.kubeconfig)))
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="gone")))
    api.create_namespaced_service(
        "gone",
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], selector={"app": "web"}),
        ),
    )
    with running("--kubeconfig", str(real_cluster.kubeconfig)) as server:
        name = "web.gone.svc.cluster.local."
        eventually(lambda: ask(server.port, name).answer, timeout=15)
        api.delete_namespace("gone")
        eventually(lambda: ask(server.port, name).rcode() == dns.rcode.NXDOMAIN, timeout=60)
        # the Namespace itself goes once the controller has emptied it and removed its finalizer
        namespace = "gone.svc.cluster.local."
        eventually(lambda: ask(server.port, namespace).rcode() == dns.rcode.NXDOMAIN, timeout=60)
