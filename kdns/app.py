"""The composition root: builds the zone (from snapshots, or by following the Kubernetes API), the
resolver and the responder, binds the listeners, and runs until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING

try:
    import uvloop
except ImportError:  # optional: plain asyncio serves too, more slowly
    uvloop = None

from kdns import corefile
from kdns.autopath import AutoPath
from kdns.cluster.selector import ObjectFilter
from kdns.config import DEFAULT_RESOLV_CONF, KubeSettings, ServeConfig, parse_upstream
from kdns.ops.querylog import log_query
from kdns.resolver import Resolver
from kdns.responder import Responder
from kdns.sources.host_addresses import serving_addresses
from kdns.sources.hosts_file import read_hosts
from kdns.sources.snapshot import read_snapshots
from kdns.transport.exchange import Exchange, QueryLog
from kdns.transport.listen import Bound, Listeners, listen
from kdns.upstream.answerer import Answerer
from kdns.upstream.cache import ResponseCache
from kdns.upstream.forward import Forwarder, LoopDetected
from kdns.upstream.resolvconf import nameservers, search_domains
from kdns.zone.cluster_zone import ClusterZone
from kdns.zone.hosts import HostsTable
from kdns.zone.names import BadName, pack_ip, to_wire

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kdns.informer import Informer
    from kdns.ops.http import Endpoints

# The kubernetes client (45 MB of models), aiohttp and prometheus_client are imported where they are
# first needed: a server answering from a snapshot without HTTP endpoints loads none of them.
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
    from kdns.informer import connection_of, list_cluster

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
    return Forwarder(settings, upstreams, udp_size=config.max_udp_size, cache=cache)


def read_hosts_table(config: ServeConfig) -> HostsTable | None:
    settings = config.hosts
    if settings is None:
        return None
    entries = [*settings.entries, *(read_hosts(settings.path) or [])]
    return HostsTable(entries, ttl=settings.ttl, fallthrough=settings.fallthrough)


def build_responder(
    zone: ClusterZone,
    config: ServeConfig,
    forwarder: Forwarder | None = None,
    hosts: HostsTable | None = None,
) -> Responder:
    """The resolver of ``zone`` behind its answer cache, told by the zone what changes."""
    resolver = Resolver(
        zone.index,
        zone.layout,
        config.zone,
        forwarding=forwarder is not None,
        fallthrough_reverse=config.forward is not None and config.forward.fallthrough_reverse,
        hosts=hosts,
        own_addresses=tuple(pack_ip(address) for address in serving_addresses(config.listen)),
    )
    responder = Responder(
        resolver,
        max_udp_size=config.max_udp_size,
        cache_size=config.answer_cache_size,
        recursion_available=forwarder is not None,
        forward_cache=forwarder.cache.get if forwarder is not None and forwarder.cache is not None else None,
        loadbalance=config.loadbalance,
    )
    zone.on_change(responder.invalidate)
    return responder


def build_autopath(
    config: ServeConfig, zone: ClusterZone, forwarder: Forwarder | None, responder: Responder
) -> AutoPath | None:
    """Server-side search paths, when configured (they need ``pods verified`` to know the client)."""
    if not config.autopath:
        return None
    resolv_conf = config.forward.resolv_conf if config.forward else DEFAULT_RESOLV_CONF
    host_search = []
    for domain in search_domains(resolv_conf):
        with contextlib.suppress(BadName):
            host_search.append(to_wire(domain))
    autopath = AutoPath(zone.state, forwarder, lambda: responder.resolver, host_search=tuple(host_search))
    responder.autopath = autopath
    return autopath


@dataclasses.dataclass(frozen=True)
class Answering:
    """How one configuration answers: the responder (packed answers, at once), and the answerer of
    the queries it leaves for later (the forwarder, or autopath wrapping it)."""

    responder: Responder
    answerer: Answerer | None
    autopath: AutoPath | None
    query_log: QueryLog | None


def build_answering(config: ServeConfig, zone: ClusterZone, forwarder: Forwarder | None) -> Answering:
    """Everything that answers queries for ``config``, at start-up and again on each reload."""
    responder = build_responder(zone, config, forwarder, read_hosts_table(config))
    autopath = build_autopath(config, zone, forwarder, responder)
    query_log = log_query if config.log_queries else None
    return Answering(responder, autopath or forwarder, autopath, query_log)


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


class Runtime:
    """One running server: the zone, how it is answered, the sockets, and a reload that swaps them."""

    def __init__(
        self,
        config: ServeConfig,
        zone: ClusterZone,
        *,
        api: object | None = None,
        forwarder: Forwarder | None = None,
        bound: Bound | None = None,
        control: socket.socket | None = None,
    ) -> None:
        self.config = config
        self.bound = bound  # a worker's share of the sockets (``--workers``)
        self.control = control  # a worker's line to its supervisor
        self.zone = zone
        self.api = api
        self.forwarder = forwarder
        # the files as they were read, so that a change made before the watch starts is not missed
        self._read_as = {
            path: _fingerprint(path)
            for path in (config.corefile, config.hosts.path if config.hosts else None)
            if path is not None
        }
        self.answering = build_answering(config, zone, forwarder)
        self.exchange = Exchange(
            self.answering.responder, self.answering.answerer, query_log=self.answering.query_log
        )
        self.informer: Informer | None = None
        self.listeners: Listeners | None = None
        self.endpoints: Endpoints | None = None
        self.stop = asyncio.Event()
        self.shutting_down = False
        self.failures: list[BaseException] = []
        self.reload_failures = 0
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT. Returns the exit code: 0, or 2 when a forwarding loop is found."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        try:
            if self.api is not None:
                await self._follow_cluster()
            if self.stop.is_set():
                return 0
            await self._open()
            self._log_ready()
            self._background(self._watch_files())
            await self.stop.wait()
            if self.failures:
                log.error(
                    "forwarding loop: %s; refusing to run (point forward at a resolver that does not "
                    "send queries back to kdns)",
                    self.failures[0],
                )
                return 2
            await self._lameduck()
            await self._drain()
            log.info("shutting down")
            return 0
        finally:
            await self._close()

    # -- start ---------------------------------------------------------------------------------------
    async def _follow_cluster(self) -> None:
        from kdns.informer import Informer, connection_of

        config = self.config
        # Reflector threads parse JSON beside the loop; hand the GIL back to the loop within 0.5 ms
        # rather than the default 5 ms, so queries do not queue behind a large list.
        sys.setswitchinterval(0.0005)
        self.informer = Informer(
            self.zone,
            self.api,
            config.kube,
            object_filter=object_filter_of(config),
            label_selector=config.labels,
        )
        self.informer.start()
        log.info("following the Kubernetes API (%s)", connection_of(config.kube).describe())
        loop = asyncio.get_running_loop()
        await _first(
            loop.create_task(self.informer.synced.wait()),
            loop.create_task(self.stop.wait()),
            timeout=config.kube.startup_timeout,
        )
        if not self.informer.synced.is_set() and not self.stop.is_set():
            log.warning(
                "starting unsynced after %.1f s (still waiting for %s); answers may be incomplete",
                config.kube.startup_timeout,
                ", ".join(self.informer.waiting_for),
            )

    async def _open(self) -> None:
        config = self.config
        self.listeners = await listen(self.exchange, config, bound=self.bound)
        if self.control is not None:
            self._background(self._answer_supervisor())
        await self._open_endpoints()
        if self.forwarder is not None:
            self._check_loops()

    async def _open_endpoints(self) -> None:
        """The HTTP endpoints, when any is configured."""
        config = self.config
        if config.ops.health is None and config.ops.ready is None and config.ops.metrics is None:
            return
        from kdns.ops import http as ops_http

        metrics = ops_http.exposition(self.registry()) if config.ops.metrics is not None else None
        self.endpoints = await ops_http.start(config.ops, not_ready=self._waiting, metrics=metrics)

    def registry(self) -> CollectorRegistry:
        """This server's metrics (what /metrics serves, or what a worker reports to its supervisor)."""
        from kdns.ops.metrics import Sources, registry_for

        return registry_for(
            Sources(
                self.answering.responder,
                self.listeners,
                self.zone,
                self.forwarder,
                self.informer,
                server=server_label(self.config),
            )
        )

    async def _waiting(self) -> list[str]:
        return self._not_ready()

    async def _answer_supervisor(self) -> None:
        """A worker tells its supervisor its metrics (``m``) and what it waits for (``r``)."""
        from kdns.ops.http import exposition

        reader, writer = await asyncio.open_connection(sock=self.control)
        render = None
        while command := await reader.read(1):
            if command == b"m":
                render = render or exposition(self.registry())
                body = await render()
            else:
                body = "\n".join(self._not_ready()).encode()
            writer.write(len(body).to_bytes(4, "big") + body)
            await writer.drain()
        self.stop.set()  # the supervisor is gone

    def _not_ready(self) -> list[str]:
        waiting = []
        if self.informer is not None and not self.informer.synced.is_set():
            waiting.append("kubernetes")
        if self.shutting_down:
            waiting.append("shutting down")
        return waiting

    def _check_loops(self) -> None:
        own = own_addresses(self.config.listen, self.listeners.port)
        check = self._background(self.forwarder.check_loop(own))
        check.add_done_callback(self._loop_checked)

    def _loop_checked(self, task: asyncio.Task) -> None:
        if not task.cancelled() and isinstance(task.exception(), LoopDetected):
            self.failures.append(task.exception())
            self.stop.set()

    def _log_ready(self) -> None:
        config, counts = self.config, self.zone.counts()
        bound = self.endpoints.bound if self.endpoints is not None else {}
        http = "".join(f"; {name} on {where}" for name, where in bound.items())
        if self.forwarder is not None:
            http += "; forwarding to " + ", ".join(u.label for u in self.forwarder.upstreams)
        log.info(
            "ready: listening on %s port %d (udp, tcp) on %s; zones %s; %d services (%d headless), "
            "%d endpoints, %d pods, %d namespaces, %d names%s",
            ", ".join(config.listen),
            self.listeners.port,
            "asyncio" if uvloop is None else "uvloop",
            ", ".join(config.zone.zones),
            counts["services"],
            counts["headless"],
            counts["endpoints"],
            counts["pods"],
            counts["namespaces"],
            counts["names"],
            http,
        )

    def _background(self, coroutine: Coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- files that change ---------------------------------------------------------------------------------
    async def _watch_files(self) -> None:
        """Re-read the hosts file and the Corefile when they change (CoreDNS's hosts reload and reload)."""
        hosts = self.config.hosts
        watched = {}
        if hosts is not None and hosts.reload > 0:
            watched[hosts.path] = (hosts.reload, self._reload_hosts)
        if self.config.corefile is not None and self.config.reload > 0:
            watched[self.config.corefile] = (self.config.reload, self._reload_corefile)
        if not watched:
            return
        seen = {path: self._read_as.get(path) for path in watched}
        interval = min(every for every, _ in watched.values())
        while True:
            await asyncio.sleep(interval)
            for path, (_, on_change) in list(watched.items()):
                now = _fingerprint(path)
                if now != seen[path]:
                    seen[path] = now
                    await on_change()

    async def _reload_hosts(self) -> None:
        hosts = read_hosts_table(self.config)
        self.answering.responder.resolver.hosts = hosts
        self.answering.responder.clear()
        log.info("hosts file %s reloaded: %d names", self.config.hosts.path, len(hosts or ()))

    async def _reload_corefile(self) -> None:
        path = self.config.corefile
        try:
            config, warnings = corefile.load(path)
        except (corefile.CorefileError, OSError) as exc:
            self.reload_failures += 1
            log.error("reload of %s failed, keeping the running configuration: %s", path, exc)
            return
        for warning in warnings:
            log.warning("%s", warning)
        await self.reload(same_source(config, self.config))

    async def reload(self, config: ServeConfig) -> None:
        """Apply a new configuration without dropping queries: build the new pieces beside the old
        ones, then swap them in one step on the loop."""
        old = self.config
        if config == old:
            return
        unsupported = [
            name
            for name in ("kube", "namespaces", "labels", "snapshots")
            if getattr(config, name) != getattr(old, name)
        ]
        if unsupported:
            self.reload_failures += 1
            log.error(
                "reload: %s changed; restart kdns to follow the new cluster settings", ", ".join(unsupported)
            )
            return
        forwarder = (
            build_forwarder(config)
            if (config.forward, config.cache) != (old.forward, old.cache)
            else self.forwarder
        )
        zone = self.zone
        if config.zone != old.zone:
            zone = ClusterZone(config.zone)
            zone.load(self.zone.objects())
            if self.informer is not None:
                self.informer.zone = zone
        self.zone.off_change(self.answering.responder.invalidate)
        self.config, self.forwarder, self.zone = config, forwarder, zone
        self.answering = build_answering(config, zone, forwarder)
        self.exchange.use(self.answering.responder, self.answering.answerer, self.answering.query_log)
        if (config.listen, config.port) != (old.listen, old.port):
            if self.bound is not None:
                log.error("reload: the listen addresses changed; restart kdns to move its workers")
            else:
                stale, self.listeners = self.listeners, await listen(self.exchange, config)
                await stale.close()
        if self.endpoints is not None:
            await self.endpoints.close()
            self.endpoints = None
        await self._open_endpoints()
        log.info("reloaded %s", config.corefile or "the configuration")
        self._log_ready()

    # -- stop ----------------------------------------------------------------------------------------
    async def _lameduck(self) -> None:
        seconds = self.config.ops.lameduck
        if seconds <= 0:
            return
        self.shutting_down = True
        log.info("lameduck: answering for %.1f s more before shutting down", seconds)
        self.stop.clear()  # a second signal ends the wait
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _drain(self) -> None:
        """Answer the queries still in flight upstream before the sockets close."""
        self.shutting_down = True
        if not self.exchange.in_flight:
            return
        log.info("waiting for %d forwarded queries in flight", self.exchange.in_flight)
        left = await self.exchange.drain()
        if left:
            log.warning("%d forwarded queries still in flight are dropped", left)

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.exchange.cancel()
        if self.listeners is not None:
            await self.listeners.close()
        if self.endpoints is not None:
            await self.endpoints.close()
        if self.informer is not None:
            await self.informer.stop()


def same_source(new: ServeConfig, running: ServeConfig) -> ServeConfig:
    """A Corefile's configuration, reading the cluster where ``running`` does: from snapshots, or from
    outside the cluster with a kubeconfig (the flags beside ``--corefile``, kept over reloads)."""
    if running.snapshots:
        return dataclasses.replace(new, kube=None, snapshots=running.snapshots)
    if running.kube is not None and not running.kube.in_cluster:
        kube = dataclasses.replace(
            new.kube or KubeSettings(),
            kubeconfig=running.kube.kubeconfig,
            context=running.kube.context,
            in_cluster=False,
        )
        return dataclasses.replace(new, kube=kube)
    return new


def _fingerprint(path: Path) -> tuple[float, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime, stat.st_size


def server_label(config: ServeConfig) -> str:
    """CoreDNS's ``server`` label: ``dns://:53`` for every interface."""
    if set(config.listen) <= {"0.0.0.0", "::"}:
        return f"dns://:{config.port}"
    return ",".join(f"dns://{address}:{config.port}" for address in config.listen)


def run(config: ServeConfig) -> int:
    """Load the cluster (snapshot files, or the API client) and serve it, on uvloop when installed; with
    ``workers`` above 1, in that many processes under a supervisor (``kdns.workers``).

    Raises ``SnapshotError``, ``ConnectionSettingsError`` or ``ResolvConfError`` before anything is bound."""
    build_forwarder(config)  # a bad upstream or resolv.conf stops start-up here, before any fork
    zone = build_zone(config) if config.kube is None else None
    if config.kube is not None:
        from kdns.informer import connection_of

        connection_of(config.kube).client()
    if config.workers > 1:
        from kdns.workers import supervise

        return supervise(config, lambda bound, control, settings: serve(settings, zone, bound, control))
    return serve(config, zone)


def serve(
    config: ServeConfig,
    zone: ClusterZone | None,
    bound: Bound | None = None,
    control: socket.socket | None = None,
) -> int:
    """Run one server process until it is told to stop; returns its exit code."""
    forwarder = build_forwarder(config)
    api = None
    if zone is None:
        from kdns.informer import connection_of

        zone, api = ClusterZone(config.zone), connection_of(config.kube).client()

    async def main() -> int:
        runtime = Runtime(config, zone, api=api, forwarder=forwarder, bound=bound, control=control)
        return await runtime.run()

    if uvloop is None:
        return asyncio.run(main())
    return uvloop.run(main())
