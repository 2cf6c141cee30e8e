"""What ``kdns check`` prints: each server block as kdns will run it, and what it ignores."""

from __future__ import annotations

from collections.abc import Iterator

from kdns.config import CacheSettings, ForwardSettings, ServeConfig, ServerSettings


def describe(config: ServeConfig, warnings: list[str]) -> Iterator[str]:
    """Lines saying what each block and plugin of ``config`` maps to, then every option ignored."""
    yield f"{config.corefile}: {len(config.servers)} server block(s)"
    for server in config.servers:
        yield from _server(config, server)
    ops = config.ops
    shared = [
        f"health {ops.health} (lameduck {ops.lameduck:g}s)" if ops.health else "",
        f"ready {ops.ready}" if ops.ready else "",
        f"metrics {ops.metrics}" if ops.metrics else "",
        f"reload every {config.reload:g}s" if config.reload else "",
    ]
    yield "whole server: " + (", ".join(s for s in shared if s) or "no HTTP endpoints, no reload")
    if config.imports:
        yield "imports: " + ", ".join(str(path) for path in config.imports)
    if warnings:
        yield f"ignored or changed ({len(warnings)}):"
        yield from (f"  {warning}" for warning in warnings)


def _server(config: ServeConfig, server: ServerSettings) -> Iterator[str]:
    zones = " ".join(f"{zone.rstrip('.')}." if zone != "." else "." for zone in server.zones)
    yield f"{zones} port {server.port} (listening on {', '.join(server.listen)})"
    if server.hosts is not None:
        hosts = server.hosts
        fallthrough = f", fallthrough {' '.join(hosts.fallthrough)}" if hosts.fallthrough else ""
        yield f"  hosts {hosts.path} ({len(hosts.entries)} inline names, ttl {hosts.ttl}{fallthrough})"
    if server.kubernetes:
        zone = config.zone
        fallthrough = f", fallthrough {' '.join(zone.fallthrough)}" if zone.fallthrough else ""
        multicluster = f", multicluster {' '.join(zone.multicluster)}" if zone.multicluster else ""
        selected = f", namespace_labels {zone.namespace_labels}" if zone.namespace_labels else ""
        yield (
            f"  kubernetes {' '.join(zone.zones)}: pods {zone.pods.value}, ttl {zone.ttl}{fallthrough}"
            + multicluster
            + selected
            + ("" if zone.endpoints else ", noendpoints")
            + (", autopath" if server.autopath else "")
        )
        if config.kube is not None and config.kube.endpoint is not None:
            yield f"  API server {config.kube.endpoint}" + (
                " (client certificate)" if config.kube.tls_cert else ""
            )
    if server.external is not None:
        external = server.external
        yield (
            f"  k8s_external {' '.join(external.zones or server.zones)}: apex {external.apex}, "
            f"ttl {external.ttl}" + (", headless" if external.headless else "")
        )
    if server.transfer is not None:
        transfer = server.transfer
        yield f"  transfer {' '.join(transfer.zones or server.zones)} to {' '.join(transfer.to)}"
    for rule in server.rewrites:
        yield f"  rewrite {type(rule).__name__}"
    if server.templates:
        yield f"  template: {len(server.templates)}"
    for stanza in server.forward:
        yield f"  forward {stanza.zone} to {_upstreams(stanza)}: policy {stanza.policy}, " + (
            f"max_concurrent {stanza.max_concurrent}, max_fails {stanza.max_fails}"
            + (", force_tcp" if stanza.force_tcp else "")
        )
    if server.forward and server.cache is not None:
        cache = server.cache
        yield (
            f"  cache: success {cache.success_capacity} up to {cache.success_ttl}s, "
            f"denial {cache.denial_capacity} up to {cache.denial_ttl}s"
            + "".join(f", {option}" for option in _cache_options(cache))
        )
    if server.loadbalance:
        yield "  loadbalance"
    for rule in server.log.rules if server.log is not None else ():
        classes = " ".join(sorted(rule.classes))
        yield f"  log {' '.join(rule.names)} (class {classes}): {rule.format}"
    if not server.kubernetes and not server.forward and server.hosts is None:
        yield "  (no plugin answers: every question gets SERVFAIL)"


def _cache_options(cache: CacheSettings) -> Iterator[str]:
    if cache.serve_stale:
        yield f"serve_stale {cache.serve_stale:g}s {'verify' if cache.stale_verify else 'immediate'}"
    if cache.prefetch:
        yield f"prefetch {cache.prefetch} ({cache.prefetch_window:g}s, {cache.prefetch_percentage}%)"
    if cache.keep_ttl:
        yield "keepttl"
    for kind, zones in (("success", cache.disable_success), ("denial", cache.disable_denial)):
        if zones:
            yield f"disable {kind} {' '.join(zones)}"


def _upstreams(stanza: ForwardSettings) -> str:
    return " ".join(stanza.upstreams) if stanza.upstreams else f"the nameservers of {stanza.resolv_conf}"
