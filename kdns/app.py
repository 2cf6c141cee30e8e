"""The composition root: builds the zone, the resolver and the responder, binds the listeners, and
runs until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

try:
    import uvloop
except ImportError:  # optional: plain asyncio serves too, more slowly
    uvloop = None

from kdns.cluster.selector import ObjectFilter
from kdns.config import ServeConfig
from kdns.resolver import Resolver
from kdns.responder import Responder
from kdns.sources.snapshot import read_snapshots
from kdns.transport.listen import listen
from kdns.zone.cluster_zone import ClusterZone

log = logging.getLogger("kdns")


def build_zone(config: ServeConfig) -> ClusterZone:
    """The zone loaded from the configured snapshots; raises ``SnapshotError`` on a bad file."""
    zone = ClusterZone(config.zone)
    object_filter = ObjectFilter.build(config.namespaces, config.labels)
    zone.load(read_snapshots(list(config.snapshots), object_filter))
    return zone


def build_responder(zone: ClusterZone, config: ServeConfig) -> Responder:
    resolver = Resolver(zone.index, zone.layout, config.zone)
    responder = Responder(resolver, max_udp_size=config.max_udp_size, cache_size=config.answer_cache_size)
    zone.on_change(responder.invalidate)
    return responder


async def serve(config: ServeConfig, zone: ClusterZone) -> int:
    responder = build_responder(zone, config)
    listeners = await listen(
        responder,
        config.listen,
        config.port,
        idle_timeout=config.tcp_idle_timeout,
        max_tcp_connections=config.max_tcp_connections,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
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
    await stop.wait()
    log.info("shutting down")
    await listeners.close()
    return 0


def run(config: ServeConfig, zone: ClusterZone) -> int:
    """Run the server on uvloop when it is installed, else on asyncio's own loop."""
    if uvloop is None:
        return asyncio.run(serve(config, zone))
    return uvloop.run(serve(config, zone))
