"""kdns following a real kube-apiserver (``tests/support/control_plane.py``): objects made through the
official client are answered over DNS."""

from __future__ import annotations

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
