"""Configuration values, frozen once parsed. ``cli`` builds them; everything else only reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path


class PodMode(Enum):
    """CoreDNS's ``pods`` option: how ``1-2-3-4.<ns>.pod.<zone>`` names are answered."""

    INSECURE = "insecure"  # any well-formed name in an existing namespace
    VERIFIED = "verified"  # only IPs of pods that exist in that namespace
    DISABLED = "disabled"  # never


DEFAULT_ZONES = ("cluster.local", "in-addr.arpa", "ip6.arpa")
DEFAULT_SNAPSHOT = Path(__file__).resolve().parent.parent / "zones" / "example.yaml"


@dataclass(frozen=True, slots=True)
class ZoneSettings:
    """What the zone answers and how."""

    zones: tuple[str, ...] = DEFAULT_ZONES
    ttl: int = 5
    pods: PodMode = PodMode.INSECURE
    endpoint_pod_names: bool = False
    ignore_empty_service: bool = False
    dns_service: tuple[str, str] = ("kube-system", "kube-dns")  # answers ns.dns.<zone>


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """How to reach the Kubernetes API and how to follow it."""

    kubeconfig: Path | None = None  # None with in_cluster False: the client's default kubeconfig
    context: str | None = None
    in_cluster: bool = False
    startup_timeout: float = 5.0  # serve what we have after this long, as CoreDNS's startup_timeout
    watch_timeout: float = 300.0  # server-side watch timeout, randomised up to twice this
    idle_timeout: float = 90.0  # a watch silent this long (no event, no bookmark) is restarted


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    """CoreDNS's ``forward``: where names outside the zones go."""

    upstreams: tuple[str, ...] = ()  # "IP" or "IP:PORT" ("[IPv6]:PORT"); empty: resolv_conf's nameservers
    resolv_conf: Path = Path("/etc/resolv.conf")
    max_concurrent: int = 1000  # queries in flight upstream; more are answered REFUSED
    timeout: float = 2.0  # one try at one upstream
    max_fails: int = 2  # consecutive failures that mark an upstream down until a health check passes
    health_check: float = 0.5  # seconds between health checks of a down upstream
    policy: str = "random"  # random, round_robin or sequential
    force_tcp: bool = False
    fallthrough_reverse: bool = True  # PTR names the zone does not hold go upstream (fallthrough)


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """CoreDNS's ``cache``, for forwarded answers."""

    success_capacity: int = 9984
    success_ttl: int = 3600  # cap on positive TTLs
    denial_capacity: int = 9984
    denial_ttl: int = 1800  # cap on negative TTLs (RFC 2308)
    min_ttl: int = 5  # floor for both
    servfail_ttl: int = 5  # 0: SERVFAIL is not cached
    serve_stale: float = 0.0  # seconds past expiry an entry may answer when every upstream fails


@dataclass(frozen=True, slots=True)
class HostsSettings:
    """CoreDNS's ``hosts``: static names from a hosts file (k3s's NodeHosts)."""

    path: Path
    entries: tuple[tuple[str, str], ...] = ()  # inline "IP name" lines from a Corefile
    ttl: int = 3600
    reload: float = 5.0  # seconds between checks of the file; 0: never
    fallthrough: bool = False  # names the file does not hold go on (to forward) instead of NXDOMAIN


@dataclass(frozen=True, slots=True)
class OpsSettings:
    """HTTP endpoints beside DNS: liveness, readiness and Prometheus metrics ("HOST:PORT"; None: off)."""

    health: str | None = None
    lameduck: float = 0.0  # on shutdown, keep answering (and /health 200) this long
    ready: str | None = None
    metrics: str | None = None


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything ``kdns serve`` needs."""

    zone: ZoneSettings = field(default_factory=ZoneSettings)
    snapshots: tuple[Path, ...] = ()
    kube: KubeSettings | None = None  # set: follow the API instead of reading snapshots
    namespaces: tuple[str, ...] = ()
    labels: str | None = None
    listen: tuple[str, ...] = ("127.0.0.1",)
    port: int = 5353
    max_udp_size: int = 1232
    tcp_idle_timeout: float = 10.0
    max_tcp_connections: int = 1000
    answer_cache_size: int = 100_000
    workers: int = 1  # processes answering on the same sockets (SO_REUSEPORT)
    forward: ForwardSettings | None = None  # None: names outside the zones are REFUSED
    cache: CacheSettings | None = field(default_factory=CacheSettings)  # None: forwarded answers uncached
    hosts: HostsSettings | None = None
    ops: OpsSettings = field(default_factory=OpsSettings)
    loadbalance: bool = False  # rotate A/AAAA records between answers (CoreDNS's loadbalance)
    autopath: bool = False  # answer search-path queries server-side (CoreDNS's autopath @kubernetes)
    log_queries: bool = False  # one line per query (CoreDNS's log)
    corefile: Path | None = None  # where this configuration came from, watched when reload is set
    reload: float = 0.0  # seconds between checks of the Corefile; 0: never
