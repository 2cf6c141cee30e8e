"""``kubernetes [ZONES...] { ... }``: the cluster's names. kdns follows one cluster, so every block
that has the directive must configure it the same way; each such block answers the cluster zones."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from kdns.cluster.selector import LabelSelector, SelectorError
from kdns.config import (
    COREFILE_PODS,
    DEFAULT_ZONES,
    EVERY_ZONE,
    TTL,
    KubeSettings,
    PodMode,
    ZoneSettings,
    choices,
    parse_choice,
)
from kdns.corefile.context import Cluster, Draft
from kdns.corefile.syntax import Directive
from kdns.corefile.values import args, duration, fail, integer, no_block, unknown_option, value, zones_in
from kdns.zone.names import BadName, ZoneLayout

IN_CLUSTER_HOSTS = frozenset(
    {"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc."}
)


def setup(d: Directive, draft: Draft) -> None:
    zones = list(zones_in(d.args) if d.args else draft.zones)
    if "." in zones:
        draft.warn(d.name, "kubernetes: kdns does not serve the cluster at the root zone '.'")
    zones = [z for z in zones if z != "."]
    if not zones:
        zones = list(DEFAULT_ZONES)
        draft.warn(d.name, f"kubernetes: serving the default zones {' '.join(zones)}")
    try:
        ZoneLayout.of(zones)
    except BadName as exc:
        fail(d.name, f"kubernetes: {exc}")
    cluster = Cluster(
        zone=ZoneSettings(zones=tuple(zones), pods=COREFILE_PODS),
        kube=KubeSettings(in_cluster=True),
    )
    # endpoint last: whether it matters depends on kubeconfig
    for option in sorted(d.options, key=lambda o: o.name.text == "endpoint"):
        cluster = _option(d, option, cluster, draft)
    shared = draft.shared
    if shared.cluster is None:
        shared.cluster, shared.cluster_at = cluster, d.name
    elif cluster != shared.cluster:
        assert shared.cluster_at is not None
        fail(
            d.name,
            "kubernetes: kdns follows one cluster, and this block configures it differently from "
            f"{shared.cluster_at.where}; give every block the same kubernetes directive",
        )
    draft.kubernetes = True
    draft.pods_verified = cluster.zone.pods is PodMode.VERIFIED


def _option(d: Directive, o: Directive, cluster: Cluster, draft: Draft) -> Cluster:
    name, words = o.name.text, o.args
    no_block(o, f"kubernetes option {name}")
    zone, kube = cluster.zone, cluster.kube
    match name:
        case "pods":
            mode = args(o, 1, 1, f"pods {choices(PodMode)}")[0]
            zone = replace(zone, pods=value(mode, name, partial(parse_choice, PodMode)))
        case "ttl":
            zone = replace(zone, ttl=integer(args(o, 1, 1, "ttl SECONDS")[0], name, TTL))
        case "namespaces":
            more = tuple(t.text for t in args(o, 1, None, "namespaces NAMESPACE..."))
            return replace(cluster, namespaces=tuple(dict.fromkeys((*cluster.namespaces, *more))))
        case "labels":
            labels = " ".join(t.text for t in args(o, 1, None, "labels SELECTOR"))
            try:
                LabelSelector.parse(labels)
            except SelectorError as exc:
                fail(o.name, f"labels: {exc}")
            return replace(cluster, labels=labels)
        case "endpoint_pod_names":
            args(o, 0, 0, "endpoint_pod_names")
            zone = replace(zone, endpoint_pod_names=True)
        case "ignore":
            word = args(o, 1, 1, "ignore empty_service")[0]
            if word.text != "empty_service":
                fail(word, f"ignore: {word.text!r} is not empty_service")
            zone = replace(zone, ignore_empty_service=True)
        case "fallthrough":
            zone = replace(zone, fallthrough=zones_in(words) or EVERY_ZONE)
        case "kubeconfig":
            args(o, 1, 2, "kubeconfig FILE [CONTEXT]")
            kube = replace(
                kube,
                kubeconfig=Path(words[0].text),
                context=words[1].text if len(words) > 1 else None,
                in_cluster=False,
            )
        case "endpoint":
            _endpoint(o, kube, draft)
        case "startup_timeout":
            kube = replace(kube, startup_timeout=duration(args(o, 1, 1, "startup_timeout DURATION")[0], name))
        case "apiserver_qps" | "apiserver_burst" | "apiserver_max_inflight":
            integer(args(o, 1, 1, f"{name} N")[0], name)
            draft.warn(o.name, f"kubernetes: {name} is ignored: kdns lists and watches at its own pace")
        case "upstream" | "resyncperiod":
            draft.warn(o.name, f"kubernetes: {name} is obsolete and ignored")
        case "multicluster":
            zones = zones_in(args(o, 1, None, "multicluster ZONES..."))
            outside = [z for z in zones if z not in zone.zones]
            if outside:
                fail(o.name, f"kubernetes: multicluster {' '.join(outside)}: not a zone of this kubernetes")
            zone = replace(zone, multicluster=zones)
        case "noendpoints" | "namespace_labels" | "tls" | "transfer":
            fail(o.name, f"kubernetes: option {name} is not supported by kdns")
        case _:
            unknown_option(d, o)
    return replace(cluster, zone=zone, kube=kube)


def _endpoint(o: Directive, kube: KubeSettings, draft: Draft) -> None:
    url = args(o, 1, None, "endpoint URL")[0]
    try:
        host = urlsplit(url.text).hostname
    except ValueError:
        host = None
    in_cluster = {*IN_CLUSTER_HOSTS, draft.shared.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes")}
    if kube.in_cluster and host not in in_cluster:
        fail(o.name, "kubernetes: endpoint is not supported: kdns uses the in-cluster API or 'kubeconfig'")
    source = "the in-cluster configuration" if kube.in_cluster else "the kubeconfig"
    draft.warn(o.name, f"kubernetes: endpoint is ignored: kdns uses {source}")
