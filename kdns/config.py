"""Every default, bound and name of kdns's configuration, and the frozen values it is held in once parsed.

The command line (``cli``) and the Corefile (``corefile``) both read from here: the defaults the
settings values start from, the ``Bounds`` each number must keep to, and the parsers of the texts
both accept (numbers, ports, ``HOST:PORT`` and upstream addresses, choices of a name). Each parser
raises ``ValueError`` with the problem alone ("5000 is outside 0-3600"); the reader puts the option
(``--ttl:``) or the place (``Corefile:3: ttl:``) in front. Where CoreDNS's Corefile default differs
from kdns's command-line default, both are named here (``COREFILE_*`` are CoreDNS's).
"""

from __future__ import annotations

import errno
import ipaddress
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from kdns.codes import HEADER_RCODES, MDNS_PORT, NOERROR, TLS_PORT
from kdns.codes import PORT as DNS_PORT


class PodMode(Enum):
    """CoreDNS's ``pods`` option: how ``1-2-3-4.<ns>.pod.<zone>`` names are answered."""

    INSECURE = "insecure"  # any well-formed name in an existing namespace
    VERIFIED = "verified"  # only IPs of pods that exist in that namespace
    DISABLED = "disabled"  # never


class ForwardPolicy(StrEnum):
    """CoreDNS's forward ``policy``: the order in which upstreams are tried."""

    RANDOM = "random"
    ROUND_ROBIN = "round_robin"
    SEQUENTIAL = "sequential"


class LogClass(StrEnum):
    """CoreDNS's classes of responses (``response.Classify``), by which ``log`` picks the queries it logs."""

    ALL = "all"  # every response, unclassified
    SUCCESS = "success"  # an answer, a referral, or NOERROR with nothing
    DENIAL = "denial"  # NXDOMAIN or NODATA
    ERROR = "error"  # everything else: SERVFAIL, REFUSED, FORMERR, zone transfers, updates...


LOADBALANCE_POLICY = "round_robin"  # the one policy of CoreDNS's loadbalance that kdns has


# --- bounds ------------------------------------------------------------------------------------------


_Number = TypeVar("_Number", int, float)


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True, slots=True)
class Bounds:
    """The values a number may take: ``low`` up to ``high`` (None: no upper end), both included;
    ``above``: ``low`` itself is not allowed (a timeout must be more than 0)."""

    low: float
    high: float | None = None
    above: bool = False
    unit: str = ""  # written after each number in problems and help: "s" for seconds

    def check(self, value: float) -> str | None:
        """None when ``value`` is allowed, else the problem: ``"5000 is outside 0-3600"``."""
        low, high, unit = self.low, self.high, self.unit
        if high is not None and not low <= value <= high:
            return f"{_shown(value)}{unit} is outside {self}"
        if self.above and value <= low:
            return f"{_shown(value)}{unit} is not more than {_shown(low)}{unit}"
        if value < low:
            return f"{_shown(value)}{unit} is less than {_shown(low)}{unit}"
        return None

    def require(self, value: _Number) -> _Number:
        """``value`` when it is allowed; ValueError with the problem otherwise."""
        problem = self.check(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    def __str__(self) -> str:
        low, unit = _shown(self.low), self.unit
        if self.high is not None:
            return f"{low}-{_shown(self.high)}{unit}"
        return f"more than {low}{unit}" if self.above else f"{low}{unit} or more"


COUNT = Bounds(1)  # a capacity or a limit: at least one
NOT_NEGATIVE = Bounds(0)
SECONDS = Bounds(0, unit="s")  # a wait that may be zero: lameduck, serve_stale, startup_timeout
POSITIVE_SECONDS = Bounds(0, above=True, unit="s")  # a timeout or an interval
PORT = Bounds(0, 65535)  # 0 listens on any free port
UPSTREAM_PORT = Bounds(1, PORT.high)
TTL = Bounds(0, 3600)  # of the cluster's answers, as CoreDNS's kubernetes ttl
CACHE_TTL = Bounds(1)  # a cap on cached TTLs: CoreDNS refuses 'cache 0'
SERVFAIL_TTL = Bounds(0, 300, unit="s")  # CoreDNS's cache servfail: at most 5 minutes
PREFETCH_PERCENTAGE = Bounds(10, 90, unit="%")  # CoreDNS's cache prefetch PERCENTAGE%
HOSTS_TTL = Bounds(1, 65535)  # as CoreDNS's hosts
MAX_UDP_SIZE = Bounds(512, 4096)  # the classic DNS size up to the largest EDNS size worth asking for
WORKERS = Bounds(1, 64)
RELOAD = Bounds(2, unit="s")  # CoreDNS's reload: intervals under 2 s are refused
RELOAD_JITTER = Bounds(1, unit="s")
MAX_UPSTREAMS = 15  # as CoreDNS's forward


# --- defaults ----------------------------------------------------------------------------------------

DEFAULT_ZONES = ("cluster.local", "in-addr.arpa", "ip6.arpa")
REVERSE_ZONES = ("in-addr.arpa", "ip6.arpa")  # kubeadm's 'fallthrough in-addr.arpa ip6.arpa'
EVERY_ZONE = (".",)  # a bare 'fallthrough': every name
DEFAULT_SNAPSHOT = Path(__file__).resolve().parent.parent / "zones" / "example.yaml"
DEFAULT_TTL = 5  # kdns's and CoreDNS's
DEFAULT_PODS = PodMode.INSECURE  # as kubeadm configures CoreDNS
COREFILE_PODS = PodMode.DISABLED  # CoreDNS's when a Corefile's kubernetes has no 'pods'

DEFAULT_STARTUP_TIMEOUT = 5.0  # kdns's and CoreDNS's startup_timeout
DEFAULT_WATCH_IDLE_TIMEOUT = 90.0
DEFAULT_WATCH_TIMEOUT = 300.0  # client-go's reflector: 5 minutes, randomised up to twice this

DEFAULT_RESOLV_CONF = Path("/etc/resolv.conf")
DEFAULT_MAX_CONCURRENT = 1000  # kdns's; CoreDNS's forward has no limit unless one is given
DEFAULT_FORWARD_TIMEOUT = 2.0
DEFAULT_MAX_FAILS = 2  # kdns's and CoreDNS's
DEFAULT_HEALTH_CHECK = 0.5  # kdns's and CoreDNS's
DEFAULT_HEALTH_CHECK_DOMAIN = "."  # kdns's and CoreDNS's: health checks ask ". IN NS"
DEFAULT_POLICY = ForwardPolicy.RANDOM  # kdns's and CoreDNS's
DEFAULT_EXPIRE = 10.0  # kdns's and CoreDNS's: an upstream TCP or TLS connection unused this long closes

DEFAULT_CACHE_CAPACITY = 9984  # kdns's and CoreDNS's cache, for each of success and denial
DEFAULT_SUCCESS_TTL = 3600  # kdns's and CoreDNS's
DEFAULT_DENIAL_TTL = 1800  # kdns's and CoreDNS's
DEFAULT_CACHE_MIN_TTL = 5  # kdns's and CoreDNS's
DEFAULT_SERVFAIL_TTL = 5  # kdns's and CoreDNS's
COREFILE_SERVE_STALE = 3600.0  # CoreDNS's when 'serve_stale' is given without a duration
DEFAULT_PREFETCH_WINDOW = 60.0  # CoreDNS's prefetch DURATION: the longest gap between counted queries
DEFAULT_PREFETCH_PERCENTAGE = 10  # CoreDNS's: refreshed once the TTL left is at most this share of it
MAX_BACKGROUND_REFRESHES = 32  # prefetches and stale refreshes in flight at once, per forwarder

COREFILE_HOSTS_FILE = Path("/etc/hosts")  # CoreDNS's when 'hosts' names no file
DEFAULT_HOSTS_TTL = 3600  # kdns's and CoreDNS's
DEFAULT_HOSTS_RELOAD = 5.0  # kdns's and CoreDNS's

DEFAULT_EXTERNAL_TTL = 5  # CoreDNS's k8s_external
DEFAULT_EXTERNAL_APEX = "dns"  # k8s_external's name below the zone for its SOA's and NS's names

HEALTH_PORT, READY_PORT, METRICS_PORT = 8080, 8181, 9153  # CoreDNS's health, ready and prometheus
DEFAULT_HEALTH = f":{HEALTH_PORT}"  # every interface: kdns's and CoreDNS's
DEFAULT_READY = f":{READY_PORT}"  # kdns's and CoreDNS's
DEFAULT_METRICS = f":{METRICS_PORT}"  # kdns's --metrics alone
COREFILE_METRICS = f"localhost:{METRICS_PORT}"  # CoreDNS's prometheus without an address

# the label deploy/ puts on kdns's pods alone, never on CoreDNS's: kdns's Deployment, budget and
# anti-affinity select it, and ``kdns swap`` finds kdns's pods by it
KDNS_POD_LABEL = ("kdns/app", "kdns")
KDNS_POD_SELECTOR = "=".join(KDNS_POD_LABEL)

DEFAULT_LISTEN = ("127.0.0.1",)
COREFILE_LISTEN = ("0.0.0.0", "::")  # CoreDNS's without 'bind': every interface
DEFAULT_PORT = 1053  # no privileges needed, and no desktop service's (5353 is mDNS's)
# what usually holds a port kdns cannot listen on, said in the error
PORT_HOLDERS = {
    DNS_PORT: "a local resolver (systemd-resolved or dnsmasq)",
    MDNS_PORT: "mDNS (avahi-daemon or mDNSResponder)",
}
COREFILE_PORT = DNS_PORT  # CoreDNS's for a server block without a port
DEFAULT_MAX_UDP_SIZE = 1232  # the DNS flag day 2020 size: no IP fragmentation
COREFILE_BUFSIZE = DEFAULT_MAX_UDP_SIZE  # CoreDNS's bufsize without a size: the same flag-day size
DEFAULT_TCP_IDLE_TIMEOUT = 10.0
DEFAULT_MAX_TCP_CONNECTIONS = 1000
DEFAULT_WORKERS = 1
COREFILE_RELOAD = 30.0  # CoreDNS's when 'reload' is given without an interval
# CoreDNS's log formats: ``{common}`` (the default) and ``{combined}`` (with the query's opcode)
COMMON_LOG_FORMAT = (
    '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" '
    "{rcode} {>rflags} {rsize} {duration}"
)
COMBINED_LOG_FORMAT = COMMON_LOG_FORMAT + ' "{>opcode}"'


# --- the texts both readers accept -------------------------------------------------------------------


class NotAnIPAddress(ValueError):
    """The text is no IP address at all (a Corefile's forward then reads it as a resolv.conf file)."""


WHOLE_NUMBER = re.compile(r"[+-]?\d+")


def parse_whole_number(text: str, bounds: Bounds) -> int:
    """``text`` as an integer within ``bounds``; ValueError with the problem."""
    if not WHOLE_NUMBER.fullmatch(text):
        raise ValueError(f"{text!r} is not a whole number")
    return bounds.require(int(text))


def parse_number(text: str, bounds: Bounds) -> float:
    """``text`` as a finite number (seconds on the command line) within ``bounds``; ValueError."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a number")
    return bounds.require(value)


_Choice = TypeVar("_Choice", bound=Enum)


def choices(kind: type[Enum], separator: str = "|") -> str:
    """The values of ``kind`` as a usage line writes them: ``insecure|verified|disabled``."""
    return separator.join(m.value for m in kind)


def parse_choice(kind: type[_Choice], text: str) -> _Choice:
    """The member of ``kind`` whose value is ``text``; ValueError naming the choices."""
    for member in kind:
        if member.value == text:
            return member
    raise ValueError(f"{text!r} is not one of {choices(kind, ', ')}")


def parse_ip(text: str) -> str:
    """An IPv4 or IPv6 address in its usual form; ValueError (NotAnIPAddress) otherwise."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise NotAnIPAddress(f"{text!r} is not an IP address") from None


def parse_port(text: str, bounds: Bounds = PORT) -> int:
    """A port number written in decimal, within ``bounds``; ValueError."""
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a port number")
    return bounds.require(int(text))


def port_taken(error: OSError, port: int, *, corefile: bool = False) -> OSError:
    """``error`` of listening on ``port``; when the port is taken, its text goes on to say what
    usually holds the port and how to choose another (a Corefile names its port in the block's key)."""
    if error.errno != errno.EADDRINUSE or not port:
        return error
    holder = PORT_HOLDERS.get(port)
    held = f"port {port} is usually held by {holder}" if holder else f"port {port} is held by another process"
    how = "in the server block's key ('.:PORT {')" if corefile else "with --port"
    return OSError(error.errno, f"{error.strerror}; {held}: choose another {how}")


def split_address(
    text: str, default_port: int | None = None, *, ports: Bounds = PORT
) -> tuple[str | None, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port), host None for every interface (``:8080``).

    With a ``default_port`` the port may be left out (``localhost``, ``[::1]``, or ``::1`` unbracketed:
    more than one colon is an IPv6 address); without one it must be written, as CoreDNS wants it.
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not a HOST:PORT address")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, None
    if (port_text is None and default_port is None) or (":" in host and not _is_ip(host)):
        raise ValueError(f"{text!r} is not a HOST:PORT address")
    if port_text is None:
        return host or None, default_port
    try:
        return host or None, parse_port(port_text, ports)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def _is_ip(text: str) -> bool:
    try:
        parse_ip(text)
    except ValueError:
        return False
    return True


TRANSFER_TO_ANYONE = "*"  # a ``transfer``'s ``to`` that lets every client transfer


def parse_transfer_to(text: str) -> str:
    """Who a ``transfer``'s ``to`` lets transfer: ``*``, an IP address (``IP:PORT`` and ``[IPv6]:PORT``
    name where CoreDNS would send notifies; the port plays no part in who may transfer) or a network
    in CIDR notation -> ``*`` or the network in CIDR form (``10.0.0.7/32``); ValueError otherwise."""
    if text == TRANSFER_TO_ANYONE:
        return text
    if "/" in text:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not a network in CIDR notation") from None
    host, _ = split_address(text, DNS_PORT)
    try:
        return str(ipaddress.ip_network(parse_ip(host or "")))
    except NotAnIPAddress:
        raise ValueError(f"{text!r} is not '*', an IP address or a CIDR network") from None


class UpstreamProtocol(StrEnum):
    """How an upstream is asked, as a forward destination's ``SCHEME://`` names it."""

    DNS = "dns"  # UDP and TCP (no scheme written means this)
    TLS = "tls"  # DNS over TLS (RFC 7858), on port 853 unless another is written


DEFAULT_UPSTREAM_PORTS = {UpstreamProtocol.DNS: DNS_PORT, UpstreamProtocol.TLS: TLS_PORT}


@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    """An upstream resolver: where it is, and how it is asked."""

    host: str  # an IP address
    port: int = DNS_PORT
    protocol: UpstreamProtocol = UpstreamProtocol.DNS

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def parse_upstream_address(text: str) -> UpstreamAddress:
    """A forward destination: ``IP``, ``IP:PORT``, ``[IPv6]:PORT`` or ``IPv6``, with ``dns://`` or
    ``tls://`` before it or neither (plain DNS). ValueError names the problem; NotAnIPAddress when
    no IP is written at all."""
    scheme, sep, address = text.rpartition("://")
    try:
        protocol = UpstreamProtocol(scheme) if sep else UpstreamProtocol.DNS
    except ValueError:
        raise ValueError(f"{scheme}:// is not supported as a destination protocol") from None
    host, port = split_address(address, DEFAULT_UPSTREAM_PORTS[protocol], ports=UPSTREAM_PORT)
    try:
        return UpstreamAddress(parse_ip(host or ""), port, protocol)
    except NotAnIPAddress:
        raise NotAnIPAddress(f"{text!r} is not an IP address with an optional port") from None


def name_labels(name: str) -> tuple[str, ...]:
    """A domain name in presentation form -> its labels, lowercase, escapes (``\\.``, ``\\065``)
    read; ``()`` for the root (``.`` or empty)."""
    labels: list[str] = []
    label: list[str] = []
    i, end = 0, len(name)
    while i < end:
        ch = name[i]
        if ch == "\\" and i + 1 < end:
            digits = name[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdigit():
                label.append(chr(int(digits)))
                i += 4
            else:
                label.append(name[i + 1])
                i += 2
            continue
        if ch == ".":
            if label:
                labels.append("".join(label).lower())
            label = []
        else:
            label.append(ch)
        i += 1
    if label:
        labels.append("".join(label).lower())
    return tuple(labels)


def parse_rcode(text: str) -> int:
    """An rcode by its name, in any letter case (``NXDOMAIN``); ValueError naming the choices."""
    rcode = HEADER_RCODES.get(text.upper())
    if rcode is None:
        raise ValueError(f"{text!r} is not an rcode ({', '.join(HEADER_RCODES)})")
    return rcode


def parse_failover_rcode(text: str) -> int:
    """An rcode that sends a query on to the next upstream: any but NOERROR (as CoreDNS's failover)."""
    rcode = parse_rcode(text)
    if rcode == NOERROR:
        raise ValueError("NOERROR cannot be used in failover")
    return rcode


API_URL_SCHEMES = ("https", "http")


def parse_api_url(text: str) -> str:
    """A Kubernetes API server's URL, ``https://HOST[:PORT][/PATH]`` (or ``http://``), as written;
    ValueError naming the problem."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or out of range
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a URL: {exc}") from None
    if parts.scheme not in API_URL_SCHEMES:
        raise ValueError(f"{text!r}: the API server's URL must start with https:// or http://")
    if not parts.hostname:
        raise ValueError(f"{text!r}: the URL names no host")
    if parts.query or parts.fragment:
        raise ValueError(f"{text!r}: the API server's URL takes no query or fragment")
    return text


def parse_tls_files(args: Sequence[str]) -> tuple[Path | None, Path | None, Path | None]:
    """CoreDNS's forward ``tls [CERT KEY [CA]]`` arguments -> (cert, key, ca): none, the system's
    roots verify the server; ``CA`` alone, that file does; ``CERT KEY``, the client's own certificate
    and key (the system's roots verify the server); all three, both. ValueError past three."""
    paths = [Path(arg) for arg in args]
    match paths:
        case []:
            return None, None, None
        case [ca]:
            return None, None, ca
        case [cert, key]:
            return cert, key, None
        case [cert, key, ca]:
            return cert, key, ca
    raise ValueError(f"tls takes at most 3 files (CERT KEY CA), not {len(paths)}")


# --- the settings --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZoneSettings:
    """What the zone answers and how."""

    zones: tuple[str, ...] = DEFAULT_ZONES
    ttl: int = DEFAULT_TTL
    pods: PodMode = DEFAULT_PODS
    endpoint_pod_names: bool = False
    ignore_empty_service: bool = False
    # the addresses of kdns's own pod, packed (set at start from where it listens): the Services whose
    # ready endpoints include one are kdns's own, and their addresses answer ns.dns.<zone>
    own_addresses: frozenset[bytes] = frozenset()
    fallthrough: tuple[str, ...] = ()  # NXDOMAIN names within these go to the next plugin
    # zones (among ``zones``) served from ServiceImports, not Services: CoreDNS's ``multicluster``
    multicluster: tuple[str, ...] = ()
    endpoints: bool = True  # False: EndpointSlices are not followed at all (CoreDNS's ``noendpoints``)
    # a label selector: only namespaces whose labels match are served, and a namespace exists only
    # while its Namespace object does (CoreDNS's ``namespace_labels``); None: every namespace
    namespace_labels: str | None = None


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """How to reach the Kubernetes API and how to follow it: a kubeconfig, the pod's service account
    (``in_cluster``), or an ``endpoint`` URL with the client certificate and CA of ``tls_*``."""

    kubeconfig: Path | None = None  # None with in_cluster False and no endpoint: the default kubeconfig
    context: str | None = None
    in_cluster: bool = False
    endpoint: str | None = None  # the API server's URL, without a kubeconfig (CoreDNS's ``endpoint``)
    tls_cert: Path | None = None  # with endpoint: the client's certificate and key (CoreDNS's ``tls``)
    tls_key: Path | None = None
    tls_ca: Path | None = None  # with endpoint: the CA that verifies the API server
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT  # serve what we have after this long
    watch_timeout: float = DEFAULT_WATCH_TIMEOUT  # server-side watch timeout, randomised up to twice this
    idle_timeout: float = DEFAULT_WATCH_IDLE_TIMEOUT  # a watch silent this long (no bookmark) is restarted


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    """CoreDNS's ``forward``: where names outside the zones go."""

    # "IP", "IP:PORT" or "[IPv6]:PORT", "dns://" or "tls://" before it or not (parse_upstream_address);
    # empty: resolv_conf's nameservers
    upstreams: tuple[str, ...] = ()
    resolv_conf: Path = DEFAULT_RESOLV_CONF
    max_concurrent: int = DEFAULT_MAX_CONCURRENT  # queries in flight upstream; more are answered REFUSED
    timeout: float = DEFAULT_FORWARD_TIMEOUT  # one try at one upstream
    max_fails: int = DEFAULT_MAX_FAILS  # failures in a row that mark an upstream down; 0: never down
    health_check: float = DEFAULT_HEALTH_CHECK  # seconds between health checks of a down upstream
    health_check_rd: bool = True  # the health query's RD bit (False: health_check ... no_rec)
    health_check_domain: str = DEFAULT_HEALTH_CHECK_DOMAIN  # the health query asks this name's NS
    policy: ForwardPolicy = DEFAULT_POLICY
    force_tcp: bool = False  # ask upstreams over TCP, however the client asked
    prefer_udp: bool = False  # ask over UDP first even when the client asked over TCP (force_tcp wins)
    expire: float = DEFAULT_EXPIRE  # seconds a TCP or TLS connection to an upstream stays open unused
    tls_servername: str | None = None  # the name a tls:// upstream's certificate must have (else its IP)
    tls_cert: Path | None = None  # the client's certificate for tls:// upstreams (with tls_key)
    tls_key: Path | None = None
    tls_ca: Path | None = None  # the CA that verifies tls:// upstreams; None: the system's roots
    failfast_all_unhealthy_upstreams: bool = False  # every upstream down: SERVFAIL without asking any
    failover_rcodes: tuple[int, ...] = ()  # answers with these rcodes move on to the next upstream
    # answers with these rcodes go to the next plugin instead: Forwarder.forward raises PassToNext
    next_rcodes: tuple[int, ...] = ()
    except_names: tuple[str, ...] = ()  # names not forwarded, with the names below them (see forwards)
    zone: str = "."  # FROM: the names this stanza forwards (the first stanza of a block holding a name wins)

    def forwards(self, qname: str) -> bool:
        """Whether ``qname`` (presentation form, any letter case) is forwarded: not when it is one of
        ``except_names`` or below one (CoreDNS's ``except``). The root, the zone forward serves, is
        always forwarded, as CoreDNS forwards its FROM zone whatever ``except`` says."""
        labels = name_labels(qname)
        if not labels:
            return True
        for name in self.except_names:
            excepted = name_labels(name)
            if len(excepted) <= len(labels) and labels[len(labels) - len(excepted) :] == excepted:
                return False
        return True


@dataclass(frozen=True, slots=True)
class CacheSettings:
    """CoreDNS's ``cache``, for forwarded answers."""

    success_capacity: int = DEFAULT_CACHE_CAPACITY
    success_ttl: int = DEFAULT_SUCCESS_TTL  # cap on positive TTLs
    denial_capacity: int = DEFAULT_CACHE_CAPACITY
    denial_ttl: int = DEFAULT_DENIAL_TTL  # cap on negative TTLs (RFC 2308)
    min_ttl: int = DEFAULT_CACHE_MIN_TTL  # floor for both
    servfail_ttl: int = DEFAULT_SERVFAIL_TTL  # 0: SERVFAIL is not cached
    serve_stale: float = 0.0  # seconds past expiry an entry may still answer (TTL 0)
    stale_verify: bool = False  # CoreDNS's 'verify': stale only once the upstreams fail; else 'immediate'
    keep_ttl: bool = False  # answers keep the TTL they were stored with instead of counting down
    disable_success: tuple[str, ...] = ()  # zones whose positive answers are not cached
    disable_denial: tuple[str, ...] = ()  # zones whose negative answers (and SERVFAIL) are not cached
    prefetch: int = 0  # queries that make an entry popular, refreshed before it expires; 0: no prefetch
    prefetch_window: float = DEFAULT_PREFETCH_WINDOW  # a longer gap between queries starts the count anew
    prefetch_percentage: int = DEFAULT_PREFETCH_PERCENTAGE  # share of the stored TTL left at the refresh


@dataclass(frozen=True, slots=True)
class HostsSettings:
    """CoreDNS's ``hosts``: static names from a hosts file (k3s's NodeHosts)."""

    path: Path
    entries: tuple[tuple[str, str], ...] = ()  # inline "IP name" lines from a Corefile
    ttl: int = DEFAULT_HOSTS_TTL
    reload: float = DEFAULT_HOSTS_RELOAD  # seconds between checks of the file; 0: never
    zones: tuple[str, ...] = ()  # the names it answers; empty: its server block's zones
    fallthrough: tuple[str, ...] = ()  # names within these it does not hold go to the next plugin


@dataclass(frozen=True, slots=True)
class ExternalSettings:
    """CoreDNS's ``k8s_external``: Services' external and load balancer IPs under zones of their own,
    ``<svc>.<ns>.<zone>``, with the zone's SOA and NS (named below ``apex``)."""

    zones: tuple[str, ...] = ()  # lowercase, no final dot; empty: its server block's zones
    ttl: int = DEFAULT_EXTERNAL_TTL  # within TTL, as CoreDNS's
    headless: bool = False  # also headless Services without external IPs: their ready endpoints
    fallthrough: tuple[str, ...] = ()  # NXDOMAIN names within these go to the next plugin
    apex: str = DEFAULT_EXTERNAL_APEX


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    """CoreDNS's ``chaos``: CH-class TXT answers for version.bind, version.server, authors.bind,
    hostname.bind and id.server."""

    version: str | None = None  # None: kdns's own
    authors: tuple[str, ...] = ()  # empty: kdns's


class AclAction(StrEnum):
    """What an ``acl`` rule does with the queries it matches (CoreDNS's words)."""

    ALLOW = "allow"
    BLOCK = "block"  # REFUSED
    FILTER = "filter"  # NOERROR, no records
    DROP = "drop"  # no answer at all


@dataclass(frozen=True, slots=True)
class AclRule:
    """One ``allow|block|filter|drop [type QTYPE...] [net SOURCE...]`` line: it matches a query whose
    type is one of ``qtypes`` (empty: any) from a client in one of ``nets`` (empty: any)."""

    action: AclAction
    qtypes: tuple[int, ...] = ()
    nets: tuple[str, ...] = ()  # networks in CIDR form


@dataclass(frozen=True, slots=True)
class AclSettings:
    """CoreDNS's ``acl``: the first rule that matches a query decides; none matching allows it."""

    rules: tuple[AclRule, ...]
    zones: tuple[str, ...] = ()  # the names it applies to; empty: its server block's zones


@dataclass(frozen=True, slots=True)
class TransferSettings:
    """CoreDNS's ``transfer``: zone transfers (AXFR; IXFR answered as AXFR) of the cluster's forward
    zones, over TCP, to the clients ``to`` names; others are REFUSED."""

    to: tuple[str, ...]  # "*" or networks in CIDR form, as ``parse_transfer_to`` writes them
    zones: tuple[str, ...] = ()  # the zones it answers transfers of; empty: its server block's zones


@dataclass(frozen=True, slots=True)
class LogRule:
    """One ``log`` line: a query within one of ``names`` whose response falls in one of ``classes``
    gets a line in ``format`` (CoreDNS's replacer placeholders)."""

    names: tuple[str, ...] = EVERY_ZONE  # lowercase, no final dot; "." for the root
    format: str = COMMON_LOG_FORMAT
    classes: frozenset[LogClass] = frozenset({LogClass.ALL})


@dataclass(frozen=True, slots=True)
class LogSettings:
    """CoreDNS's ``log``: a block's query log. A query is logged, or not, by the first rule (in the
    order written) with a name that holds it; a query no rule's names hold is not logged."""

    rules: tuple[LogRule, ...] = (LogRule(),)


@dataclass(frozen=True, slots=True)
class OpsSettings:
    """HTTP endpoints beside DNS: liveness, readiness and Prometheus metrics ("HOST:PORT"; None: off)."""

    health: str | None = None
    lameduck: float = 0.0  # on shutdown, keep answering (and /health 200) this long
    ready: str | None = None
    metrics: str | None = None


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """One server block (CoreDNS's unit of configuration): the zones it answers for, where it listens,
    and its plugins. A question goes to the block of the longest zone it falls in among the blocks
    on its port; one that falls in none is REFUSED, and one no plugin of its block answers gets
    SERVFAIL, as in CoreDNS."""

    zones: tuple[str, ...] = DEFAULT_ZONES  # lowercase, no final dot; "." for the root
    port: int = DEFAULT_PORT
    listen: tuple[str, ...] = DEFAULT_LISTEN
    kubernetes: bool = True  # answers the cluster zones (``ServeConfig.zone``) within its own
    # the rules of its ``rewrite`` lines and its ``template``s, in order: values of kdns.plugins'
    # rewrite and template modules (this layer names no plugin types)
    rewrites: tuple[object, ...] = ()
    templates: tuple[object, ...] = ()
    forward: tuple[ForwardSettings, ...] = ()  # one per ``forward`` stanza
    cache: CacheSettings | None = field(default_factory=CacheSettings)  # None: forwarded answers uncached
    hosts: HostsSettings | None = None
    external: ExternalSettings | None = None  # CoreDNS's k8s_external, run after hosts
    transfer: TransferSettings | None = None  # None: zone transfers are REFUSED
    chaos: ChaosSettings | None = None
    acl: tuple[AclSettings, ...] = ()
    whoami: bool = False  # names nothing else answers get the client's own address (CoreDNS's whoami)
    bufsize: int | None = None  # the largest UDP answer, whatever the client offers (CoreDNS's bufsize)
    loadbalance: bool = False  # rotate A/AAAA records between answers (CoreDNS's loadbalance)
    autopath: bool = False  # answer search-path queries server-side (CoreDNS's autopath @kubernetes)
    log: LogSettings | None = None  # CoreDNS's log: a line per query; None: no query is logged
    # the plugins of its Corefile block that see queries, in CoreDNS's order (coredns_plugin_enabled);
    # empty for a block the flags describe: the metrics name the plugins its settings stand for
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Everything ``kdns serve`` needs: the cluster, shared by every server block, and the blocks."""

    zone: ZoneSettings = field(default_factory=ZoneSettings)
    snapshots: tuple[Path, ...] = ()
    kube: KubeSettings | None = None  # set: follow the API instead of reading snapshots
    namespaces: tuple[str, ...] = ()
    labels: str | None = None
    servers: tuple[ServerSettings, ...] = (ServerSettings(),)
    max_udp_size: int = DEFAULT_MAX_UDP_SIZE
    tcp_idle_timeout: float = DEFAULT_TCP_IDLE_TIMEOUT
    max_tcp_connections: int = DEFAULT_MAX_TCP_CONNECTIONS
    answer_cache_size: int = 100_000
    workers: int = DEFAULT_WORKERS  # processes answering on the same sockets (SO_REUSEPORT)
    ops: OpsSettings = field(default_factory=OpsSettings)
    corefile: Path | None = None  # where this configuration came from, watched when reload is set
    imports: tuple[Path, ...] = ()  # files and glob patterns the Corefile imported, watched with it
    reload: float = 0.0  # seconds between checks of the Corefile; 0: never

    @property
    def listeners(self) -> dict[tuple[tuple[str, ...], int], tuple[ServerSettings, ...]]:
        """The server blocks by the addresses and port they listen on, in the order written."""
        groups: dict[tuple[tuple[str, ...], int], list[ServerSettings]] = {}
        for server in self.servers:
            groups.setdefault((server.listen, server.port), []).append(server)
        return {where: tuple(servers) for where, servers in groups.items()}
