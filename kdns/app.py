"""The composition root: builds the zone (from snapshots, or by following the Kubernetes API), the
resolver and the responder, binds the listeners, and runs until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
import sys

try:
    import uvloop
except ImportError:  # optional: plain asyncio serves too, more slowly
    uvloop = None

from kdns.cluster.selector import ObjectFilter
from kdns.config import ServeConfig
from kdns.informer import Informer, connection_of, list_cluster
from kdns.resolver import Resolver
from kdns.responder import Responder
from kdns.sources.snapshot import read_snapshots
from kdns.transport.listen import listen
from kdns.upstream.cache import ResponseCache
from kdns.upstream.forward import Forwarder, LoopDetected
from kdns.upstream.resolvconf import nameservers, parse_upstream
from kdns.zone.cluster_zone import ClusterZone

log = logging.getLogger("kdns")


def object_filter_of(config: ServeConfig) -> ObjectFilter:
    return ObjectFilter.build(config.namespaces, config.labels)


def build_zone(config: ServeConfig) -> ClusterZone:
    """The zone loaded from the configured snapshots; raises ``SnapshotError`` on a bad file."""
    zone = ClusterZone(config.zone)
    zone.load(read_snapshots(list(config.snapshots), object_filter_of(config)))
    gc.freeze()  # the zone lives as long as the process: keep it out of full collections
    return zone


def load_zone_from_api(config: ServeConfig) -> ClusterZone:
    """The zone of the cluster as listed once now (``kdns dump`` against a live cluster)."""
    api = connection_of(config.kube).client()
    zone = ClusterZone(config.zone)
    zone.load(
        list_cluster(
            api, config.zone.pods, object_filter=object_filter_of(config), label_selector=config.labels
        )
    )
    return zone


def build_forwarder(config: ServeConfig) -> Forwarder | None:
    """The upstreams (given, or resolv.conf's nameservers) and their answer cache; ``None`` when
    forwarding is off. Raises ``ResolvConfError`` or ``ValueError`` naming a bad upstream."""
    if config.forward is None:
        return None
    settings = config.forward
    upstreams = [parse_upstream(u) for u in settings.upstreams] or nameservers(settings.resolv_conf)
    cache = ResponseCache(config.cache) if config.cache is not None else None
    return Forwarder(settings, upstreams, cache=cache, udp_size=config.max_udp_size)


def build_responder(zone: ClusterZone, config: ServeConfig, forwarder: Forwarder | None = None) -> Responder:
    resolver = Resolver(
        zone.index,
        zone.layout,
        config.zone,
        forwarding=forwarder is not None,
        fallthrough_reverse=config.forward is not None and config.forward.fallthrough_reverse,
    )
    responder = Responder(
        resolver,
        max_udp_size=config.max_udp_size,
        cache_size=config.answer_cache_size,
        recursion_available=forwarder is not None,
        forward_cache=forwarder.cache if forwarder is not None else None,
    )
    zone.on_change(responder.invalidate)
    return responder


def own_addresses(listen: tuple[str, ...], port: int) -> set[tuple[str, int]]:
    """Where this server answers, as an upstream address would name it."""
    own = {(address, port) for address in listen}
    if any(ipaddress.ip_address(address).is_unspecified for address in listen):
        own |= {("127.0.0.1", port), ("::1", port)}
    return own


async def _first(*waits: asyncio.Future | asyncio.Task, timeout: float | None = None) -> None:
    _, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


async def serve(
    config: ServeConfig, zone: ClusterZone, api: object | None = None, forwarder: Forwarder | None = None
) -> int:
    """Serve until SIGTERM or SIGINT; with ``api``, follow the cluster first (up to the startup timeout).
    Returns the exit code: 0, or 2 when a forwarding loop is found."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    responder = build_responder(zone, config, forwarder)
    informer = None
    if api is not None:
        # Reflector threads parse JSON beside the loop; hand the GIL back to the loop within 0.5 ms
        # rather than the default 5 ms, so queries do not queue behind a large list.
        sys.setswitchinterval(0.0005)
        informer = Informer(
            zone, api, config.kube, object_filter=object_filter_of(config), label_selector=config.labels
        )
        informer.start()
        log.info("following the Kubernetes API (%s)", connection_of(config.kube).describe())
        await _first(
            loop.create_task(informer.synced.wait()),
            loop.create_task(stop.wait()),
            timeout=config.kube.startup_timeout,
        )
        if not informer.synced.is_set() and not stop.is_set():
            log.warning(
                "starting unsynced after %.1f s (still waiting for %s); answers may be incomplete",
                config.kube.startup_timeout,
                ", ".join(informer.waiting_for),
            )
    if stop.is_set():
        if informer is not None:
            await informer.stop()
        return 0
    listeners = await listen(
        responder,
        config.listen,
        config.port,
        idle_timeout=config.tcp_idle_timeout,
        max_tcp_connections=config.max_tcp_connections,
        forwarder=forwarder,
    )
    failures: list[BaseException] = []
    if forwarder is not None:
        loop_check = asyncio.ensure_future(forwarder.check_loop(own_addresses(config.listen, listeners.port)))
        loop_check.add_done_callback(lambda task: _stop_on_loop(task, stop, failures))
    counts = zone.counts()
    log.info(
        "ready: listening on %s port %d (udp, tcp) on %s; zones %s; %d services (%d headless), "
        "%d endpoints, %d pods, %d namespaces, %d names",
        ", ".join(config.listen),
        listeners.port,
        "asyncio" if uvloop is None else "uvloop",
        ", ".join(config.zone.zones),
        counts["services"],
        counts["headless"],
        counts["endpoints"],
        counts["pods"],
        counts["namespaces"],
        counts["names"],
    )
    if forwarder is not None:
        log.info("forwarding other names to %s", ", ".join(u.label for u in forwarder.upstreams))
    await stop.wait()
    if failures:
        log.error(
            "forwarding loop: %s; refusing to run (point forward at a resolver that does not "
            "send queries back to kdns)",
            failures[0],
        )
        await listeners.close()
        if informer is not None:
            await informer.stop()
        return 2
    log.info("shutting down")
    await listeners.close()
    if informer is not None:
        await informer.stop()
    return 0


def _stop_on_loop(task: asyncio.Task, stop: asyncio.Event, failures: list[BaseException]) -> None:
    if not task.cancelled() and isinstance(task.exception(), LoopDetected):
        failures.append(task.exception())
        stop.set()


def run(config: ServeConfig) -> int:
    """Load the cluster (snapshot files, or the API client) and serve it, on uvloop when installed.

    Raises ``SnapshotError``, ``ConnectionSettingsError`` or ``ResolvConfError`` before anything is bound."""
    forwarder = build_forwarder(config)
    if config.kube is None:
        zone, api = build_zone(config), None
    else:
        zone, api = ClusterZone(config.zone), connection_of(config.kube).client()
    if uvloop is None:
        return asyncio.run(serve(config, zone, api, forwarder))
    return uvloop.run(serve(config, zone, api, forwarder))
