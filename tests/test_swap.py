"""``kdns swap``'s decisions, as tables over the API's JSON, and its command line's failures."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kdns.cluster.selector import LabelSelector
from kdns.config import KDNS_POD_SELECTOR
from kdns.swap import (
    DnsService,
    SwapError,
    budget_advice,
    budgets_over,
    conflicts,
    dns_service,
    gate,
    label_patch,
    labelled_in,
    repelling,
    selects,
)
from tests.support.paths import ROOT


def service(name: str, ip: str, selector: dict | None, ns: str = "kube-system", **spec) -> dict:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "clusterIPs": [ip], "selector": selector, **spec},
    }


KUBE_DNS = DnsService("kube-system", "kube-dns", {"k8s-app": "kube-dns"}, frozenset({"IPv4"}))


def test_the_dns_service_is_found_by_its_cluster_ip_and_keeps_its_whole_selector():
    helm = {
        "app.kubernetes.io/instance": "coredns",
        "k8s-app": "coredns",
        "app.kubernetes.io/name": "coredns",
    }
    services = [
        service("kubernetes", "10.96.0.1", None, ns="default"),
        service("coredns", "10.96.0.10", helm),
    ]
    found = dns_service(services, "10.96.0.10")
    assert (found.ref, found.selector) == ("kube-system/coredns", helm)
    # an IPv6 address written another way is the same address
    dual = service("kube-dns", "10.96.0.10", {"k8s-app": "kube-dns"}, clusterIPs=["10.96.0.10", "fd00::a"])
    assert dns_service([dual], "fd00:0::a").name == "kube-dns"


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ([], "no Service has cluster IP 10.96.0.10"),
        ([service("kube-dns", "10.96.0.11", {"a": "b"})], "no Service has cluster IP"),
        ([service("kube-dns", "10.96.0.10", None)], "no selector"),
    ],
)
def test_no_dns_service_to_label_into_is_said_plainly(services, message):
    with pytest.raises(SwapError, match=message):
        dns_service(services, "10.96.0.10")


def test_labelled_in_kdns_pods_carry_their_own_label_and_the_services_selector():
    selector = LabelSelector.parse(KDNS_POD_SELECTOR)
    coredns_deployment = DnsService(
        "kube-system", "kube-dns", {"k8s-app": "kube-dns", "app.kubernetes.io/name": "coredns"}, frozenset()
    )
    assert labelled_in(selector, coredns_deployment) == {
        "kdns/app": "kdns",
        "k8s-app": "kube-dns",
        "app.kubernetes.io/name": "coredns",
    }
    assert label_patch({"k8s-app": "kube-dns"}) == (
        '{"spec": {"template": {"metadata": {"labels": {"k8s-app": "kube-dns"}}}}}'
    )


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {"a": "b"}, False),  # a PDB without a selector selects nothing
        ({}, {"a": "b"}, True),  # an empty one selects every pod of its namespace
        ({"matchLabels": {"k8s-app": "kube-dns"}}, {"k8s-app": "kube-dns", "x": "y"}, True),
        ({"matchLabels": {"k8s-app": "kube-dns"}}, {"k8s-app": "coredns"}, False),
        (
            {"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
            {"k8s-app": "kube-dns"},
            True,
        ),
        (
            {"matchExpressions": [{"key": "k8s-app", "operator": "NotIn", "values": ["kube-dns"]}]},
            {"k8s-app": "kube-dns"},
            False,
        ),
        ({"matchExpressions": [{"key": "kdns/app", "operator": "Exists"}]}, {"kdns/app": "kdns"}, True),
        (
            {"matchExpressions": [{"key": "kdns/app", "operator": "DoesNotExist"}]},
            {"kdns/app": "kdns"},
            False,
        ),
    ],
)
def test_api_label_selectors_select_as_the_api_server_does(selector, labels, expected):
    assert selects(selector, labels) is expected


KDNS_IN = {"kdns/app": "kdns", "k8s-app": "kube-dns"}


def budget(name: str, match: dict) -> dict:
    return {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": match}}}


def deployment(name: str, labels: dict, required: list | None = None) -> dict:
    affinity = (
        {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}} if required else {}
    )
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"template": {"spec": {"affinity": affinity}}},
    }


REQUIRED_KUBE_DNS = [
    {
        "labelSelector": {"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
        "topologyKey": "kubernetes.io/hostname",
    }
]


def test_two_budgets_over_a_labelled_in_kdns_pod_are_a_conflict_one_is_not():
    kops = budget("kube-dns", {"k8s-app": "kube-dns"})
    kdns = budget("kdns", {"kdns/app": "kdns"})
    coredns_only = budget("coredns", {"k8s-app": "kube-dns", "app.kubernetes.io/name": "coredns"})
    assert budgets_over([kops, kdns, coredns_only], KDNS_IN) == ["kdns", "kube-dns"]
    (problem,) = conflicts(KDNS_IN, budgets=[kops, kdns], deployments=[])
    assert "2 PodDisruptionBudgets (kdns, kube-dns)" in problem
    assert conflicts(KDNS_IN, budgets=[kops], deployments=[]) == []
    assert conflicts(KDNS_IN, budgets=[kdns, coredns_only], deployments=[]) == []
    # which manifests to apply: kops's budget will take kdns's pods; kdns's own is not the cluster's
    own = {"kdns/app": "kdns"}
    assert budget_advice([kops, kdns], KDNS_IN, own=own).endswith("apply deploy/without-budget/")
    assert "kube-dns will cover" in budget_advice([kops], KDNS_IN, own=own)
    assert budget_advice([kdns, coredns_only], KDNS_IN, own=own).endswith("(with kdns's own)")


def test_required_anti_affinity_on_the_service_labels_is_a_conflict_preferred_is_not():
    strict = deployment("coredns", {"k8s-app": "kube-dns"}, REQUIRED_KUBE_DNS)
    assert repelling([strict], KDNS_IN) == ["coredns (per kubernetes.io/hostname)"]
    (problem,) = conflicts(KDNS_IN, budgets=[], deployments=[strict])
    assert "make it preferred" in problem
    preferred = deployment("coredns", {"k8s-app": "kube-dns"})
    preferred["spec"]["template"]["spec"]["affinity"] = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": REQUIRED_KUBE_DNS[0]}
            ]
        }
    }
    assert conflicts(KDNS_IN, budgets=[], deployments=[preferred]) == []


def test_a_second_deployment_labelled_kube_dns_is_a_conflict_for_kubeadm_upgrade():
    coredns = deployment("coredns", {"k8s-app": "kube-dns"})
    kdns_labelled = deployment("kdns", {"k8s-app": "kube-dns"})
    kdns = deployment("kdns", {"app.kubernetes.io/name": "kdns"})
    (problem,) = conflicts(KDNS_IN, budgets=[], deployments=[coredns, kdns_labelled])
    assert "2 Deployments labelled k8s-app=kube-dns (coredns, kdns)" in problem
    assert conflicts(KDNS_IN, budgets=[], deployments=[coredns, kdns]) == []


def pod(name: str, ips: list[str], *, ready: bool = True, deleting: bool = False) -> dict:
    meta = {"name": name, **({"deletionTimestamp": "2025-01-01T00:00:00Z"} if deleting else {})}
    status = {
        "podIP": ips[0] if ips else None,
        "podIPs": [{"ip": ip} for ip in ips],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    return {"metadata": meta, "status": status}


def endpoints(*entries: tuple[str, bool | None]) -> list[dict]:
    return [
        {
            "endpoints": [
                {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
                for ip, ready in entries
            ]
        }
    ]


@pytest.mark.parametrize(
    ("pods", "slices", "min_ready", "problem"),
    [
        # open: both ready kdns pods are ready endpoints (an unset ready condition means ready)
        (
            [pod("a", ["10.0.0.1"]), pod("b", ["10.0.0.2"])],
            endpoints(("10.0.0.1", True), ("10.0.0.2", None)),
            2,
            None,
        ),
        # an unready or terminating kdns pod is not waited for; CoreDNS's endpoints do not matter
        (
            [
                pod("a", ["10.0.0.1"]),
                pod("b", ["10.0.0.2"], ready=False),
                pod("c", ["10.0.0.3"], deleting=True),
            ],
            endpoints(("10.0.0.1", True), ("10.0.0.9", True)),
            1,
            None,
        ),
        # only the Service's families count: an IPv6 pod address of a single-stack IPv4 Service
        ([pod("a", ["10.0.0.1", "fd00::1"])], endpoints(("10.0.0.1", True)), 1, None),
        # closed: no kdns pod at all, or fewer ready than wanted
        ([], endpoints(("10.0.0.9", True)), 1, "0 kdns pod(s) ready (0 found), 1 wanted"),
        (
            [pod("a", ["10.0.0.1"])],
            endpoints(("10.0.0.1", True)),
            2,
            "1 kdns pod(s) ready (1 found), 2 wanted",
        ),
        # closed: a ready kdns pod that is not (yet) in the slices, or in them but not ready
        (
            [pod("a", ["10.0.0.1"])],
            endpoints(("10.0.0.9", True)),
            1,
            "kdns pod a (10.0.0.1) is not a ready endpoint",
        ),
        (
            [pod("a", ["10.0.0.1"])],
            endpoints(("10.0.0.1", False)),
            1,
            "kdns pod a (10.0.0.1) is not a ready endpoint",
        ),
        ([pod("a", [])], [], 0, "kdns pod a (no address) is not a ready endpoint"),
    ],
)
def test_the_gate_opens_only_when_every_ready_kdns_pod_is_a_ready_endpoint(pods, slices, min_ready, problem):
    problems = gate(KUBE_DNS, pods, slices, min_ready=min_ready)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["gate", "--ip", "not-an-ip", "--kubeconfig", "/nonexistent/kubeconfig"],
            "does not appear to be an IPv4",
        ),
        (
            ["service", "--ip", "10.96.0.10", "--kubeconfig", "/nonexistent/kubeconfig"],
            "/nonexistent/kubeconfig",
        ),
    ],
)
def test_the_command_fails_with_one_line_and_exit_2(argv, message):
    done = subprocess.run(
        [sys.executable, "-m", "kdns", "swap", *argv], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kdns: error: ")
    assert message in lines[0]
