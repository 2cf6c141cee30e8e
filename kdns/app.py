"""The composition root: builds the zone (from snapshots, or by following the Kubernetes API), the
resolver and the responder, binds the listeners, and runs until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import glob
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING

try:
    import uvloop
except ImportError:  # optional: plain asyncio serves too, more slowly
    uvloop = None

from kdns import corefile
from kdns.autopath import AutoPath
from kdns.blocks import Block, Route, Router
from kdns.cluster.selector import ObjectFilter
from kdns.config import (
    DEFAULT_RESOLV_CONF,
    CacheSettings,
    ExternalSettings,
    ForwardSettings,
    HostsSettings,
    KubeSettings,
    NotAnIPAddress,
    ServeConfig,
    ServerSettings,
    UpstreamAddress,
    ZoneSettings,
    parse_upstream_address,
    port_taken,
)
from kdns.ops.memory import watch_memory
from kdns.ops.querylog import QueryLogger
from kdns.plugins.acl import Acl
from kdns.plugins.chaos import Chaos
from kdns.plugins.external import External
from kdns.plugins.hosts import Hosts
from kdns.plugins.rewrite import Rewrite
from kdns.plugins.transfer import Transfer
from kdns.resolver import Resolver
from kdns.responder import Responder
from kdns.sources.host_addresses import serving_addresses
from kdns.sources.hosts_file import read_hosts
from kdns.sources.snapshot import read_snapshots
from kdns.transport.exchange import Exchange, QueryLog
from kdns.transport.listen import Listeners, Shares, Where, listen
from kdns.upstream.answerer import Answerer
from kdns.upstream.cache import ResponseCache
from kdns.upstream.forward import Forwarder, LoopDetected
from kdns.upstream.resolvconf import nameservers, search_domains
from kdns.upstream.routes import Routes
from kdns.zone.cluster_zone import ClusterZone
from kdns.zone.external_names import ExternalNames
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
    zone = config.zone
    return ObjectFilter.build(
        config.namespaces, config.labels, namespace_labels=zone.namespace_labels, slices=zone.endpoints
    )


def zone_settings(config: ServeConfig) -> ZoneSettings:
    """``config``'s zone settings with kdns's own addresses (those it answers on, wildcards widened
    to the host's): the Services they back name its name server, as CoreDNS finds its own Service."""
    listen = dict.fromkeys(address for server in config.servers for address in server.listen)
    own = frozenset(pack_ip(address) for address in serving_addresses(listen))
    return dataclasses.replace(config.zone, own_addresses=own)


def build_zone(config: ServeConfig) -> ClusterZone:
    """The zone loaded from the configured snapshots; raises ``SnapshotError`` on a bad file."""
    zone = ClusterZone(zone_settings(config))
    zone.load(read_snapshots(list(config.snapshots), object_filter_of(config)))
    gc.freeze()  # the zone lives as long as the process: keep it out of full collections
    return zone


def load_zone_from_api(config: ServeConfig) -> ClusterZone:
    """The zone of the cluster as listed once now (``kdns dump`` against a live cluster)."""
    from kdns.informer import connection_of, list_cluster

    api = connection_of(config.kube).client()
    zone = ClusterZone(config.zone)
    zone.load(list_cluster(api, config.zone, object_filter=object_filter_of(config)))
    return zone


# a stanza, its block's cache and its block's stanzas in the order written (the chain it is part of)
ForwarderKey = tuple[ForwardSettings, CacheSettings | None, tuple[ForwardSettings, ...]]
Forwarders = dict[ForwarderKey, Forwarder]


def forwarder_key(stanza: ForwardSettings, server: ServerSettings) -> ForwarderKey:
    return (stanza, server.cache, server.forward)


def build_forwarder(settings: ForwardSettings, cache: ResponseCache | None, *, udp_size: int) -> Forwarder:
    """A ``forward`` stanza's upstreams (given, or resolv.conf's nameservers), answering into ``cache``.
    Raises ``ResolvConfError`` or ``ValueError`` naming a bad upstream."""
    upstreams = [address for to in settings.upstreams for address in _upstreams(to)] or [
        UpstreamAddress(host, port) for host, port in nameservers(settings.resolv_conf)
    ]
    return Forwarder(settings, upstreams, udp_size=udp_size, cache=cache)


def _upstreams(to: str) -> list[UpstreamAddress]:
    """A forward destination: an address, or a resolv.conf file's nameservers (CoreDNS reads them
    where the file is named)."""
    try:
        return [parse_upstream_address(to)]
    except NotAnIPAddress:
        return [UpstreamAddress(host, port) for host, port in nameservers(Path(to))]


def build_forwarders(config: ServeConfig, running: Forwarders | None = None) -> Forwarders:
    """A forwarder for each ``forward`` stanza of every block, the stanzas of a block sharing one
    answer cache (CoreDNS's ``cache`` is in front of the block's chain of stanzas, see
    ``kdns.upstream.routes``); blocks with the same stanzas and cache share them. Those ``running``
    already for the same settings are kept."""
    forwarders: Forwarders = {}
    for server in config.servers:
        cache = None  # made for the block's first new stanza (a block's stanzas are all kept, or none)
        for stanza in server.forward:
            key = forwarder_key(stanza, server)
            if key in forwarders:
                continue
            kept = (running or {}).get(key)
            if kept is None:
                if cache is None and server.cache is not None:
                    cache = ResponseCache(server.cache)
                kept = build_forwarder(stanza, cache, udp_size=config.max_udp_size)
            forwarders[key] = kept
    return forwarders


def read_hosts_table(settings: HostsSettings) -> HostsTable:
    entries = [*settings.entries, *(read_hosts(settings.path) or [])]
    return HostsTable(entries, ttl=settings.ttl)


def _wire(zones: tuple[str, ...]) -> tuple[bytes, ...]:
    return tuple(to_wire(zone) for zone in zones)


def build_external(settings: ExternalSettings, block_zones: tuple[str, ...], zone: ClusterZone) -> External:
    """A block's ``k8s_external``: its names, kept by the zone as the cluster changes."""
    zones = _wire(settings.zones or block_zones)
    names = zone.derived((settings, zones), lambda: ExternalNames(settings, zones, zone.settings))
    return External(names)


def build_autopath(
    config: ServeConfig, zone: ClusterZone, routes: Routes, router: Callable[[], Router]
) -> AutoPath:
    """Server-side search paths (they need ``pods verified`` to know the client)."""
    stanzas = [stanza for server in config.servers for stanza in server.forward]
    resolv_conf = stanzas[0].resolv_conf if stanzas else DEFAULT_RESOLV_CONF
    host_search = []
    for domain in search_domains(resolv_conf):
        with contextlib.suppress(BadName):
            host_search.append(to_wire(domain))
    return AutoPath(zone.state, routes, router, host_search=tuple(host_search))


@dataclasses.dataclass(frozen=True)
class Answering:
    """How one listener answers: the responder (packed answers, at once), the answerer of the queries
    it leaves for later (its forwarders, or autopath wrapping them), and the hosts tables it reads."""

    responder: Responder
    answerer: Answerer
    autopath: AutoPath | None
    query_log: QueryLog | None
    forwarders: tuple[Forwarder, ...]  # by route number, from 1
    hosts: tuple[tuple[HostsSettings, Hosts], ...]


def build_answering(
    config: ServeConfig, servers: tuple[ServerSettings, ...], zone: ClusterZone, forwarders: Forwarders
) -> Answering:
    """Everything that answers one listener's queries, at start-up and again on each reload."""
    listen = servers[0].listen  # ns.dns.<zone> answers where kdns serves, without a kube-dns Service
    own = tuple(pack_ip(address) for address in serving_addresses(listen))
    resolver = Resolver(zone.index, zone.layout, config.zone, own_addresses=own)
    routed: list[Forwarder] = []
    blocks, hosts, chains = [], [], []
    for server in servers:
        routes = []
        for stanza in server.forward:
            routed.append(forwarders[forwarder_key(stanza, server)])
            routes.append(Route(len(routed), to_wire(stanza.zone), excepts=_wire(stanza.except_names)))
        chains.append(routes)
        plugin = None
        if server.hosts is not None:
            plugin = Hosts(
                read_hosts_table(server.hosts),
                zones=_wire(server.hosts.zones or server.zones),
                fallthrough=_wire(server.hosts.fallthrough),
            )
            hosts.append((server.hosts, plugin))
        cluster = resolver if server.kubernetes else None
        zones = _wire(server.zones)
        external = None
        if server.external is not None and server.kubernetes:  # it reads what kubernetes follows
            external = build_external(server.external, server.zones, zone)
        transfer = None
        if server.transfer is not None:
            transfer = Transfer(server.transfer, zones=zones, cluster=cluster)
        blocks.append(
            Block(
                zones,
                acl=Acl(server.acl, zones=lambda acl, server=server: _wire(acl.zones or server.zones))
                if server.acl
                else None,
                chaos=Chaos(server.chaos, hostname=socket.gethostname()) if server.chaos else None,
                rewrite=Rewrite(server.rewrites) if server.rewrites else None,  # type: ignore[arg-type]
                templates=server.templates,  # type: ignore[arg-type]
                cluster=cluster,
                hosts=plugin,
                external=external,
                routes=routes,
                transfer=transfer,
                whoami=server.whoami,
            )
        )
    router = Router(blocks, layout=zone.layout, ttl=config.zone.ttl)
    responder = Responder(
        router,
        max_udp_size=min([s.bufsize for s in servers if s.bufsize] or [config.max_udp_size]),
        cache_size=config.answer_cache_size,
        recursion_available=router.forwarding,
        forward_caches=[f.cache.get if f.cache is not None else None for f in routed],
        loadbalance=any(server.loadbalance for server in servers),
        transfers=router.transfer_of if router.transferring else None,
    )
    zone.on_change(responder.invalidate)
    routes = Routes(routed, chains)
    autopath = None
    if any(server.autopath for server in servers):
        autopath = build_autopath(config, zone, routes, lambda: responder.resolver)
        responder.autopath = autopath
    query_log = None  # the transports skip the query log entirely when no block logs
    if any(server.log is not None for server in servers):
        query_log = QueryLogger((server.zones, server.log) for server in servers)
    return Answering(responder, autopath or routes, autopath, query_log, tuple(routed), tuple(hosts))


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


class Listener:
    """One address set and port at run time: its blocks' answering, its exchange and its sockets."""

    def __init__(self, where: Where, answering: Answering) -> None:
        self.addresses, self.port = where
        self.answering = answering
        self.exchange = Exchange(answering.responder, answering.answerer, query_log=answering.query_log)
        self.sockets: Listeners | None = None

    def use(self, answering: Answering) -> None:
        """Answer with ``answering`` from now on (a reload); queries in flight finish as they began."""
        self.answering = answering
        self.exchange.use(answering.responder, answering.answerer, answering.query_log)

    @property
    def bound_port(self) -> int:
        return self.sockets.port if self.sockets is not None else self.port


class Runtime:
    """One running server: the zone, its listeners and how they answer, and a reload that swaps them."""

    def __init__(
        self,
        config: ServeConfig,
        zone: ClusterZone,
        *,
        api: object | None = None,
        shares: Shares | None = None,
        control: socket.socket | None = None,
    ) -> None:
        self.config = config
        self.shares = shares  # a worker's share of the sockets (``--workers``)
        self.control = control  # a worker's line to its supervisor
        self.zone = zone
        self.api = api
        self.forwarders = build_forwarders(config)
        # the files as they were read, so that a change made before the watch starts is not missed
        self._read_as = {path: _fingerprint(path) for path in watched_files(config)}
        self.listeners = {
            where: Listener(where, build_answering(config, servers, zone, self.forwarders))
            for where, servers in config.listeners.items()
        }
        self.informer: Informer | None = None
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
            if self.shares is None and (memory := watch_memory()) is not None:  # else the supervisor's
                self._background(memory.run())
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
        for where, listener in self.listeners.items():
            await self._bind(where, listener)
        if self.control is not None:
            self._background(self._answer_supervisor())
        await self._open_endpoints()
        if self.forwarders:
            self._check_loops()

    async def _bind(self, where: Where, listener: Listener) -> None:
        share = self.shares.get(where) if self.shares is not None else None
        try:
            listener.sockets = await listen(listener.exchange, self.config, *where, bound=share)
        except OSError as exc:
            raise port_taken(exc, where[1], corefile=self.config.corefile is not None) from None

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
        from kdns.ops.metrics import Served, Sources, registry_for

        blocks = self.config.listeners
        served = [
            Served(
                listener.answering.responder,
                listener.sockets,
                listener.answering.forwarders,
                addresses=listener.addresses,
                port=listener.bound_port,
                blocks=blocks.get(where, ()),
            )
            for where, listener in self.listeners.items()
        ]
        return registry_for(Sources(served, self.zone, self.informer))

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
        own: set[tuple[str, int]] = set()
        for listener in self.listeners.values():
            own |= own_addresses(listener.addresses, listener.bound_port)
        for forwarder in self.forwarders.values():
            check = self._background(forwarder.check_loop(own))
            check.add_done_callback(self._loop_checked)

    def _loop_checked(self, task: asyncio.Task) -> None:
        if not task.cancelled() and isinstance(task.exception(), LoopDetected):
            self.failures.append(task.exception())
            self.stop.set()

    def _log_ready(self) -> None:
        config, counts = self.config, self.zone.counts()
        bound = self.endpoints.bound if self.endpoints is not None else {}
        http = "".join(f"; {name} on {where}" for name, where in bound.items())
        stanzas = [(stanza.zone, f) for (stanza, _, _), f in self.forwarders.items()]
        if stanzas:
            http += "; forwarding " + ", ".join(
                (f"{zone} " if len(stanzas) > 1 else "") + "to " + ", ".join(u.label for u in f.upstreams)
                for zone, f in stanzas
            )
        log.info(
            "ready: listening on %s (udp, tcp) on %s; zones %s; %d services (%d headless), "
            "%d endpoints, %d pods, %d namespaces, %d names%s",
            ", ".join(
                f"{', '.join(listener.addresses)} port {listener.bound_port}"
                for listener in self.listeners.values()
            ),
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
        """Re-read hosts files and the Corefile (with what it imports) when they change (CoreDNS's
        hosts reload and reload)."""
        seen = dict(self._read_as)
        while True:
            watched = self._watched()
            if not watched:
                return
            await asyncio.sleep(min(every for every, _ in watched.values()))
            due: dict[Callable[[Path], Coroutine], Path] = {}
            for path, (_, on_change) in self._watched().items():
                now = _fingerprint(path)
                if path in seen and now != seen[path]:
                    due.setdefault(on_change, path)
                seen[path] = now
            for on_change, path in due.items():
                await on_change(path)

    def _watched(self) -> dict[Path, tuple[float, Callable[[Path], Coroutine]]]:
        """The files to look at, with how often and what to do when one changed."""
        watched: dict[Path, tuple[float, Callable[[Path], Coroutine]]] = {}
        for server in self.config.servers:
            if server.hosts is not None and server.hosts.reload > 0:
                watched[server.hosts.path] = (server.hosts.reload, self._reload_hosts)
        config = self.config
        if config.corefile is not None and config.reload > 0:
            for path in (config.corefile, *config.imports):
                watched[path] = (config.reload, self._reload_corefile)
        return watched

    async def _reload_hosts(self, path: Path) -> None:
        names = 0
        for listener in self.listeners.values():
            for settings, plugin in listener.answering.hosts:
                if settings.path == path:
                    plugin.table = read_hosts_table(settings)
                    names = len(plugin.table)
            listener.answering.responder.clear()
        log.info("hosts file %s reloaded: %d names", path, names)

    async def _reload_corefile(self, changed: Path) -> None:
        path = self.config.corefile
        log.info("%s changed: reloading %s", changed, path)
        try:
            config, warnings = corefile.load(path)
        except corefile.CorefileError as exc:
            self.reload_failures += 1
            log.error("reload of %s failed, keeping the running configuration:", path)
            for problem in exc.problems:
                log.error("%s", problem)
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
        if self.informer is not None and bool(config.zone.multicluster) != bool(old.zone.multicluster):
            unsupported.append("multicluster")  # ServiceImports are watched, or not, from the start
        # what the sources hand over (EndpointSlices, the Namespaces selected) is chosen at the start
        if config.zone.endpoints != old.zone.endpoints:
            unsupported.append("noendpoints")
        if config.zone.namespace_labels != old.zone.namespace_labels:
            unsupported.append("namespace_labels")
        if unsupported:
            self.reload_failures += 1
            log.error(
                "reload: %s changed; restart kdns to follow the new cluster settings", ", ".join(unsupported)
            )
            return
        groups = config.listeners
        if self.shares is not None and set(groups) != set(self.listeners):
            self.reload_failures += 1
            log.error("reload: the listen addresses changed; restart kdns to move its workers")
            return
        forwarders = build_forwarders(config, self.forwarders)
        retired = [f for f in self.forwarders.values() if f not in forwarders.values()]
        zone = self.zone
        if (settings := zone_settings(config)) != zone.settings:
            zone = ClusterZone(settings)
            zone.load(self.zone.objects())
            if self.informer is not None:
                self.informer.zone = zone
        for listener in self.listeners.values():
            self.zone.off_change(listener.answering.responder.invalidate)
        self.config, self.forwarders, self.zone = config, forwarders, zone
        stale = [self.listeners.pop(where) for where in list(self.listeners) if where not in groups]
        for where, servers in groups.items():
            answering = build_answering(config, servers, zone, forwarders)
            if where in self.listeners:
                self.listeners[where].use(answering)
            else:
                self.listeners[where] = listener = Listener(where, answering)
                await self._bind(where, listener)
        for listener in stale:
            await listener.exchange.drain()
            if listener.sockets is not None:
                await listener.sockets.close()
        for forwarder in retired:  # its queries in flight finish; its health checks and connections end
            forwarder.close()
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
        in_flight = sum(listener.exchange.in_flight for listener in self.listeners.values())
        if not in_flight:
            return
        log.info("waiting for %d forwarded queries in flight", in_flight)
        left = 0
        for listener in self.listeners.values():
            left += await listener.exchange.drain()
        if left:
            log.warning("%d forwarded queries still in flight are dropped", left)

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for listener in self.listeners.values():
            listener.exchange.cancel()
            if listener.sockets is not None:
                await listener.sockets.close()
        if self.endpoints is not None:
            await self.endpoints.close()
        for forwarder in self.forwarders.values():
            forwarder.close()
        if self.informer is not None:
            await self.informer.stop()


def watched_files(config: ServeConfig) -> list[Path]:
    """The files a configuration was read from: the Corefile, what it imported, the hosts files."""
    hosts = [server.hosts.path for server in config.servers if server.hosts is not None]
    return [path for path in (config.corefile, *config.imports, *hosts) if path is not None]


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
            endpoint=None,  # a kubeconfig wins over the Corefile's endpoint and tls, as in CoreDNS
            tls_cert=None,
            tls_key=None,
            tls_ca=None,
        )
        return dataclasses.replace(new, kube=kube)
    return new


Fingerprint = tuple[int, int, int] | tuple[tuple[str, object], ...] | None


def _fingerprint(path: Path) -> Fingerprint:
    """What changes when a file does: its inode (kubelet swaps a ConfigMap's ``..data`` symlink to
    new files), modification time and size; for a glob pattern, those of every file it matches."""
    if glob.has_magic(str(path)):
        return tuple((match, _fingerprint(Path(match))) for match in sorted(glob.glob(str(path))))
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def run(config: ServeConfig) -> int:
    """Load the cluster (snapshot files, or the API client) and serve it, on uvloop when installed; with
    ``workers`` above 1, in that many processes under a supervisor (``kdns.workers``).

    Raises ``SnapshotError``, ``ConnectionSettingsError`` or ``ResolvConfError`` before anything is bound."""
    build_forwarders(config)  # a bad upstream or resolv.conf stops start-up here, before any fork
    zone = build_zone(config) if config.kube is None else None
    if config.kube is not None:
        from kdns.informer import connection_of

        connection_of(config.kube).client()
    if config.workers > 1:
        from kdns.workers import supervise

        return supervise(config, lambda shares, control, settings: serve(settings, zone, shares, control))
    return serve(config, zone)


def serve(
    config: ServeConfig,
    zone: ClusterZone | None,
    shares: Shares | None = None,
    control: socket.socket | None = None,
) -> int:
    """Run one server process until it is told to stop; returns its exit code."""
    api = None
    if zone is None:
        from kdns.informer import connection_of

        zone, api = ClusterZone(zone_settings(config)), connection_of(config.kube).client()

    async def main() -> int:
        runtime = Runtime(config, zone, api=api, shares=shares, control=control)
        return await runtime.run()

    if uvloop is None:
        return asyncio.run(main())
    return uvloop.run(main())
