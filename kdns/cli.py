"""The ``kdns`` command: ``kdns serve`` runs the server, ``kdns dump`` prints the zone it would serve.

Every default, bound and choice of an option comes from ``kdns.config``, and so do the help texts
that show them. A value that does not parse, or falls outside its bounds, does not stop argparse:
every problem of the command line is gathered and reported at once, each naming its option.

Exit codes: 0 after a clean shutdown, 2 for bad usage, configuration or snapshot files.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from functools import partial
from pathlib import Path
from typing import NoReturn, TypeVar

import yaml

from kdns import __version__, corefile, swap
from kdns.app import build_zone, load_zone_from_api, run, same_source
from kdns.cluster.selector import LabelSelector
from kdns.config import (
    CACHE_TTL,
    COUNT,
    DEFAULT_CACHE_CAPACITY,
    DEFAULT_DENIAL_TTL,
    DEFAULT_FORWARD_TIMEOUT,
    DEFAULT_HEALTH,
    DEFAULT_HEALTH_CHECK,
    DEFAULT_LISTEN,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_FAILS,
    DEFAULT_MAX_TCP_CONNECTIONS,
    DEFAULT_MAX_UDP_SIZE,
    DEFAULT_METRICS,
    DEFAULT_PODS,
    DEFAULT_POLICY,
    DEFAULT_PORT,
    DEFAULT_READY,
    DEFAULT_RESOLV_CONF,
    DEFAULT_SNAPSHOT,
    DEFAULT_STARTUP_TIMEOUT,
    DEFAULT_SUCCESS_TTL,
    DEFAULT_TCP_IDLE_TIMEOUT,
    DEFAULT_TTL,
    DEFAULT_WATCH_IDLE_TIMEOUT,
    DEFAULT_WORKERS,
    DEFAULT_ZONES,
    EVERY_ZONE,
    HEALTH_PORT,
    MAX_UDP_SIZE,
    MAX_UPSTREAMS,
    METRICS_PORT,
    NOT_NEGATIVE,
    PORT,
    POSITIVE_SECONDS,
    READY_PORT,
    REVERSE_ZONES,
    SECONDS,
    TTL,
    WORKERS,
    Bounds,
    CacheSettings,
    ExternalSettings,
    ForwardPolicy,
    ForwardSettings,
    HostsSettings,
    KubeSettings,
    LogSettings,
    OpsSettings,
    PodMode,
    ServeConfig,
    ServerSettings,
    TransferSettings,
    ZoneSettings,
    choices,
    parse_choice,
    parse_ip,
    parse_number,
    parse_transfer_to,
    parse_upstream_address,
    parse_whole_number,
    split_address,
)
from kdns.corefile.report import describe
from kdns.dump import dump_lines
from kdns.sources.connection import ApiUnavailable, ConnectionSettingsError, in_cluster_available
from kdns.sources.snapshot import SnapshotError
from kdns.upstream.resolvconf import ResolvConfError
from kdns.zone.names import ZoneLayout, to_wire

log = logging.getLogger("kdns")
USAGE_ERROR = 2
# the options 'serve --corefile' takes beside the Corefile (a --config file may hold them too)
COREFILE_COMPANIONS = ("--snapshot", "--kubeconfig", "--context", "--workers", "--log-level")

_T = TypeVar("_T")
_Text = TypeVar("_Text")


@dataclasses.dataclass(frozen=True, slots=True)
class Unreadable:
    """An option's value that did not parse or is out of bounds, kept to be reported with the rest."""

    problem: str


def _reader(parse: Callable[[str], _T]) -> Callable[[str], _T | Unreadable]:
    """An argparse ``type`` that keeps a problem for later instead of exiting at the first one."""

    def read(text: str) -> _T | Unreadable:
        try:
            return parse(text)
        except ValueError as exc:
            return Unreadable(str(exc))

    return read


def _whole(bounds: Bounds) -> Callable[[str], int | Unreadable]:
    return _reader(partial(parse_whole_number, bounds=bounds))


def _seconds(bounds: Bounds) -> Callable[[str], float | Unreadable]:
    return _reader(partial(parse_number, bounds=bounds))


def _choice(kind: type[Enum]) -> dict[str, object]:
    """argparse keywords of an option taking one of ``kind``'s values."""
    return {"type": _reader(partial(parse_choice, kind)), "metavar": choices(kind)}


def _data_options(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("cluster data")
    data.add_argument(
        "--snapshot",
        metavar="FILE",
        action="extend",
        nargs="+",
        type=Path,
        default=[],
        help="cluster snapshot: the YAML or JSON that 'kubectl get namespaces,services,"
        "endpointslices,pods -A -o yaml' prints; several files are merged "
        f"(default: the example cluster, {DEFAULT_SNAPSHOT.name})",
    )
    data.add_argument(
        "--namespace",
        metavar="NS",
        action="extend",
        nargs="+",
        default=[],
        help="expose only these namespaces (CoreDNS 'namespaces'; default: all)",
    )
    data.add_argument(
        "--labels",
        metavar="SELECTOR",
        help="expose only Services matching this label selector, e.g. 'app=web,tier!=db' (CoreDNS 'labels')",
    )
    kube = parser.add_argument_group(
        "Kubernetes API",
        "follow a live cluster instead of snapshots; inside a pod (KUBERNETES_SERVICE_HOST and _PORT set) "
        "kdns follows its own cluster when no snapshot or kubeconfig is given",
    )
    kube.add_argument(
        "--kubeconfig", metavar="FILE", type=Path, help="kubeconfig file of the cluster to follow"
    )
    kube.add_argument("--context", metavar="NAME", help="kubeconfig context (default: its current context)")
    kube.add_argument(
        "--in-cluster",
        action="store_true",
        help="use the pod's service account and KUBERNETES_SERVICE_HOST/PORT",
    )
    kube.add_argument(
        "--startup-timeout",
        metavar="SECONDS",
        type=_seconds(SECONDS),
        default=DEFAULT_STARTUP_TIMEOUT,
        help="serve what has been synced after this long even if the API is not yet listed, "
        f"as CoreDNS's startup_timeout (default: {DEFAULT_STARTUP_TIMEOUT:g})",
    )
    kube.add_argument(
        "--watch-idle-timeout",
        metavar="SECONDS",
        type=_seconds(POSITIVE_SECONDS),
        default=DEFAULT_WATCH_IDLE_TIMEOUT,
        help="restart a watch that sends nothing, not even a bookmark, for this long "
        f"(default: {DEFAULT_WATCH_IDLE_TIMEOUT:g})",
    )
    zone = parser.add_argument_group("zone")
    zone.add_argument(
        "--zone",
        metavar="ZONE",
        action="extend",
        nargs="+",
        default=[],
        help="authoritative zones; reverse zones (in-addr.arpa, 10.in-addr.arpa, ip6.arpa) "
        "answer PTR, the first forward zone names PTR targets "
        f"(default: {' '.join(DEFAULT_ZONES)})",
    )
    zone.add_argument(
        "--ttl",
        metavar="SECONDS",
        type=_whole(TTL),
        default=DEFAULT_TTL,
        help=f"TTL of answers and negative answers, {TTL} (default: {DEFAULT_TTL})",
    )
    zone.add_argument(
        "--pods",
        **_choice(PodMode),
        default=DEFAULT_PODS,
        help="pod records <a-b-c-d>.<ns>.pod.<zone>: insecure answers any well-formed name, "
        f"verified only IPs of existing pods, disabled none (default: {DEFAULT_PODS.value})",
    )
    zone.add_argument(
        "--endpoint-pod-names",
        action="store_true",
        help="name endpoints without a hostname after their pod instead of their dashed IP "
        "(CoreDNS 'endpoint_pod_names')",
    )
    zone.add_argument(
        "--multicluster",
        metavar="ZONE",
        action="extend",
        nargs="+",
        default=[],
        help="answer <svc>.<ns>.svc.ZONE from ServiceImports (multicluster.x-k8s.io) and their "
        "EndpointSlices instead of Services, as CoreDNS's kubernetes 'multicluster'; ZONE is served "
        "as one of the zones (e.g. clusterset.local)",
    )
    zone.add_argument(
        "--ignore-empty-service",
        action="store_true",
        help="answer NXDOMAIN for ClusterIP Services without ready endpoints "
        "(CoreDNS 'ignore empty_service')",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kdns",
        description="Kubernetes cluster DNS: answers <svc>.<ns>.svc.<zone>, pod, SRV and PTR names "
        "as the Kubernetes DNS specification 1.1.0 and CoreDNS's kubernetes plugin do.",
    )
    parser.add_argument("--version", action="version", version=f"kdns {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="answer DNS over UDP and TCP",
        description="Answer DNS over UDP and TCP from the cluster snapshot (the example cluster when "
        "none is given). Logs one line when ready; SIGTERM or SIGINT stop it cleanly.",
    )
    serve.add_argument(
        "--corefile",
        metavar="FILE",
        type=Path,
        help="run a CoreDNS Corefile as written (kubeadm's, k3s's...); with it only "
        f"{', '.join(COREFILE_COMPANIONS[:-1])} and {COREFILE_COMPANIONS[-1]} may be given",
    )
    serve.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="a YAML file of these options by long name (e.g. 'port: 5300', 'upstream: "
        "[10.0.0.2]', 'loadbalance: true'); options on the command line come after it",
    )
    _data_options(serve)
    fwd = serve.add_argument_group(
        "forwarding", "names outside the zones go to upstream resolvers, as CoreDNS's forward and cache"
    )
    fwd.add_argument(
        "--upstream",
        metavar="ADDR[:PORT]",
        action="extend",
        nargs="+",
        default=[],
        help=f"upstream resolvers, at most {MAX_UPSTREAMS}, e.g. 10.0.0.2 or [fd00::2]:53 "
        "(default: the nameservers of --resolv-conf)",
    )
    fwd.add_argument(
        "--resolv-conf",
        metavar="FILE",
        type=Path,
        default=DEFAULT_RESOLV_CONF,
        help=f"where the default upstreams are listed (default: {DEFAULT_RESOLV_CONF})",
    )
    fwd.add_argument(
        "--no-forward",
        action="store_true",
        help="answer REFUSED for names outside the zones instead of forwarding them",
    )
    fwd.add_argument(
        "--max-concurrent",
        metavar="N",
        type=_whole(COUNT),
        default=DEFAULT_MAX_CONCURRENT,
        help="queries in flight upstream; beyond this clients get REFUSED "
        f"(default: {DEFAULT_MAX_CONCURRENT})",
    )
    fwd.add_argument(
        "--forward-timeout",
        metavar="SECONDS",
        type=_seconds(POSITIVE_SECONDS),
        default=DEFAULT_FORWARD_TIMEOUT,
        help=f"wait this long for one upstream before trying the next (default: {DEFAULT_FORWARD_TIMEOUT:g})",
    )
    fwd.add_argument(
        "--forward-policy",
        **_choice(ForwardPolicy),
        default=DEFAULT_POLICY,
        help=f"order in which upstreams are tried (default: {DEFAULT_POLICY})",
    )
    fwd.add_argument(
        "--max-fails",
        metavar="N",
        type=_whole(NOT_NEGATIVE),
        default=DEFAULT_MAX_FAILS,
        help="failures in a row that mark an upstream down until a health check passes; 0: never "
        f"(default: {DEFAULT_MAX_FAILS})",
    )
    fwd.add_argument(
        "--health-check",
        metavar="SECONDS",
        type=_seconds(POSITIVE_SECONDS),
        default=DEFAULT_HEALTH_CHECK,
        help=f"interval of health checks of a down upstream (default: {DEFAULT_HEALTH_CHECK:g})",
    )
    fwd.add_argument("--force-tcp", action="store_true", help="ask upstreams over TCP only")
    fwd.add_argument(
        "--no-fallthrough-reverse",
        action="store_true",
        help="answer NXDOMAIN for PTR names that are not cluster IPs instead of forwarding "
        "them (CoreDNS without 'fallthrough in-addr.arpa ip6.arpa')",
    )
    cache = serve.add_argument_group("cache of forwarded answers")
    cache.add_argument("--no-cache", action="store_true", help="do not cache forwarded answers")
    cache.add_argument(
        "--cache-ttl",
        metavar="SECONDS",
        type=_whole(CACHE_TTL),
        help=f"cap on how long any forwarded answer is cached, {CACHE_TTL}, as 'cache 30' "
        f"(default: {DEFAULT_SUCCESS_TTL} for answers, {DEFAULT_DENIAL_TTL} for negative answers)",
    )
    cache.add_argument(
        "--cache-capacity",
        metavar="N",
        type=_whole(COUNT),
        default=DEFAULT_CACHE_CAPACITY,
        help=f"cached answers of each kind, positive and negative (default: {DEFAULT_CACHE_CAPACITY})",
    )
    cache.add_argument(
        "--serve-stale",
        metavar="SECONDS",
        type=_seconds(SECONDS),
        default=CacheSettings().serve_stale,
        help="answer from an expired entry (TTL 0) up to this long when every upstream "
        f"fails (default: {CacheSettings().serve_stale:g}, off)",
    )
    ops = serve.add_argument_group(
        "probes, metrics and logs", f"HOST:PORT addresses; '{DEFAULT_HEALTH}' is every interface"
    )
    ops.add_argument(
        "--health",
        metavar="HOST:PORT",
        nargs="?",
        const=DEFAULT_HEALTH,
        help=f"serve GET /health for liveness probes (alone: {DEFAULT_HEALTH})",
    )
    ops.add_argument(
        "--lameduck",
        metavar="SECONDS",
        type=_seconds(SECONDS),
        default=OpsSettings().lameduck,
        help="on SIGTERM keep answering this long, /ready saying 503, before exiting "
        f"(default: {OpsSettings().lameduck:g})",
    )
    ops.add_argument(
        "--ready",
        metavar="HOST:PORT",
        nargs="?",
        const=DEFAULT_READY,
        help=f"serve GET /ready: 200 once the zone is synced (alone: {DEFAULT_READY})",
    )
    ops.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        nargs="?",
        const=DEFAULT_METRICS,
        help=f"serve Prometheus metrics at /metrics under CoreDNS's names (alone: {DEFAULT_METRICS})",
    )
    ops.add_argument(
        "--log-queries", action="store_true", help="log one line per query, as CoreDNS's log plugin"
    )
    other = serve.add_argument_group("other answers")
    other.add_argument(
        "--hosts",
        metavar="FILE",
        type=Path,
        help="answer the names of this hosts file (CoreDNS's hosts; re-read when it changes)",
    )
    other.add_argument(
        "--hosts-fallthrough",
        action="store_true",
        help="forward names the hosts file does not hold, instead of answering SERVFAIL (as "
        "CoreDNS's hosts without fallthrough); cluster names always go on to the cluster",
    )
    other.add_argument(
        "--external",
        metavar="ZONE",
        action="extend",
        nargs="+",
        default=[],
        help="answer <svc>.<ns>.ZONE with Services' external and load balancer IPs, and the "
        "zone's SOA and NS (CoreDNS's k8s_external)",
    )
    other.add_argument(
        "--external-headless",
        action="store_true",
        help="also answer headless Services without external IPs in the --external zones, with "
        "their ready endpoints (k8s_external's headless)",
    )
    other.add_argument(
        "--autopath",
        action="store_true",
        help="walk a pod's search path on the server for names like example.com.<ns>.svc.<zone> and "
        "answer with a CNAME (CoreDNS's autopath @kubernetes; needs --pods verified)",
    )
    other.add_argument(
        "--transfer-to",
        metavar="ADDR",
        action="extend",
        nargs="+",
        default=[],
        help="allow zone transfers (AXFR; IXFR is answered as AXFR) of the cluster's forward zones "
        "over TCP to these clients: IP addresses, CIDR networks (10.0.0.0/8), or '*' for any "
        "(CoreDNS's 'transfer { to ... }'); others are REFUSED (default: none, every transfer is REFUSED)",
    )
    other.add_argument(
        "--loadbalance",
        action="store_true",
        help="rotate A and AAAA records between answers (CoreDNS's loadbalance)",
    )
    net = serve.add_argument_group("network")
    net.add_argument(
        "--workers",
        metavar="N",
        type=_whole(WORKERS),
        default=DEFAULT_WORKERS,
        help="answer in N processes sharing the address and port (SO_REUSEPORT), one per core; "
        f"probes and metrics cover them all; with --corefile too, {WORKERS} (default: {DEFAULT_WORKERS})",
    )
    net.add_argument(
        "--listen",
        metavar="ADDR",
        action="extend",
        nargs="+",
        default=[],
        help=f"IPv4 or IPv6 addresses to listen on, UDP and TCP (default: {' '.join(DEFAULT_LISTEN)})",
    )
    net.add_argument(
        "--port",
        type=_whole(PORT),
        default=DEFAULT_PORT,
        help=f"port for UDP and TCP; 0 picks a free one, shown in the ready line (default: {DEFAULT_PORT})",
    )
    net.add_argument(
        "--max-udp-size",
        metavar="BYTES",
        type=_whole(MAX_UDP_SIZE),
        default=DEFAULT_MAX_UDP_SIZE,
        help=f"largest UDP response for EDNS clients, {MAX_UDP_SIZE} (default: {DEFAULT_MAX_UDP_SIZE})",
    )
    net.add_argument(
        "--tcp-idle-timeout",
        metavar="SECONDS",
        type=_seconds(POSITIVE_SECONDS),
        default=DEFAULT_TCP_IDLE_TIMEOUT,
        help="close TCP connections without a complete query for this long "
        f"(default: {DEFAULT_TCP_IDLE_TIMEOUT:g})",
    )
    net.add_argument(
        "--max-tcp-connections",
        metavar="N",
        type=_whole(COUNT),
        default=DEFAULT_MAX_TCP_CONNECTIONS,
        help="TCP connections held at once; more are closed on arrival "
        f"(default: {DEFAULT_MAX_TCP_CONNECTIONS})",
    )
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log verbosity (default: info)",
    )

    _data_options(
        commands.add_parser(
            "dump",
            help="print the zone as it would be served",
            description="Print the zone as it would be served, in zone-file presentation format.",
        )
    )

    check = commands.add_parser(
        "check",
        help="say what kdns would run for a Corefile, without serving",
        description="Read a CoreDNS Corefile as 'kdns serve --corefile' would, without serving or "
        "touching the network, and print what each server block and plugin maps to and every option "
        "kdns ignores. Exit 0 when kdns can run it, 2 with every problem otherwise. Run it on a "
        "cluster's coredns ConfigMap before swapping CoreDNS for kdns.",
    )
    check.add_argument("--corefile", metavar="FILE", type=Path, required=True, help="the Corefile to check")
    check.add_argument(
        "--import-dir",
        metavar="DIR",
        type=Path,
        help="where to find imported files whose directory does not exist here (the files of a "
        "coredns-custom ConfigMap, mounted at /etc/coredns/custom in the cluster)",
    )
    swap.add_parser(commands)
    return parser


class Problems:
    """What is wrong with a command line, each problem after the option it concerns."""

    def __init__(self, args: argparse.Namespace) -> None:
        """Start with the values argparse could not read (``--ttl: 5000 is outside 0-3600``)."""
        self.command: str | None = args.command
        self.found = [
            f"--{dest.replace('_', '-')}: {value.problem}"
            for dest, value in vars(args).items()
            if isinstance(value, Unreadable)
        ]

    def add(self, option: str, problem: str) -> None:
        self.found.append(f"{option}: {problem}")

    def note(self, problem: str) -> None:
        """A problem of several options together, written out whole."""
        self.found.append(problem)

    def parse(self, option: str, parse: Callable[[_Text], _T], text: _Text) -> _T | None:
        """``parse(text)``; None, and the problem noted, when it raises ValueError."""
        try:
            return parse(text)
        except ValueError as exc:
            self.add(option, str(exc))
            return None

    def exit_if_any(self, parser: argparse.ArgumentParser) -> None:
        """Report every problem (exit code 2, as argparse's own errors) if there is one."""
        if self.found:
            _usage_error(command_parser(parser, self.command), self.found)


def _usage_error(parser: argparse.ArgumentParser, problems: Sequence[str]) -> NoReturn:
    """Exit 2 saying every problem, one ``kdns: error:`` line each, first; the usage comes after."""
    sys.stderr.write("".join(f"kdns: error: {problem}\n" for problem in problems))
    parser.print_usage(sys.stderr)
    parser.exit(USAGE_ERROR)


def command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The parser of ``kdns COMMAND`` (``parser`` itself when there is no such command)."""
    return parser._subparsers._group_actions[0].choices.get(command, parser)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors say what is wrong on the first line of stderr, the usage after it."""

    def error(self, message: str) -> NoReturn:
        _usage_error(self, [message])


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``argv`` parsed; a word the command does not know is an error, a mistyped option's naming
    the option it is nearest to (``--upstrem: no such option; did you mean --upstream?``)."""
    args, unknown = parser.parse_known_args(argv)
    if not unknown:
        return args
    command = command_parser(parser, args.command)
    options = [word for word in unknown if word.startswith("-")]
    if not options:
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    _usage_error(command, [_no_such_option(word.split("=", 1)[0], command) for word in options])


def _no_such_option(option: str, parser: argparse.ArgumentParser) -> str:
    known = [name for name in parser._option_string_actions if name.startswith("--")]
    nearest = difflib.get_close_matches(option, known, n=1)
    if nearest:
        return f"{option}: no such option; did you mean {nearest[0]}?"
    return f"{option}: no such option ('{parser.prog} --help' lists them)"


def config_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServeConfig:
    """The configuration the options ask for; every problem with them is reported at once (exit 2)."""
    multicluster = tuple(dict.fromkeys(z.rstrip(".").lower() for z in args.multicluster))
    zones = tuple(z.rstrip(".").lower() for z in args.zone) or DEFAULT_ZONES
    zones += tuple(z for z in multicluster if z not in zones)  # served by the cluster too
    problems = Problems(args)
    problems.parse("--zone", ZoneLayout.of, zones)
    if args.labels is not None:
        problems.parse("--labels", LabelSelector.parse, args.labels)
    if args.command == "serve":
        _check_serve_options(args, problems)
    _check_kube_options(args, problems)
    problems.exit_if_any(parser)
    kube = _kube_settings(args)
    return ServeConfig(
        kube=kube,
        zone=ZoneSettings(
            zones=zones,
            ttl=args.ttl,
            pods=args.pods,
            endpoint_pod_names=args.endpoint_pod_names,
            ignore_empty_service=args.ignore_empty_service,
            fallthrough=_fallthrough(args),
            multicluster=multicluster,
        ),
        snapshots=() if kube else (tuple(args.snapshot) or (DEFAULT_SNAPSHOT,)),
        namespaces=tuple(args.namespace),
        labels=args.labels,
        **(_serve_settings(args, zones) if args.command == "serve" else {}),
    )


def _check_serve_options(args: argparse.Namespace, problems: Problems) -> None:
    """The problems of ``serve``'s options that their types alone cannot see."""
    for address in args.listen:
        problems.parse("--listen", parse_ip, address)
    for name, port in (("health", HEALTH_PORT), ("ready", READY_PORT), ("metrics", METRICS_PORT)):
        address = getattr(args, name)
        if address is not None:
            problems.parse(f"--{name}", partial(split_address, default_port=port), address)
    for upstream in args.upstream:
        problems.parse("--upstream", parse_upstream_address, upstream)
    for to in args.transfer_to:
        problems.parse("--transfer-to", parse_transfer_to, to)
    if len(args.upstream) > MAX_UPSTREAMS:
        problems.add("--upstream", f"more than {MAX_UPSTREAMS} upstreams")
    for zone in args.external:
        problems.parse("--external", to_wire, zone)
    if args.external_headless and not args.external:
        problems.note("--external-headless needs --external: the zones the Services are named in")
    if args.autopath and args.pods != PodMode.VERIFIED:
        problems.note("--autopath needs --pods verified: the client's namespace comes from its pod")


def _serve_settings(args: argparse.Namespace, zones: tuple[str, ...]) -> dict[str, object]:
    """The ServeConfig fields only ``serve`` has, from checked options."""
    return {
        "servers": (_server_settings(args, zones),),
        "max_udp_size": args.max_udp_size,
        "tcp_idle_timeout": args.tcp_idle_timeout,
        "max_tcp_connections": args.max_tcp_connections,
        "workers": args.workers,
        "ops": OpsSettings(
            health=args.health, lameduck=args.lameduck, ready=args.ready, metrics=args.metrics
        ),
    }


def _server_settings(args: argparse.Namespace, zones: tuple[str, ...]) -> ServerSettings:
    """The one server block the options describe: the cluster zones, then the hosts file and
    upstream for every other name when they are given (the block is then '.')."""
    forward = _forward_settings(args)
    hosts = None
    if args.hosts:  # the cluster's names stay the cluster's, as with --hosts-fallthrough
        hosts = HostsSettings(path=args.hosts, fallthrough=EVERY_ZONE if args.hosts_fallthrough else zones)
    external_zones = tuple(dict.fromkeys(z.rstrip(".").lower() for z in args.external))
    external = None
    if external_zones:
        external = ExternalSettings(zones=external_zones, headless=args.external_headless)
    return ServerSettings(
        zones=EVERY_ZONE if forward is not None or hosts is not None else zones + external_zones,
        external=external,
        port=args.port,
        listen=tuple(dict.fromkeys(args.listen)) or DEFAULT_LISTEN,
        forward=(forward,) if forward is not None else (),
        cache=_cache_settings(args),
        hosts=hosts,
        transfer=_transfer_settings(args),
        loadbalance=args.loadbalance,
        autopath=args.autopath,
        log=LogSettings() if args.log_queries else None,  # CoreDNS's plain 'log'
    )


def _transfer_settings(args: argparse.Namespace) -> TransferSettings | None:
    if not args.transfer_to:
        return None
    return TransferSettings(to=tuple(dict.fromkeys(parse_transfer_to(to) for to in args.transfer_to)))


def _fallthrough(args: argparse.Namespace) -> tuple[str, ...]:
    """The cluster's NXDOMAIN names that go upstream: reverse names, unless told otherwise."""
    forwarding = args.command == "serve" and not args.no_forward
    return REVERSE_ZONES if forwarding and not args.no_fallthrough_reverse else ()


def _forward_settings(args: argparse.Namespace) -> ForwardSettings | None:
    if args.no_forward:
        return None
    return ForwardSettings(
        upstreams=tuple(args.upstream),
        resolv_conf=args.resolv_conf,
        max_concurrent=args.max_concurrent,
        timeout=args.forward_timeout,
        max_fails=args.max_fails,
        health_check=args.health_check,
        policy=args.forward_policy,
        force_tcp=args.force_tcp,
    )


def _cache_settings(args: argparse.Namespace) -> CacheSettings | None:
    if args.no_cache:
        return None
    defaults, ttl = CacheSettings(), args.cache_ttl
    return CacheSettings(
        success_capacity=args.cache_capacity,
        denial_capacity=args.cache_capacity,
        success_ttl=defaults.success_ttl if ttl is None else ttl,
        denial_ttl=defaults.denial_ttl if ttl is None else ttl,
        min_ttl=defaults.min_ttl if ttl is None else min(defaults.min_ttl, ttl),
        serve_stale=args.serve_stale,
        stale_verify=True,  # as --serve-stale says: only once every upstream fails
    )


def _kube_options_given(args: argparse.Namespace) -> bool:
    return args.kubeconfig is not None or args.context is not None or args.in_cluster


def _check_kube_options(args: argparse.Namespace, problems: Problems) -> None:
    if args.snapshot and _kube_options_given(args):
        problems.note(
            "--snapshot and --kubeconfig/--context/--in-cluster are alternatives: choose one source"
        )
    if args.in_cluster and (args.kubeconfig is not None or args.context is not None):
        problems.note("--in-cluster takes no --kubeconfig or --context")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        problems.add("--kubeconfig", f"{args.kubeconfig} is not a readable file")


def _kube_settings(args: argparse.Namespace) -> KubeSettings | None:
    """Which cluster to follow, if any: explicit options, else a pod's environment, else none."""
    explicit = _kube_options_given(args)
    if not explicit and (args.snapshot or not in_cluster_available()):
        return None
    return KubeSettings(
        kubeconfig=args.kubeconfig,
        context=args.context,
        in_cluster=args.in_cluster or not explicit,
        startup_timeout=args.startup_timeout,
        idle_timeout=args.watch_idle_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = with_config_file(argv, parser)
    except ConfigFileError as exc:
        print(f"kdns: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    args = parse_command_line(parser, argv)
    if args.command == "check":
        return check(args)
    if args.command == "swap":
        return swap.main(args)
    logging.basicConfig(
        level=getattr(args, "log_level", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = from_corefile(args, parser) if getattr(args, "corefile", None) else config_from(args, parser)
    except corefile.CorefileError as exc:
        for problem in exc.problems:
            print(f"kdns: error: {problem}", file=sys.stderr)
        return USAGE_ERROR

    try:
        if args.command == "dump":
            zone = load_zone_from_api(config) if config.kube else build_zone(config)
            _print(dump_lines(zone))
            return 0
        return run(config)
    except SnapshotError as exc:
        for problem in exc.problems:
            print(f"kdns: error: {problem}", file=sys.stderr)
        return USAGE_ERROR
    except (ConnectionSettingsError, ApiUnavailable, ResolvConfError, ValueError) as exc:
        print(f"kdns: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as exc:
        print(f"kdns: error: {exc.strerror or exc}", file=sys.stderr)
        return USAGE_ERROR


def check(args: argparse.Namespace) -> int:
    """``kdns check``: what kdns would run for a Corefile, or every problem with it (exit 2)."""
    try:
        config, warnings = corefile.load(args.corefile, import_dir=args.import_dir)
    except corefile.CorefileError as exc:
        for problem in exc.problems:
            print(f"kdns: error: {problem}", file=sys.stderr)
        print(f"kdns: {args.corefile}: {len(exc.problems)} problem(s); kdns cannot run it", file=sys.stderr)
        return USAGE_ERROR
    _print(describe(config, warnings))
    print(f"kdns: {args.corefile}: kdns can run it")
    return 0


def from_corefile(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServeConfig:
    """The Corefile's configuration; ``--snapshot`` serves objects from files instead of the API,
    ``--kubeconfig``/``--context`` reach the API from outside the cluster, ``--workers`` answers in
    that many processes; any other option is an error (``COREFILE_COMPANIONS``)."""
    subparser = command_parser(parser, args.command)
    given = [
        action.option_strings[0]
        for action in subparser._actions
        if action.option_strings
        and action.option_strings[0] not in ("--corefile", *COREFILE_COMPANIONS)
        and action.dest != "help"
        and getattr(args, action.dest, None) != action.default
    ]
    problems = Problems(args)
    if given:
        problems.note(f"--corefile configures everything; {', '.join(given)} cannot be given with it")
    problems.exit_if_any(parser)
    config, warnings = corefile.load(args.corefile)
    for warning in warnings:
        log.warning("%s", warning)
    outside = KubeSettings(args.kubeconfig, args.context) if args.kubeconfig or args.context else None
    config = dataclasses.replace(config, workers=args.workers)
    return same_source(config, ServeConfig(snapshots=tuple(args.snapshot), kube=outside))


class ConfigFileError(Exception):
    """A --config file cannot be used; the message names the file and the problem."""


def with_config_file(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with the options of a ``--config FILE`` put where the flag was (later flags win)."""
    for i, word in enumerate(argv):
        if word == "--config" and i + 1 < len(argv):
            path, rest = Path(argv[i + 1]), argv[i + 2 :]
        elif word.startswith("--config="):
            path, rest = Path(word.split("=", 1)[1]), argv[i + 1 :]
        else:
            continue
        return [*argv[:i], *_options_of(path, argv[0] if argv else "serve", parser), *rest]
    return argv


def _options_of(path: Path, command: str, parser: argparse.ArgumentParser) -> list[str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigFileError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: expected a mapping of option names to values")
    choices = parser._subparsers._group_actions[0].choices
    known = choices[command]._option_string_actions if command in choices else {}
    words: list[str] = []
    for key, value in data.items():
        option = "--" + str(key).replace("_", "-")
        if option not in known or option in ("--config", "--help"):
            raise ConfigFileError(f"{path}: {key!r} is not an option of kdns {command}")
        if value is True:
            words.append(option)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            words += [option, *(str(v) for v in value)]
        else:
            words += [option, str(value)]
    return words


def _print(lines: Iterable[str]) -> None:
    try:
        for line in lines:
            print(line)
    except BrokenPipeError:
        sys.stderr.close()
