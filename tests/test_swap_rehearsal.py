"""The swap of deploy/README.md rehearsed on a real control plane of its own (API server, etcd, the
Deployment, ReplicaSet, EndpointSlice and disruption controllers), once per way CoreDNS is installed:
kubeadm's, the coredns/deployment script's and the Helm chart's objects as tests/installs/ holds them,
and kubeadm's with kops's budget beside. No scheduler or kubelet runs: ``PodRunner`` binds the pods the
ReplicaSets make and reports them Running and Ready. Pod IPs are not reachable here, so the canary's
DNS check runs kdns on 127.0.0.1 with the cluster's own Corefile, following the same API server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.client import ask
from tests.support.control_plane import API_SERVICE_IP, WORKLOAD_CONTROLLERS, control_plane
from tests.support.coredns import Ports, moved_to_loopback
from tests.support.deploy import DEPLOY, load_documents
from tests.support.in_cluster import apply
from tests.support.paths import ROOT
from tests.support.polling import eventually
from tests.support.process import free_port, running
from tests.support.real_objects import SERVICE_NAME_LABEL, PodRunner, api_client

pytestmark = pytest.mark.slow

NS = "kube-system"
DNS_IP = "10.96.0.10"  # kubelet's clusterDNS in every install here
INSTALLS = ROOT / "tests" / "installs"
TOO_MANY_REQUESTS = 429


def kdns_swap(kubeconfig: Path, step: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kdns", "swap", step, "--ip", DNS_IP, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def kdns_manifests(without_budget: bool) -> list[dict]:
    """The objects ``kubectl apply -k deploy/`` (or ``deploy/without-budget/``) applies: the
    kustomization's resources, its only transformations being the image (unchanged) and the deletion."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs = [doc for name in kustomization["resources"] for doc in load_documents(DEPLOY / name)]
    if without_budget:
        docs = [d for d in docs if d["kind"] != "PodDisruptionBudget"]
    return docs


def ready_addresses(discovery: client.DiscoveryV1Api, service: str) -> set[str]:
    slices = discovery.list_namespaced_endpoint_slice(NS, label_selector=f"{SERVICE_NAME_LABEL}={service}")
    return {
        address
        for piece in slices.items
        for endpoint in piece.endpoints or []
        if endpoint.conditions is None or endpoint.conditions.ready is not False
        for address in endpoint.addresses
    }


def pod_ips(core: client.CoreV1Api, selector: str) -> set[str]:
    pods = core.list_namespaced_pod(NS, label_selector=selector).items
    return {
        p.status.pod_ip
        for p in pods
        if p.metadata.deletion_timestamp is None
        and p.status.pod_ip
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    }


def rolled_out(apps: client.AppsV1Api, name: str) -> bool:
    d = apps.read_namespaced_deployment(name, NS)
    want = d.spec.replicas
    s = d.status
    return (s.observed_generation or 0) >= d.metadata.generation and (s.updated_replicas or 0) == want == (
        s.ready_replicas or 0
    ) == (s.replicas or 0)


@pytest.mark.parametrize(
    ("install", "extra"),
    [("kubeadm", None), ("coredns-deployment", None), ("helm-chart", None), ("kubeadm", "kops-budget")],
)
def test_the_swap_and_its_rollback_keep_the_dns_service_served(tmp_path, install, extra):
    with control_plane(tmp_path, controllers=WORKLOAD_CONTROLLERS) as cluster:
        kubeconfig = cluster.kubeconfig
        api = api_client(kubeconfig)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        discovery, policy = client.DiscoveryV1Api(api), client.PolicyV1Api(api)
        eventually(lambda: core.list_namespaced_service_account(NS).items, timeout=30)
        coredns_docs = load_documents(INSTALLS / f"{install}.yaml")
        if extra:
            coredns_docs += load_documents(INSTALLS / f"{extra}.yaml")
        apply(api, coredns_docs)
        (coredns,) = [d for d in coredns_docs if d["kind"] == "Deployment"]
        # CoreDNS's pods: its Deployment's selector, less kdns's pods once they carry the same labels
        own = coredns["spec"]["selector"]["matchLabels"]
        coredns_selector = ",".join([*(f"{k}={v}" for k, v in own.items()), "!kdns/app"])
        (service_doc,) = [d for d in coredns_docs if d["kind"] == "Service"]
        service = service_doc["metadata"]["name"]

        with PodRunner(core, NS):
            eventually(lambda: rolled_out(apps, "coredns"), timeout=60)
            coredns_ips = eventually(lambda: pod_ips(core, coredns_selector), timeout=30)
            eventually(lambda: ready_addresses(discovery, service) == coredns_ips, timeout=30)
            replicas = apps.read_namespaced_deployment("coredns", NS).spec.replicas

            # Step 1: the DNS Service by kubelet's address, its selector, and what stands in the way.
            found = kdns_swap(kubeconfig, "service", "--output", "selector")
            assert found.returncode == 0, found.stderr
            assert set(found.stdout.strip().split(",")) == {
                f"{k}={v}" for k, v in service_doc["spec"]["selector"].items()
            }
            checked = kdns_swap(kubeconfig, "check")
            if install == "coredns-deployment":
                # CoreDNS requires no other k8s-app=kube-dns pod on its node: made a preference first
                assert checked.returncode == 2
                assert "required pod anti-affinity" in checked.stderr
                (term,) = coredns["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
                    "requiredDuringSchedulingIgnoredDuringExecution"
                ]
                preferred = {
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 100, "podAffinityTerm": term}
                        ]
                    }
                }
                apps.patch_namespaced_deployment(
                    "coredns",
                    NS,
                    [{"op": "replace", "path": "/spec/template/spec/affinity", "value": preferred}],
                )
                eventually(lambda: rolled_out(apps, "coredns"), timeout=60)
                checked = kdns_swap(kubeconfig, "check")
            assert checked.returncode == 0, checked.stderr
            without_budget = "deploy/without-budget/" in checked.stdout
            assert without_budget is (extra == "kops-budget"), checked.stdout

            # Step 2: the canary, with no label the Service selects: kdns pods run, no query reaches them.
            apply(api, kdns_manifests(without_budget))
            eventually(lambda: rolled_out(apps, "kdns"), timeout=60)
            kdns_ips = pod_ips(core, "kdns/app=kdns")
            assert len(kdns_ips) == 2
            assert not kdns_ips & ready_addresses(discovery, service)
            closed = kdns_swap(kubeconfig, "gate", "--min-ready", "2")
            assert closed.returncode == 2
            assert "gate closed" in closed.stderr
            assert "is not a ready endpoint of" in closed.stderr

            # Step 3: kdns answers with the cluster's names and the operator's Corefile, as read from
            # the cluster's ConfigMap (the one the kdns pods mount).
            corefile = core.read_namespaced_config_map("coredns", NS).data["Corefile"]
            path = tmp_path / "Corefile"
            path.write_text(moved_to_loopback(corefile, Ports.free(), upstream=f"127.0.0.1:{free_port()}"))
            checked_corefile = subprocess.run(
                [sys.executable, "-m", "kdns", "check", "--corefile", str(path)],
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=60,
            )
            assert checked_corefile.returncode == 0, checked_corefile.stderr
            port = int(path.read_text().split(".:", 1)[1].split(" ", 1)[0])
            with running("--corefile", str(path), "--kubeconfig", str(kubeconfig)) as server:

                def answer(name: str) -> list[str]:
                    reply = ask(port, name)
                    return [item.address for rrset in reply.answer for item in rrset]

                assert eventually(lambda: answer("kubernetes.default.svc.cluster.local."), timeout=20) == [
                    API_SERVICE_IP
                ]
                assert answer(f"{service}.{NS}.svc.cluster.local.") == [DNS_IP]
                assert server.process.poll() is None

            # Step 4: labelled in; the rollout keeps two ready kdns pods; the gate opens on the slices.
            patch = kdns_swap(kubeconfig, "service", "--output", "patch")
            apps.patch_namespaced_deployment("kdns", NS, json.loads(patch.stdout))
            eventually(lambda: rolled_out(apps, "kdns"), timeout=90)
            eventually(lambda: kdns_swap(kubeconfig, "gate", "--min-ready", "2").returncode == 0, timeout=60)
            kdns_ips = pod_ips(core, "kdns/app=kdns")
            assert kdns_ips <= ready_addresses(discovery, service)

            # kubeadm upgrade's lookup finds CoreDNS's Deployment alone
            labelled = apps.list_namespaced_deployment(NS, label_selector="k8s-app=kube-dns").items
            expected = ["coredns"] if coredns["metadata"]["labels"].get("k8s-app") == "kube-dns" else []
            assert [d.metadata.name for d in labelled] == expected

            # a kdns pod can be evicted with the cluster's budgets in place (a drain goes on)
            kdns_pods = core.list_namespaced_pod(NS, label_selector="kdns/app=kdns").items
            budgets = [b.metadata.name for b in policy.list_namespaced_pod_disruption_budget(NS).items]
            assert budgets == (["kube-dns"] if extra else ["kdns"])
            victim = kdns_pods[0].metadata.name
            eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name=victim, namespace=NS))

            def evicted() -> bool:
                try:
                    core.create_namespaced_pod_eviction(victim, NS, eviction)
                except ApiException as error:
                    if error.status == TOO_MANY_REQUESTS:  # the budget's status not computed yet
                        return False
                    raise
                return True

            eventually(evicted, timeout=60, interval=0.5)
            eventually(lambda: kdns_swap(kubeconfig, "gate", "--min-ready", "2").returncode == 0, timeout=60)

            # Step 5: CoreDNS scaled down last; the Service is kdns's alone.
            apps.patch_namespaced_deployment_scale("coredns", NS, {"spec": {"replicas": 0}})
            eventually(
                lambda: ready_addresses(discovery, service) == pod_ips(core, "kdns/app=kdns"), timeout=60
            )
            assert not pod_ips(core, coredns_selector)

            # Rollback, the same in reverse: CoreDNS up and in the Service, then kdns labelled out, then gone.
            apps.patch_namespaced_deployment_scale("coredns", NS, {"spec": {"replicas": replicas}})
            eventually(lambda: rolled_out(apps, "coredns"), timeout=60)
            eventually(
                lambda: pod_ips(core, coredns_selector) <= ready_addresses(discovery, service), timeout=60
            )
            unlabel = dict.fromkeys(service_doc["spec"]["selector"])
            apps.patch_namespaced_deployment(
                "kdns", NS, {"spec": {"template": {"metadata": {"labels": unlabel}}}}
            )
            eventually(lambda: rolled_out(apps, "kdns"), timeout=90)
            apps.delete_namespaced_deployment("kdns", NS)
            eventually(lambda: not pod_ips(core, "kdns/app=kdns"), timeout=60)
            restored = pod_ips(core, coredns_selector)
            assert len(restored) == replicas
            eventually(lambda: ready_addresses(discovery, service) == restored, timeout=60)
