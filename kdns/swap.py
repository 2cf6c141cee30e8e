"""``kdns swap``: the checks of putting kdns in CoreDNS's place, read from the Kubernetes API
(deploy/README.md runs them at each step).

- ``service --ip IP``: the cluster's DNS Service, the one whose cluster IP is kubelet's ``clusterDNS``
  address, and the labels its selector needs on a pod (as text, as a selector, or as the merge patch
  that adds them to kdns's pod template).
- ``check --ip IP``: what would go wrong once kdns's pods carry those labels: a pod under two
  PodDisruptionBudgets cannot be evicted, a workload's required pod anti-affinity on those labels
  keeps pods Pending, and ``kubeadm upgrade`` refuses two Deployments labelled ``k8s-app=kube-dns``.
- ``gate --ip IP``: exit 0 only when every ready kdns pod's IP is a ready endpoint of the Service,
  the condition for scaling CoreDNS down.

The decisions are pure functions of the API's JSON (table-tested); ``main`` only reads the API.
Every failure is one ``kdns: error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdns.cluster.convert import SERVICE_NAME_LABEL
from kdns.cluster.selector import LabelSelector, Requirement, SelectorError
from kdns.config import KDNS_POD_SELECTOR

FAILED = 2
KUBE_DNS_LABEL = ("k8s-app", "kube-dns")  # what kubeadm upgrade looks Deployments up by
Json = dict[str, Any]


class SwapError(Exception):
    """A check failed or cannot be made; the message says which and why, on one line."""


@dataclass(frozen=True, slots=True)
class DnsService:
    namespace: str
    name: str
    selector: dict[str, str]
    families: frozenset[str]  # "IPv4", "IPv6"

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


# --- decisions ------------------------------------------------------------------------------------


def dns_service(services: Iterable[Json], ip: str) -> DnsService:
    """The Service whose cluster IP (any of ``clusterIPs``) is ``ip``; it must select pods by labels."""
    wanted = ipaddress.ip_address(ip)
    for service in services:
        spec = service.get("spec") or {}
        addresses = spec.get("clusterIPs") or [spec.get("clusterIP")]
        if not any(_same_address(a, wanted) for a in addresses if a):
            continue
        meta = service.get("metadata") or {}
        ref = f"{meta.get('namespace')}/{meta.get('name')}"
        selector = spec.get("selector") or {}
        if not selector:
            raise SwapError(
                f"Service {ref} has cluster IP {ip} but no selector: its endpoints are not chosen by "
                "pod labels, so kdns's pods cannot be labelled in"
            )
        families = frozenset(spec.get("ipFamilies") or [f"IPv{wanted.version}"])
        return DnsService(meta.get("namespace", ""), meta.get("name", ""), dict(selector), families)
    raise SwapError(f"no Service has cluster IP {ip}: give kubelet's clusterDNS address")


def _same_address(text: str, wanted: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text) == wanted
    except ValueError:
        return False


def selector_text(labels: Mapping[str, str]) -> str:
    """``a=b,c=d``: the labels as a selector kubectl's ``-l`` takes."""
    return ",".join(f"{key}={value}" for key, value in labels.items())


def label_patch(labels: Mapping[str, str]) -> str:
    """The merge patch that adds ``labels`` to a Deployment's pod template."""
    return json.dumps({"spec": {"template": {"metadata": {"labels": dict(labels)}}}}, sort_keys=True)


def api_selector(spec: Json | None) -> LabelSelector | None:
    """An API ``LabelSelector`` (matchLabels, matchExpressions); None selects nothing, ``{}`` everything."""
    if spec is None:
        return None
    requirements = [
        Requirement(key, "in", frozenset({value})) for key, value in (spec.get("matchLabels") or {}).items()
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in spec.get("matchExpressions") or []:
        op = ops.get(expression.get("operator", ""))
        if op is None:
            raise SwapError(f"unknown label selector operator {expression.get('operator')!r}")
        requirements.append(Requirement(expression["key"], op, frozenset(expression.get("values") or ())))
    return LabelSelector(text=json.dumps(spec, sort_keys=True), requirements=tuple(requirements))


def selects(spec: Json | None, labels: Mapping[str, str]) -> bool:
    selector = api_selector(spec)
    return selector is not None and selector.matches(labels)


def own_labels(pod_selector: LabelSelector) -> dict[str, str]:
    """The labels a kdns pod carries before it is labelled in: what its selector requires."""
    return {
        r.key: next(iter(r.values)) for r in pod_selector.requirements if r.op == "in" and len(r.values) == 1
    }


def labelled_in(pod_selector: LabelSelector, service: DnsService) -> dict[str, str]:
    """The labels of a kdns pod once labelled in: its own, then the Service's."""
    return {**own_labels(pod_selector), **service.selector}


def name_of(obj: Json) -> str:
    return (obj.get("metadata") or {}).get("name", "?")


def budgets_over(budgets: Iterable[Json], labels: Mapping[str, str]) -> list[str]:
    """The PodDisruptionBudgets (of the pod's namespace) whose selector takes a pod with ``labels``."""
    return sorted(name_of(b) for b in budgets if selects((b.get("spec") or {}).get("selector"), labels))


def repelling(deployments: Iterable[Json], labels: Mapping[str, str]) -> list[str]:
    """Deployments whose pods require (not prefer) no pod with ``labels`` on their node or zone: with
    such a pod beside them, theirs stay Pending, and a pod with ``labels`` is not scheduled beside theirs."""
    found = []
    for deployment in deployments:
        pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        anti = (pod.get("affinity") or {}).get("podAntiAffinity") or {}
        terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        keys = sorted({t.get("topologyKey", "?") for t in terms if selects(t.get("labelSelector"), labels)})
        if keys:
            found.append(f"{name_of(deployment)} (per {', '.join(keys)})")
    return found


def labelled_kube_dns(deployments: Iterable[Json]) -> list[str]:
    """The Deployments ``kubeadm upgrade`` finds by ``k8s-app=kube-dns`` on their own metadata."""
    key, value = KUBE_DNS_LABEL
    return sorted(
        name_of(d) for d in deployments if ((d.get("metadata") or {}).get("labels") or {}).get(key) == value
    )


def conflicts(
    labels: Mapping[str, str], *, budgets: Iterable[Json], deployments: Sequence[Json]
) -> list[str]:
    """What stands in the way of kdns's pods carrying ``labels`` beside the Service's other pods."""
    problems = []
    covering = budgets_over(budgets, labels)
    if len(covering) > 1:
        problems.append(
            f"a kdns pod labelled in would be under {len(covering)} PodDisruptionBudgets "
            f"({', '.join(covering)}) and could not be evicted: keep one (deploy/without-budget/)"
        )
    blocking = repelling(deployments, labels)
    if blocking:
        problems.append(
            f"required pod anti-affinity against {selector_text(labels)} in {'; '.join(blocking)}: "
            "kdns and CoreDNS pods would stay Pending beside each other; make it preferred first"
        )
    labelled = labelled_kube_dns(deployments)
    if len(labelled) > 1:
        problems.append(
            f"{len(labelled)} Deployments labelled k8s-app=kube-dns ({', '.join(labelled)}): kubeadm "
            "upgrade refuses more than one; the label belongs on pod templates only"
        )
    return problems


def budget_advice(budgets: Sequence[Json], labels: Mapping[str, str], *, own: Mapping[str, str]) -> str:
    """Which of deploy/ and deploy/without-budget/ to apply: the cluster's own budgets are those that
    take a kdns pod once labelled in (``labels``) but not before (``own``)."""
    before = set(budgets_over(budgets, own))
    theirs = [name for name in budgets_over(budgets, labels) if name not in before]
    if theirs:
        return f"budget: {', '.join(theirs)} will cover kdns's pods: apply deploy/without-budget/"
    return "budget: no budget of the cluster will cover kdns's pods: apply deploy/ (with kdns's own)"


def pod_addresses(pod: Json, families: frozenset[str]) -> list[str]:
    status = pod.get("status") or {}
    ips = [entry.get("ip") for entry in status.get("podIPs") or []] or [status.get("podIP")]
    return [ip for ip in ips if ip and f"IPv{ipaddress.ip_address(ip).version}" in families]


def is_ready(pod: Json) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def live(pods: Iterable[Json]) -> list[Json]:
    """The pods not being deleted."""
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]


def ready_endpoints(slices: Iterable[Json]) -> set[str]:
    """The addresses of the slices' ready endpoints (an unset ``ready`` means ready, as the API says)."""
    return {
        address
        for piece in slices
        for endpoint in piece.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") is not False
        for address in endpoint.get("addresses") or []
    }


def gate(service: DnsService, pods: Iterable[Json], slices: Iterable[Json], *, min_ready: int) -> list[str]:
    """Why CoreDNS may not be scaled down yet; empty when every ready kdns pod (at least ``min_ready``)
    is a ready endpoint of the Service by each of its addresses the Service serves."""
    endpoints = ready_endpoints(slices)
    running = live(pods)
    ready = [p for p in running if is_ready(p)]
    problems = []
    if len(ready) < min_ready:
        problems.append(f"{len(ready)} kdns pod(s) ready ({len(running)} found), {min_ready} wanted")
    for pod in ready:
        addresses = pod_addresses(pod, service.families)
        missing = [a for a in addresses if a not in endpoints]
        if not addresses or missing:
            shown = ", ".join(missing) or "no address"
            problems.append(f"kdns pod {name_of(pod)} ({shown}) is not a ready endpoint of {service.ref}")
    return problems


# --- the command ----------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction) -> None:
    swap = commands.add_parser(
        "swap",
        help="checks of swapping CoreDNS for kdns, read from the Kubernetes API",
        description="Checks of swapping the cluster's DNS from CoreDNS to kdns and back (deploy/README.md). "
        "Exit 0 when the check passes, 2 with a one-line reason otherwise.",
    )
    steps = swap.add_subparsers(dest="step", metavar="STEP", required=True)
    for name, text in (
        ("service", "print the DNS Service (its cluster IP is IP) and the labels its selector needs"),
        ("check", "say what would block kdns's pods once labelled in: two budgets, anti-affinity, kubeadm"),
        ("gate", "exit 0 only when every ready kdns pod is a ready endpoint of the DNS Service"),
    ):
        step = steps.add_parser(name, help=text, description=text)
        step.add_argument("--ip", required=True, help="kubelet's clusterDNS address, e.g. 10.96.0.10")
        step.add_argument("--kubeconfig", metavar="FILE", type=Path, help="kubeconfig file of the cluster")
        step.add_argument("--context", metavar="NAME", help="kubeconfig context (default: its current one)")
        step.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
        if name == "service":
            step.add_argument(
                "--output",
                choices=["text", "selector", "patch"],
                default="text",
                help="text: the Service and its selector; selector: a=b,c=d; patch: the merge patch that "
                "adds the labels to a Deployment's pod template (default: text)",
            )
        else:
            step.add_argument(
                "--pods",
                metavar="SELECTOR",
                default=KDNS_POD_SELECTOR,
                help=f"kdns's pods (default: {KDNS_POD_SELECTOR})",
            )
        if name == "gate":
            step.add_argument(
                "--min-ready", metavar="N", type=int, default=1, help="ready kdns pods wanted (default: 1)"
            )


def main(args: argparse.Namespace) -> int:
    try:
        for line in run(args):
            print(line)
    except (SwapError, SelectorError, ValueError) as exc:
        print(f"kdns: error: {exc}", file=sys.stderr)
        return FAILED
    return 0


def run(args: argparse.Namespace) -> list[str]:
    """The lines ``kdns swap STEP`` prints; raises ``SwapError`` when the check fails."""
    from kdns.sources.connection import ConnectionSettingsError  # noqa: PLC0415
    from kdns.sources.kube import ApiCallError, Connection, list_items  # noqa: PLC0415 (45 MB client)

    ipaddress.ip_address(args.ip)  # ValueError: "'x' does not appear to be an IPv4 or IPv6 address"
    try:
        api = Connection(args.kubeconfig, args.context, args.in_cluster).client()
        service = dns_service(list_items(api, "services"), args.ip)
        if args.step == "service":
            return _service_lines(service, args.output)
        pod_selector = LabelSelector.parse(args.pods)
        ns = service.namespace
        if args.step == "check":
            labels = labelled_in(pod_selector, service)
            budgets = list_items(api, "poddisruptionbudgets", ns)
            deployments = list_items(api, "deployments", ns)
            problems = conflicts(labels, budgets=budgets, deployments=deployments)
            if problems:
                raise SwapError("; ".join(problems))
            return [
                f"{service.ref}: kdns pods labelled in carry {selector_text(labels)}; no conflict",
                budget_advice(budgets, labels, own=own_labels(pod_selector)),
            ]
        pods = list_items(api, "pods", ns, label_selector=args.pods)
        slices = list_items(
            api,
            "endpointslices",
            ns,
            label_selector=f"{SERVICE_NAME_LABEL}={service.name}",
        )
        problems = gate(service, pods, slices, min_ready=args.min_ready)
        if problems:
            raise SwapError(f"gate closed: {'; '.join(problems)}")
        ready = sum(1 for p in live(pods) if is_ready(p))
        return [f"gate open: {ready} ready kdns pod(s) are ready endpoints of {service.ref}"]
    except (ConnectionSettingsError, ApiCallError) as exc:
        raise SwapError(str(exc)) from None


def _service_lines(service: DnsService, output: str) -> list[str]:
    if output == "selector":
        return [selector_text(service.selector)]
    if output == "patch":
        return [label_patch(service.selector)]
    return [f"{service.ref} selects {selector_text(service.selector)}"]
