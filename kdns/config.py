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
