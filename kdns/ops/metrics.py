"""Prometheus metrics under CoreDNS's names and labels, so its dashboards and alerts keep working.

Nothing is counted here: at scrape time a collector reads the counters the responder, the transports,
the forwarder, the cache and the informer keep anyway, and renders them:

- ``coredns_dns_requests_total{server,zone,view,proto,family,type}``,
  ``coredns_dns_responses_total{server,zone,view,rcode,plugin}``,
  ``coredns_dns_request_duration_seconds{server,zone,view}`` (CoreDNS also labels it by type);
- ``coredns_cache_entries{server,type,zones,view}``, ``coredns_cache_hits_total``,
  ``coredns_cache_misses_total``, ``coredns_cache_prefetch_total``, ``coredns_cache_served_stale_total``
  (the cache of forwarded answers; cluster answers are never stale);
- ``coredns_forward_requests_total{to}``, ``coredns_forward_responses_total{to,rcode}``,
  ``coredns_forward_request_duration_seconds{to,rcode}`` and ``coredns_proxy_request_duration_seconds``,
  ``coredns_forward_healthcheck_failures_total{to}``, ``coredns_forward_healthcheck_broken_total``,
  ``coredns_forward_max_concurrent_rejects_total``;
- ``kdns_kubernetes_synced``, ``kdns_kubernetes_api_up``, ``kdns_kubernetes_event_apply_seconds``,
  ``kdns_kubernetes_events_total``, ``kdns_kubernetes_lists_total``;
- per watched kind, from the reflectors: ``kdns_kubernetes_requests_total{kind,verb,code}`` (as client-go's
  ``rest_client_requests_total``, ``<error>`` when no response came), ``kdns_kubernetes_watch_ends_total
  {kind,reason}``, ``kdns_kubernetes_watch_open{kind}`` and ``kdns_kubernetes_last_sync_timestamp_seconds
  {kind}`` (the last list, event or bookmark: how current the zone's copy is known to be);
- ``kdns_zone_names``, ``kdns_answer_cache_entries``, ``kdns_tcp_connections``,
  ``kdns_tcp_connections_closed_total{reason}`` (idle, evicted, refused), ``kdns_build_info``; and the
  process metrics.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dnslib
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from kdns import __version__
from kdns.counting import Histogram
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
        "NAPTR",
        "DS",
        "DNSKEY",
        "RRSIG",
        "NSEC",
        "NSEC3",
        "HINFO",
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


@dataclass
class Served:
    """One listener's parts: its responder, sockets and forwarders, and its ``server`` label."""

    responder: Responder
    listeners: Listeners | None = None
    forwarders: Sequence[Forwarder] = ()
    server: str = "dns://:53"
    zones: str = "."


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
        yield from self._dns(s.servers)
        yield from self._cache(s.servers)
        yield from self._forward(list({id(f): f for served in s.servers for f in served.forwarders}.values()))
        yield from self._kubernetes(s)
        yield from self._server(s.servers)
        info = GaugeMetricFamily("kdns_build_info", "kdns version and Python.", labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info

    def _dns(self, servers: Sequence[Served]) -> Iterator:
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
        durations = []
        for served in servers:
            base = [served.server, served.zones, ""]
            by_request: Counter[tuple[str, str, str]] = Counter()
            by_rcode: Counter[tuple[str, str]] = Counter()
            for (channel, qtype, rcode), count in served.responder.query_counts().items():
                proto, family = CHANNELS[channel]
                by_request[(proto, family, type_name(qtype))] += count
                if rcode >= 0:
                    by_rcode[(rcode_name(rcode), "kubernetes")] += count
            for rcode, count in served.responder.errors.items():
                by_rcode[(rcode_name(rcode), "")] += count
            for rcode, count in enumerate(served.responder.forwarded_rcodes):
                if count:
                    by_rcode[(rcode_name(rcode), "cache")] += count
            for forwarder in served.forwarders:
                for rcode, count in enumerate(forwarder.stats.answered):
                    if count:
                        by_rcode[(rcode_name(rcode), "forward")] += count
            for labels, count in sorted(by_request.items()):
                requests.add_metric([*base, *labels], count)
            for labels, count in sorted(by_rcode.items()):
                responses.add_metric([*base, *labels], count)
            exchange = served.listeners.exchange if served.listeners is not None else None
            durations.append((base, exchange.durations if exchange is not None else Histogram()))
        yield requests
        yield responses
        yield _histogram(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time each request took.",
            ["server", "zone", "view"],
            durations,
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

    def _cache(self, servers: Sequence[Served]) -> Iterator:
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
        prefetch_counts: Counter[tuple[str, ...]] = Counter()
        stale_counts: Counter[tuple[str, ...]] = Counter()
        for served in servers:
            # the stanzas of a block share one cache: each cache once
            caches = {id(f.cache): f.cache for f in served.forwarders if f.cache is not None}
            for cache in caches.values():
                for kind, table in (("success", cache.success), ("denial", cache.denial)):
                    sizes[(served.server, kind, served.zones, "")] += len(table)
                    hit_counts[(served.server, kind, served.zones, "")] += cache.hits[kind]
                miss_counts[(served.server, served.zones, "")] += cache.misses
                prefetch_counts[(served.server, served.zones, "")] += cache.prefetches
                stale_counts[(served.server, served.zones, "")] += cache.stale_hits
        if not miss_counts:
            return
        for family, counts in (
            (entries, sizes),
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
