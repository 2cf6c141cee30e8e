"""Prometheus metrics under CoreDNS's names, labels and buckets, so its dashboards and alerts keep working.

Nothing is counted here: at scrape time a collector reads the counters the responder, the transports,
the forwarder, the cache and the informer keep anyway, and renders them:

- ``coredns_build_info{version,revision,goversion}`` (kdns's version and revision; ``goversion`` names
  the Python, e.g. ``CPython 3.11.7``), ``coredns_panics_total`` (queries whose answering raised),
  ``coredns_plugin_enabled{server,zone,view,name}`` (each block's plugins that see queries);
- ``coredns_dns_requests_total{server,zone,view,proto,family,type}``,
  ``coredns_dns_responses_total{server,zone,view,rcode,plugin}``, ``coredns_dns_do_requests_total``,
  ``coredns_dns_request_duration_seconds{server,zone,view}`` (no ``type`` label: CoreDNS dropped it in
  1.8.4), ``coredns_dns_request_size_bytes`` and ``coredns_dns_response_size_bytes``
  ``{server,zone,view,proto}``; malformed queries and their error replies are counted too. ``server``
  is CoreDNS's ``dns://ADDRESS:PORT`` per address (``dns://:53`` for every interface); a query counts
  under its own family's address, and a listener's forward and cache counts under its first one;
- ``coredns_cache_entries{server,type,zones,view}``, ``coredns_cache_requests_total``,
  ``coredns_cache_hits_total``, ``coredns_cache_misses_total``, ``coredns_cache_prefetch_total``,
  ``coredns_cache_served_stale_total``: the cache of forwarded answers, which, as CoreDNS's cache
  plugin, sees every query of its server (a cluster answer, never cached, is a request and a miss);
- ``coredns_forward_requests_total{to}``, ``coredns_forward_responses_total{to,rcode}``,
  ``coredns_forward_request_duration_seconds{to,rcode}``, ``coredns_forward_healthcheck_failures_total
  {to}`` (CoreDNS's names before 1.11, which coredns-mixin's alerts read) and where CoreDNS 1.11 moved
  them, ``coredns_proxy_request_duration_seconds{proxy_name,to,rcode}``,
  ``coredns_proxy_healthcheck_failures_total{proxy_name,to}``, ``coredns_proxy_conn_cache_hits_total``
  and ``coredns_proxy_conn_cache_misses_total{proxy_name,to,proto}`` (TCP and TLS connections reused
  and opened); ``coredns_forward_healthcheck_broken_total``, ``coredns_forward_max_concurrent_rejects_total``;
- ``coredns_kubernetes_dns_programming_duration_seconds{service_kind}``: from an EndpointSlice's
  ``endpoints.kubernetes.io/last-change-trigger-time`` to the zone answering with it (watch events);
- ``kdns_kubernetes_synced``, ``kdns_kubernetes_api_up``, ``kdns_kubernetes_event_apply_seconds``,
  ``kdns_kubernetes_events_total``, ``kdns_kubernetes_lists_total``;
- per watched kind, from the reflectors: ``kdns_kubernetes_requests_total{kind,verb,code}`` (as client-go's
  ``rest_client_requests_total``, ``<error>`` when no response came), ``kdns_kubernetes_watch_ends_total
  {kind,reason}``, ``kdns_kubernetes_watch_open{kind}`` and ``kdns_kubernetes_last_sync_timestamp_seconds
  {kind}`` (the last list, event or bookmark: how current the zone's copy is known to be);
- ``kdns_zone_names``, ``kdns_answer_cache_entries``, ``kdns_tcp_connections``,
  ``kdns_tcp_connections_closed_total{reason}`` (idle, evicted, refused), ``kdns_build_info``; and the
  process metrics.

Request and response sizes are not measured per query: a packed answer counts its queries by channel
and shape (with or without an OPT record), so its sizes are its question's and body's; errors,
transfers and forwarded responses are measured as they are sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dnslib
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from kdns import __version__
from kdns.config import ServerSettings
from kdns.counting import Histogram
from kdns.ops.build import python, revision
from kdns.responder import Responder
from kdns.transport.listen import Listeners
from kdns.upstream.forward import Forwarder
from kdns.zone.cluster_zone import ClusterZone

if TYPE_CHECKING:
    from kdns.informer import Informer

CHANNELS = (("udp", "1"), ("udp", "2"), ("tcp", "1"), ("tcp", "2"))  # (proto, family) by channel
# The query types CoreDNS names in its metrics; the rest count as "other".
KNOWN_TYPES = frozenset(
    {
        "A",
        "AAAA",
        "NS",
        "PTR",
        "SOA",
        "CNAME",
        "MX",
        "TXT",
        "SRV",
        "DS",
        "DNSKEY",
        "RRSIG",
        "NSEC",
        "NSEC3",
        "HTTPS",
        "SVCB",
        "IXFR",
        "AXFR",
        "ANY",
    }
)


def type_name(qtype: int) -> str:
    name = dnslib.QTYPE.get(qtype, "other")
    return name if name in KNOWN_TYPES else "other"


def rcode_name(rcode: int) -> str:
    return str(dnslib.RCODE.get(rcode, str(rcode)))


WILDCARDS = frozenset({"0.0.0.0", "::"})


def server_labels(addresses: Sequence[str], port: int) -> list[str]:
    """CoreDNS's ``server`` label of each address a listener binds: ``dns://127.0.0.1:53``,
    ``dns://[::1]:53``, and one ``dns://:53`` for every interface."""
    if set(addresses) <= WILDCARDS:
        return [f"dns://:{port}"]
    return [f"dns://[{a}]:{port}" if ":" in a else f"dns://{a}:{port}" for a in addresses]


def family_labels(addresses: Sequence[str], port: int) -> tuple[str, str]:
    """The ``server`` label a listener's IPv4 and IPv6 queries count under: the first address of the
    family (the first address at all when it has none of that family)."""
    names = server_labels(addresses, port)
    labels, first = dict(zip(addresses, names, strict=False)), names[0]
    v4 = next((labels[a] for a in addresses if ":" not in a and a in labels), first)
    v6 = next((labels[a] for a in addresses if ":" in a and a in labels), first)
    return v4, v6


@dataclass
class Served:
    """One listener's parts: its responder, sockets and forwarders, its server blocks, and where it
    listens (for the ``server`` labels)."""

    responder: Responder
    listeners: Listeners | None = None
    forwarders: Sequence[Forwarder] = ()
    addresses: Sequence[str] = ("",)
    port: int = 53
    zones: str = "."
    blocks: Sequence[ServerSettings] = ()

    @property
    def servers(self) -> tuple[str, str]:
        """The ``server`` label of IPv4 and of IPv6 queries."""
        return family_labels(self.addresses, self.port)


@dataclass
class Sources:
    """What the collector reads; any of them may be absent."""

    servers: Sequence[Served]
    zone: ClusterZone | None = None
    informer: Informer | None = None


class KdnsCollector(Collector):
    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator:
        s = self.sources
        # each listener's answered queries by (channel, qtype, rcode): read once, for two families
        counts = [served.responder.query_counts() for served in s.servers]
        yield from self._dns(s.servers, counts)
        yield from self._cache(s.servers, counts)
        yield from self._forward(list({id(f): f for served in s.servers for f in served.forwarders}.values()))
        yield from self._kubernetes(s)
        yield from self._server(s.servers)
        yield from _build(s.servers)

    def _dns(self, servers: Sequence[Served], answered: Sequence[Counter[tuple[int, int, int]]]) -> Iterator:
        requests = CounterMetricFamily(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family.",
            labels=["server", "zone", "view", "proto", "family", "type"],
        )
        responses = CounterMetricFamily(
            "coredns_dns_responses",
            "Counter of response status codes.",
            labels=["server", "zone", "view", "rcode", "plugin"],
        )
        do_requests = CounterMetricFamily(
            "coredns_dns_do_requests",
            "Counter of DNS requests with DO bit set per zone.",
            labels=["server", "zone", "view"],
        )
        durations: dict[tuple[str, ...], Histogram] = {}
        request_sizes: dict[tuple[str, ...], Histogram] = {}
        response_sizes: dict[tuple[str, ...], Histogram] = {}
        for served, counts in zip(servers, answered, strict=True):
            family_server = served.servers
            first = family_server[0]
            by_request: Counter[tuple[str, ...]] = Counter()
            by_rcode: Counter[tuple[str, ...]] = Counter()
            by_do: Counter[tuple[str, ...]] = Counter()
            for (channel, qtype, rcode), count in counts.items():
                proto, family = CHANNELS[channel]
                server = family_server[channel & 1]
                by_request[(server, served.zones, "", proto, family, type_name(qtype))] += count
                if rcode >= 0:
                    by_rcode[(server, served.zones, "", rcode_name(rcode), "kubernetes")] += count
            for (channel, qtype, rcode), count in served.responder.errors.items():
                proto, family = CHANNELS[channel]
                server = family_server[channel & 1]
                by_request[(server, served.zones, "", proto, family, type_name(qtype))] += count
                by_rcode[(server, served.zones, "", rcode_name(rcode), "")] += count
            for rcode, count in enumerate(served.responder.forwarded_rcodes):
                if count:
                    by_rcode[(first, served.zones, "", rcode_name(rcode), "cache")] += count
            for forwarder in served.forwarders:
                for rcode, count in enumerate(forwarder.stats.answered):
                    if count:
                        by_rcode[(first, served.zones, "", rcode_name(rcode), "forward")] += count
            sizes, do = served.responder.size_counts()
            for channel, (measured, with_do) in enumerate(zip(sizes, do, strict=True)):
                server, proto = family_server[channel & 1], CHANNELS[channel][0]
                _merged(request_sizes, (server, served.zones, "", proto), measured.requests)
                _merged(response_sizes, (server, served.zones, "", proto), measured.responses)
                by_do[(server, served.zones, "")] += with_do
            for family in (0, 1):
                exchange = served.listeners.exchange if served.listeners is not None else None
                timed = exchange.durations[family] if exchange is not None else Histogram()
                _merged(durations, (family_server[family], served.zones, ""), timed)
            for family, table in ((requests, by_request), (responses, by_rcode), (do_requests, by_do)):
                for labels, count in sorted(table.items()):
                    family.add_metric(list(labels), count)
        yield requests
        yield responses
        yield do_requests
        yield _histogram(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone.",
            ["server", "zone", "view"],
            _series(durations),
        )
        yield _histogram(
            "coredns_dns_request_size_bytes",
            "Size of the request in bytes per zone and protocol.",
            ["server", "zone", "view", "proto"],
            _series(request_sizes),
        )
        yield _histogram(
            "coredns_dns_response_size_bytes",
            "Size of the returned response in bytes.",
            ["server", "zone", "view", "proto"],
            _series(response_sizes),
        )

    def _server(self, servers: Sequence[Served]) -> Iterator:
        """The answer caches and TCP connections: what clients make kdns hold."""
        yield GaugeMetricFamily(
            "kdns_answer_cache_entries",
            "Packed answers held for questions asked.",
            value=sum(len(served.responder) for served in servers),
        )
        every = [served.listeners.connections for served in servers if served.listeners is not None]
        yield GaugeMetricFamily(
            "kdns_tcp_connections", "TCP connections open.", value=sum(len(c.open) for c in every)
        )
        closed = CounterMetricFamily(
            "kdns_tcp_connections_closed",
            "TCP connections closed by kdns: idle (no complete query for --tcp-idle-timeout), "
            "evicted (the idlest, to admit one at --max-tcp-connections), refused (at the limit, "
            "every connection busy).",
            labels=["reason"],
        )
        closed.add_metric(["idle"], sum(c.reaped for c in every))
        closed.add_metric(["evicted"], sum(c.evicted for c in every))
        closed.add_metric(["refused"], sum(c.refused for c in every))
        yield closed

    def _cache(
        self, servers: Sequence[Served], answered: Sequence[Counter[tuple[int, int, int]]]
    ) -> Iterator:
        """The caches of forwarded answers, by the server they belong to."""
        entries = GaugeMetricFamily(
            "coredns_cache_entries",
            "The number of elements in the cache.",
            labels=["server", "type", "zones", "view"],
        )
        hits = CounterMetricFamily(
            "coredns_cache_hits", "The count of cache hits.", labels=["server", "type", "zones", "view"]
        )
        misses = CounterMetricFamily(
            "coredns_cache_misses", "The count of cache misses.", labels=["server", "zones", "view"]
        )
        requests = CounterMetricFamily(
            "coredns_cache_requests",
            "The count of cache requests.",
            labels=["server", "zones", "view"],
        )
        prefetches = CounterMetricFamily(
            "coredns_cache_prefetch",
            "The number of times the cache has prefetched a cached item.",
            labels=["server", "zones", "view"],
        )
        served_stale = CounterMetricFamily(
            "coredns_cache_served_stale",
            "The number of requests served from stale cache entries.",
            labels=["server", "zones", "view"],
        )
        sizes: Counter[tuple[str, ...]] = Counter()
        hit_counts: Counter[tuple[str, ...]] = Counter()
        miss_counts: Counter[tuple[str, ...]] = Counter()
        request_counts: Counter[tuple[str, ...]] = Counter()
        prefetch_counts: Counter[tuple[str, ...]] = Counter()
        stale_counts: Counter[tuple[str, ...]] = Counter()
        for served, counts in zip(servers, answered, strict=True):
            # the stanzas of a block share one cache: each cache once
            caches = {id(f.cache): f.cache for f in served.forwarders if f.cache is not None}
            if not caches:
                continue
            server = served.servers[0]
            hit = 0
            for cache in caches.values():
                for kind, table in (("success", cache.success), ("denial", cache.denial)):
                    sizes[(server, kind, served.zones, "")] += len(table)
                    hit_counts[(server, kind, served.zones, "")] += cache.hits[kind]
                    hit += cache.hits[kind]
                prefetch_counts[(server, served.zones, "")] += cache.prefetches
                stale_counts[(server, served.zones, "")] += cache.stale_hits
            # every query of the server passes the cache, as in CoreDNS: what it did not answer missed
            asked = sum(counts.values())
            request_counts[(server, served.zones, "")] += asked
            miss_counts[(server, served.zones, "")] += max(asked - hit, 0)
        if not request_counts:
            return
        for family, counts in (
            (entries, sizes),
            (requests, request_counts),
            (hits, hit_counts),
            (misses, miss_counts),
            (prefetches, prefetch_counts),
            (served_stale, stale_counts),
        ):
            for labels, value in sorted(counts.items()):
                family.add_metric(list(labels), value)
            yield family

    def _forward(self, forwarders: Sequence[Forwarder]) -> Iterator:
        if not forwarders:
            return
        requests = CounterMetricFamily(
            "coredns_forward_requests", "Counter of requests made per upstream.", labels=["to"]
        )
        responses = CounterMetricFamily(
            "coredns_forward_responses", "Counter of responses per upstream.", labels=["to", "rcode"]
        )
        sent: Counter[str] = Counter()
        durations: dict[tuple[str, str], Histogram] = {}
        health: Counter[str] = Counter()
        for forwarder in forwarders:
            stats = forwarder.stats
            sent.update(stats.requests)
            for (to, rcode), histogram in stats.durations.items():
                durations.setdefault((to, rcode_name(rcode)), Histogram()).merge(histogram)
            for upstream in forwarder.upstreams:
                health[upstream.label] += stats.health_failures[upstream.label]
        for to, count in sorted(sent.items()):
            requests.add_metric([to], count)
        series = sorted((list(labels), histogram) for labels, histogram in durations.items())
        for labels, histogram in series:
            responses.add_metric(labels, histogram.count)
        yield requests
        yield responses
        yield _histogram(
            "coredns_forward_request_duration_seconds",
            "Histogram of the time each request took.",
            ["to", "rcode"],
            series,
        )
        yield _histogram(
            "coredns_proxy_request_duration_seconds",
            "Histogram of the time each request took.",
            ["proxy_name", "to", "rcode"],
            [(["forward", *labels], h) for labels, h in series],
        )
        conn_hits = CounterMetricFamily(
            "coredns_proxy_conn_cache_hits",
            "Counter of connection cache hits per upstream and protocol.",
            labels=["proxy_name", "to", "proto"],
        )
        conn_misses = CounterMetricFamily(
            "coredns_proxy_conn_cache_misses",
            "Counter of connection cache misses per upstream and protocol.",
            labels=["proxy_name", "to", "proto"],
        )
        reused: Counter[tuple[str, str]] = Counter()
        opened: Counter[tuple[str, str]] = Counter()
        for forwarder in forwarders:
            for upstream in forwarder.upstreams:
                key = (upstream.label, "tcp-tls" if upstream.tls else "tcp")
                reused[key] += upstream.streams.reused
                opened[key] += upstream.streams.opened
        for (to, proto), count in sorted(reused.items()):
            conn_hits.add_metric(["forward", to, proto], count)
            conn_misses.add_metric(["forward", to, proto], opened[(to, proto)])
        yield conn_hits
        yield conn_misses
        failures = CounterMetricFamily(
            "coredns_forward_healthcheck_failures", "Health checks that failed.", labels=["to"]
        )
        proxy_failures = CounterMetricFamily(
            "coredns_proxy_healthcheck_failures", "Health checks that failed.", labels=["proxy_name", "to"]
        )
        for to, count in sorted(health.items()):
            failures.add_metric([to], count)
            proxy_failures.add_metric(["forward", to], count)
        yield failures
        yield proxy_failures
        yield CounterMetricFamily(
            "coredns_forward_healthcheck_broken",
            "Queries that found every upstream unhealthy.",
            value=sum(f.stats.all_down for f in forwarders),
        )
        yield CounterMetricFamily(
            "coredns_forward_max_concurrent_rejects",
            "Queries refused because max_concurrent was reached.",
            value=sum(f.stats.rejected for f in forwarders),
        )

    def _kubernetes(self, s: Sources) -> Iterator:
        if s.zone is not None:
            yield GaugeMetricFamily(
                "kdns_zone_names", "Names the cluster zone holds.", value=len(s.zone.index.nodes)
            )
        informer = s.informer
        if informer is None:
            return
        yield GaugeMetricFamily(
            "kdns_kubernetes_synced",
            "1 once every watched resource has been listed from the API.",
            value=1 if informer.synced.is_set() else 0,
        )
        yield GaugeMetricFamily(
            "kdns_kubernetes_api_up",
            "0 while the Kubernetes API cannot be reached.",
            value=0 if informer.health.down else 1,
        )
        events = CounterMetricFamily(
            "kdns_kubernetes_events", "Watch events applied to the zone.", labels=["kind", "type"]
        )
        for (kind, kind_of_event), count in sorted(informer.events.items()):
            events.add_metric([kind, kind_of_event], count)
        lists = CounterMetricFamily(
            "kdns_kubernetes_lists", "Full lists applied to the zone.", labels=["kind"]
        )
        for kind, count in sorted(informer.lists.items()):
            lists.add_metric([kind], count)
        yield events
        yield lists
        yield from _reflectors(informer)
        yield _histogram(
            "coredns_kubernetes_dns_programming_duration_seconds",
            "Histogram of the time (in seconds) it took to program a dns instance.",
            ["service_kind"],
            [([kind], histogram) for kind, histogram in sorted(informer.programming.items())],
        )
        yield _histogram(
            "kdns_kubernetes_event_apply_seconds",
            "Time from a watch event's arrival to the zone answering with it.",
            [],
            [([], informer.apply_seconds)],
        )


def _reflectors(informer: Informer) -> Iterator:
    """What each reflector counted: requests, watch ends, an open watch, the last word from the API."""
    requests = CounterMetricFamily(
        "kdns_kubernetes_requests",
        "List and watch requests to the Kubernetes API by HTTP status code (<error>: no response).",
        labels=["kind", "verb", "code"],
    )
    ends = CounterMetricFamily(
        "kdns_kubernetes_watch_ends",
        "Watch streams ended, by reason: closed, dropped, silent, expired (410), error.",
        labels=["kind", "reason"],
    )
    open_ = GaugeMetricFamily(
        "kdns_kubernetes_watch_open", "1 while a watch stream is open.", labels=["kind"]
    )
    last = GaugeMetricFamily(
        "kdns_kubernetes_last_sync_timestamp_seconds",
        "Unix time of the last list, watch event or bookmark from the API (0: none yet).",
        labels=["kind"],
    )
    for reflector in informer.reflectors:
        kind = reflector.resource.kind
        for (verb, code), count in sorted(reflector.requests.copy().items()):
            requests.add_metric([kind, verb, code], count)
        for reason, count in sorted(reflector.watch_ends.copy().items()):
            ends.add_metric([kind, reason], count)
        open_.add_metric([kind], 1 if reflector.watching else 0)
        last.add_metric([kind], reflector.last_sync)
    yield from (requests, ends, open_, last)


def _build(servers: Sequence[Served]) -> Iterator:
    """What runs: the build, its panics, and the plugins of each server block."""
    info = GaugeMetricFamily(
        "coredns_build_info",
        "A metric with a constant '1' value labeled by version, revision, and goversion from which "
        "CoreDNS was built.",
        labels=["version", "revision", "goversion"],
    )
    info.add_metric([__version__, revision(), python()], 1)
    yield info
    own = GaugeMetricFamily("kdns_build_info", "kdns version and Python.", labels=["version", "python"])
    own.add_metric([__version__, python()], 1)
    yield own
    yield CounterMetricFamily(
        "coredns_panics",
        "A metrics that counts the number of panics.",
        value=sum(s.listeners.exchange.panics for s in servers if s.listeners is not None),
    )
    enabled = GaugeMetricFamily(
        "coredns_plugin_enabled",
        "A metric that indicates whether a plugin is enabled on per server and zone basis.",
        labels=["server", "zone", "view", "name"],
    )
    rows = {
        (server, _fqdn(zone), "", name): 1
        for served in servers
        for block in served.blocks
        for server in server_labels(served.addresses, served.port)
        for zone in block.zones
        for name in block.plugins or plugins_of(block)
    }
    for labels in sorted(rows):
        enabled.add_metric(list(labels), 1)
    yield enabled


def plugins_of(block: ServerSettings) -> tuple[str, ...]:
    """The CoreDNS plugins the settings of a block the flags describe stand for, in CoreDNS's order."""
    named = (
        ("errors", True),
        ("log", block.log is not None),
        ("acl", bool(block.acl)),
        ("chaos", block.chaos is not None),
        ("loadbalance", block.loadbalance),
        ("cache", block.cache is not None and bool(block.forward)),
        ("rewrite", bool(block.rewrites)),
        ("autopath", block.autopath),
        ("template", bool(block.templates)),
        ("transfer", block.transfer is not None),
        ("hosts", block.hosts is not None),
        ("k8s_external", block.external is not None),
        ("kubernetes", block.kubernetes),
        ("loop", bool(block.forward)),
        ("forward", bool(block.forward)),
        ("whoami", block.whoami),
    )
    return tuple(name for name, on in named if on)


def _fqdn(zone: str) -> str:
    return "." if zone == "." else f"{zone}."


def _merged(table: dict[tuple[str, ...], Histogram], labels: tuple[str, ...], histogram: Histogram) -> None:
    mine = table.get(labels)
    if mine is None:
        table[labels] = mine = Histogram(histogram.bounds)
    mine.merge(histogram)


def _series(table: dict[tuple[str, ...], Histogram]) -> list[tuple[list[str], Histogram]]:
    return [(list(labels), histogram) for labels, histogram in sorted(table.items())]


def _histogram(
    name: str, documentation: str, labels: list[str], series: Iterable[tuple[list[str], Histogram]]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, histogram in series:
        family.add_metric(values, histogram.cumulative(), sum_value=histogram.sum)
    return family


def registry_for(sources: Sources) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    registry.register(KdnsCollector(sources))
    return registry
