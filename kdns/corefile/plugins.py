"""The directives a server block may hold: what sets each up, the order CoreDNS runs its plugins in
(``plugin.cfg``), and what kdns says of the plugins it does not run."""

from __future__ import annotations

from collections.abc import Callable

from kdns.corefile import (
    acl,
    cache,
    external,
    forward,
    hosts,
    identity,
    kubernetes,
    log,
    ops,
    rewrite,
    server,
    template,
    transfer,
)
from kdns.corefile.context import Draft
from kdns.corefile.syntax import Directive

Setup = Callable[[Directive, Draft], None]

# CoreDNS's plugin.cfg: a block runs its plugins in this order, whatever the order written.
ORDER = (
    "root", "metadata", "geoip", "cancel", "tls", "timeouts", "multisocket", "reload", "nsid", "bufsize",
    "bind", "debug", "trace", "ready", "health", "pprof", "prometheus", "errors", "log", "dnstap", "local",
    "dns64", "acl", "any", "chaos", "loadbalance", "tsig", "cache", "rewrite", "header", "dnssec",
    "autopath", "minimal", "template", "transfer", "hosts", "route53", "azure", "clouddns", "k8s_external",
    "kubernetes", "file", "auto", "secondary", "etcd", "loop", "forward", "grpc", "erratic", "whoami",
    "on", "sign", "view",
)  # fmt: skip

SETUPS: dict[str, Setup] = {
    "kubernetes": kubernetes.setup,
    "forward": forward.setup,
    "cache": cache.setup,
    "hosts": hosts.setup,
    "template": template.setup,
    "rewrite": rewrite.setup,
    "k8s_external": external.setup,
    "transfer": transfer.setup,
    "acl": acl.setup,
    "chaos": identity.chaos,
    "whoami": identity.whoami,
    "bufsize": server.bufsize,
    "health": ops.health,
    "ready": ops.ready,
    "prometheus": ops.prometheus,
    "errors": log.errors,
    "log": log.log,
    "debug": log.debug,
    "bind": server.bind,
    "reload": server.reload,
    "loop": server.loop,
    "loadbalance": server.loadbalance,
    "autopath": server.autopath,
}
# Plugins that only set the server up: they never see a query (CoreDNS does not list them enabled).
SETUP_ONLY = frozenset(
    {"bind", "debug", "health", "multisocket", "pprof", "ready", "reload", "root", "timeouts"}
)


def handlers(names: list[str]) -> tuple[str, ...]:
    """The plugins among directive ``names`` that see queries, each once, in CoreDNS's order."""
    seen = set(names) - SETUP_ONLY
    return tuple(name for name in ORDER if name in seen)


# what runs once a block's directives are all set up (checks across directives of one plugin)
FINISHES: tuple[Callable[[Draft], None], ...] = (forward.finish,)
REPEATABLE = frozenset({"bind", "log", "template", "forward", "rewrite", "acl"})

# Backends and plugins outside what a cluster DNS does: kdns answers from the Kubernetes API.
OUT_OF_SCOPE = {
    "etcd": "a zone kept in etcd (SkyDNS)",
    "file": "a zone read from a zone file",
    "auto": "zones read from zone files in a directory",
    "secondary": "zones transferred from a primary",
    "route53": "zones held in AWS Route 53",
    "azure": "zones held in Azure DNS",
    "clouddns": "zones held in Google Cloud DNS",
    "grpc": "forwarding over gRPC",
    "nomad": "Nomad services",
    "dnssec": "on-line DNSSEC signing",
    "sign": "DNSSEC signing of zone files",
    "geoip": "answers by the client's location",
    "view": "views chosen by expressions",
    "dnstap": "dnstap logging",
    "federation": "Kubernetes federation (removed from CoreDNS in 1.7)",
    "proxy": "the old proxy plugin (CoreDNS itself dropped it in 1.6; forward replaces it)",
}
OUT_OF_SCOPE_ADVICE = "keep these names on a CoreDNS beside kdns (a forward stanza can send them there)"


def refusal(name: str) -> str:
    """Why a directive kdns does not run is refused."""
    if name in OUT_OF_SCOPE:
        reason = OUT_OF_SCOPE[name]
        return f"plugin {name} is not supported by kdns: it serves {reason}; {OUT_OF_SCOPE_ADVICE}"
    if name in ORDER:
        return f"plugin {name} is not supported by kdns"
    return (
        f"unknown directive {name!r}: not a plugin of CoreDNS itself (a CoreDNS built with external "
        "plugins runs it; kdns does not)"
    )
