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
    parse_api_url,
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
    for option in d.options:
        cluster = _option(d, option, cluster, draft)
    if cluster.namespaces and cluster.zone.namespace_labels is not None:
        fail(d.name, "kubernetes: namespaces and namespace_labels cannot both be set")
    cluster.kube = _connection(d, cluster.kube, draft)
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
            return replace(cluster, labels=_selector(o))
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
        case "kubeconfig" | "endpoint" | "tls" | "startup_timeout":
            kube = _kube_option(o, kube, draft)
        case "noendpoints":
            args(o, 0, 0, "noendpoints")
            zone = replace(zone, endpoints=False)
        case "namespace_labels":
            zone = replace(zone, namespace_labels=_selector(o))
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
        case "transfer":
            fail(o.name, f"kubernetes: option {name} is not supported by kdns")
        case _:
            unknown_option(d, o)
    return replace(cluster, zone=zone, kube=kube)


def _selector(o: Directive) -> str:
    """The label selector of ``labels`` or ``namespace_labels``, its words joined as CoreDNS does."""
    selector = " ".join(t.text for t in args(o, 1, None, f"{o.name.text} SELECTOR"))
    try:
        LabelSelector.parse(selector)
    except SelectorError as exc:
        fail(o.name, f"{o.name.text}: {exc}")
    return selector


def _kube_option(o: Directive, kube: KubeSettings, draft: Draft) -> KubeSettings:
    """An option that says how to reach the API (``_connection`` settles which way is used)."""
    name, words = o.name.text, o.args
    match name:
        case "kubeconfig":
            args(o, 1, 2, "kubeconfig FILE [CONTEXT]")
            context = words[1].text if len(words) > 1 else None
            return replace(kube, kubeconfig=Path(words[0].text), context=context, in_cluster=False)
        case "endpoint":
            urls = args(o, 1, None, "endpoint URL")
            if len(urls) > 1:
                draft.warn(o.name, f"kubernetes: endpoint: only the first URL, {urls[0].text}, is used")
            return replace(kube, endpoint=value(urls[0], name, parse_api_url))
        case "tls":
            cert, key, ca = (Path(t.text) for t in args(o, 3, 3, "tls CERT KEY CACERT"))
            return replace(kube, tls_cert=cert, tls_key=key, tls_ca=ca)
    return replace(kube, startup_timeout=duration(args(o, 1, 1, "startup_timeout DURATION")[0], name))


def _connection(d: Directive, kube: KubeSettings, draft: Draft) -> KubeSettings:
    """Where the cluster is, as CoreDNS decides it: a kubeconfig wins over ``endpoint`` and ``tls``;
    without one, ``endpoint`` (with the client certificate and CA of ``tls``) names the API server,
    and with neither, kdns uses the in-cluster configuration. An endpoint that names the in-cluster
    API without ``tls`` changes nothing: the in-cluster configuration is used, with its token."""
    given = {o.name.text: o.name for o in d.options if o.name.text in ("endpoint", "tls")}
    tls = kube.tls_ca is not None
    if not kube.in_cluster:
        for name, token in given.items():
            draft.warn(token, f"kubernetes: {name} is ignored: kdns uses the kubeconfig")
        return replace(kube, endpoint=None, tls_cert=None, tls_key=None, tls_ca=None)
    if kube.endpoint is None:
        if tls:
            draft.warn(
                given["tls"], "kubernetes: tls is ignored without endpoint: kdns uses the in-cluster API"
            )
        return replace(kube, tls_cert=None, tls_key=None, tls_ca=None)
    in_cluster = {*IN_CLUSTER_HOSTS, draft.shared.environ.get("KUBERNETES_SERVICE_HOST", "kubernetes")}
    if not tls and urlsplit(kube.endpoint).hostname in in_cluster:
        draft.warn(
            given["endpoint"], "kubernetes: endpoint is ignored: kdns uses the in-cluster configuration"
        )
        return replace(kube, endpoint=None)
    return replace(kube, in_cluster=False)
