"""The ``kdns`` command: ``kdns serve`` runs the server, ``kdns dump`` prints the zone it would serve.

Exit codes: 0 after a clean shutdown, 2 for bad usage, configuration or snapshot files.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from kdns import __version__, corefile
from kdns.app import build_zone, load_zone_from_api, run, same_source
from kdns.cluster.selector import LabelSelector, SelectorError
from kdns.config import (
    DEFAULT_SNAPSHOT,
    DEFAULT_ZONES,
    CacheSettings,
    ForwardSettings,
    HostsSettings,
    KubeSettings,
    OpsSettings,
    PodMode,
    ServeConfig,
    ZoneSettings,
)
from kdns.dump import dump_lines
from kdns.ops.address import split_address
from kdns.sources.connection import ConnectionSettingsError, in_cluster_available
from kdns.sources.snapshot import SnapshotError
from kdns.upstream.resolvconf import ResolvConfError, parse_upstream
from kdns.zone.names import BadName, ZoneLayout

log = logging.getLogger("kdns")
USAGE_ERROR = 2


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
        type=float,
        default=5.0,
        help="serve what has been synced after this long even if the API is not yet listed, "
        "as CoreDNS's startup_timeout (default: 5)",
    )
    kube.add_argument(
        "--watch-idle-timeout",
        metavar="SECONDS",
        type=float,
        default=90.0,
        help="restart a watch that sends nothing, not even a bookmark, for this long (default: 90)",
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
        type=int,
        default=5,
        help="TTL of answers and negative answers, 0-3600 (default: 5)",
    )
    zone.add_argument(
        "--pods",
        choices=[m.value for m in PodMode],
        default=PodMode.INSECURE.value,
        help="pod records <a-b-c-d>.<ns>.pod.<zone>: insecure answers any well-formed name, "
        "verified only IPs of existing pods, disabled none (default: insecure)",
    )
    zone.add_argument(
        "--endpoint-pod-names",
        action="store_true",
        help="name endpoints without a hostname after their pod instead of their dashed IP "
        "(CoreDNS 'endpoint_pod_names')",
    )
    zone.add_argument(
        "--ignore-empty-service",
        action="store_true",
        help="answer NXDOMAIN for ClusterIP Services without ready endpoints "
        "(CoreDNS 'ignore empty_service')",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        help="run a CoreDNS Corefile as written (kubeadm's, k3s's...); with it only --snapshot, "
        "--kubeconfig, --context and --log-level may be given",
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
        help="upstream resolvers, e.g. 10.0.0.2 or [fd00::2]:53 (default: the nameservers of --resolv-conf)",
    )
    fwd.add_argument(
        "--resolv-conf",
        metavar="FILE",
        type=Path,
        default=Path("/etc/resolv.conf"),
        help="where the default upstreams are listed (default: /etc/resolv.conf)",
    )
    fwd.add_argument(
        "--no-forward",
        action="store_true",
        help="answer REFUSED for names outside the zones instead of forwarding them",
    )
    fwd.add_argument(
        "--max-concurrent",
        metavar="N",
        type=int,
        default=1000,
        help="queries in flight upstream; beyond this clients get REFUSED (default: 1000)",
    )
    fwd.add_argument(
        "--forward-timeout",
        metavar="SECONDS",
        type=float,
        default=2.0,
        help="wait this long for one upstream before trying the next (default: 2)",
    )
    fwd.add_argument(
        "--forward-policy",
        choices=["random", "round_robin", "sequential"],
        default="random",
        help="order in which upstreams are tried (default: random)",
    )
    fwd.add_argument(
        "--max-fails",
        metavar="N",
        type=int,
        default=2,
        help="failures in a row that mark an upstream down until a health check passes (default: 2)",
    )
    fwd.add_argument(
        "--health-check",
        metavar="SECONDS",
        type=float,
        default=0.5,
        help="interval of health checks of a down upstream (default: 0.5)",
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
        type=int,
        help="cap on how long any forwarded answer is cached, as 'cache 30' "
        "(default: 3600 for answers, 1800 for negative answers)",
    )
    cache.add_argument(
        "--cache-capacity",
        metavar="N",
        type=int,
        default=9984,
        help="cached answers of each kind, positive and negative (default: 9984)",
    )
    cache.add_argument(
        "--serve-stale",
        metavar="SECONDS",
        type=float,
        default=0.0,
        help="answer from an expired entry (TTL 0) up to this long when every upstream "
        "fails (default: 0, off)",
    )
    ops = serve.add_argument_group(
        "probes, metrics and logs", "HOST:PORT addresses; ':8080' is every interface"
    )
    ops.add_argument(
        "--health",
        metavar="HOST:PORT",
        nargs="?",
        const=":8080",
        help="serve GET /health for liveness probes (alone: :8080)",
    )
    ops.add_argument(
        "--lameduck",
        metavar="SECONDS",
        type=float,
        default=0.0,
        help="on SIGTERM keep answering this long, /ready saying 503, before exiting (default: 0)",
    )
    ops.add_argument(
        "--ready",
        metavar="HOST:PORT",
        nargs="?",
        const=":8181",
        help="serve GET /ready: 200 once the zone is synced (alone: :8181)",
    )
    ops.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        nargs="?",
        const=":9153",
        help="serve Prometheus metrics at /metrics under CoreDNS's names (alone: :9153)",
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
        help="forward names the hosts file does not hold, instead of answering NXDOMAIN",
    )
    other.add_argument(
        "--autopath",
        action="store_true",
        help="walk a pod's search path on the server for names like example.com.<ns>.svc.<zone> and "
        "answer with a CNAME (CoreDNS's autopath @kubernetes; needs --pods verified)",
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
        type=int,
        default=1,
        help="answer in N processes sharing the address and port (SO_REUSEPORT), one per core; "
        "probes and metrics cover them all (default: 1)",
    )
    net.add_argument(
        "--listen",
        metavar="ADDR",
        action="extend",
        nargs="+",
        default=[],
        help="IPv4 or IPv6 addresses to listen on, UDP and TCP (default: 127.0.0.1)",
    )
    net.add_argument(
        "--port",
        type=int,
        default=5353,
        help="port for UDP and TCP; 0 picks a free one, shown in the ready line (default: 5353)",
    )
    net.add_argument(
        "--max-udp-size",
        metavar="BYTES",
        type=int,
        default=1232,
        help="largest UDP response for EDNS clients, 512-4096 (default: 1232)",
    )
    net.add_argument(
        "--tcp-idle-timeout",
        metavar="SECONDS",
        type=float,
        default=10.0,
        help="close TCP connections without a complete query for this long (default: 10)",
    )
    net.add_argument(
        "--max-tcp-connections",
        metavar="N",
        type=int,
        default=1000,
        help="TCP connections held at once; more are closed on arrival (default: 1000)",
    )
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log verbosity (default: info)",
    )

    dump = commands.add_parser(
        "dump",
        help="print the zone as it would be served",
        description="Print the zone as it would be served, in zone-file presentation format.",
    )
    _data_options(dump)
    return parser


def config_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServeConfig:
    """Validate the options; ``parser.error`` (exit 2) names the first bad one."""
    zones = tuple(z.rstrip(".").lower() for z in args.zone) or DEFAULT_ZONES
    try:
        ZoneLayout.of(zones)
    except (BadName, UnicodeError) as exc:
        parser.error(f"--zone: {exc}")
    if not 0 <= args.ttl <= 3600:
        parser.error(f"--ttl: {args.ttl} is outside 0-3600")
    if args.labels is not None:
        try:
            LabelSelector.parse(args.labels)
        except SelectorError as exc:
            parser.error(f"--labels: {exc}")
    listen: tuple[str, ...] = ("127.0.0.1",)
    extra = {}
    if args.command == "serve":
        for address in args.listen:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                parser.error(f"--listen: {address!r} is not an IPv4 or IPv6 address")
        listen = tuple(dict.fromkeys(args.listen)) or listen
        if not 0 <= args.port <= 65535:
            parser.error(f"--port: {args.port} is not a port number")
        if not 512 <= args.max_udp_size <= 4096:
            parser.error(f"--max-udp-size: {args.max_udp_size} is outside 512-4096")
        if args.tcp_idle_timeout <= 0:
            parser.error("--tcp-idle-timeout must be positive")
        if args.max_tcp_connections < 1:
            parser.error("--max-tcp-connections must be at least 1")
        for name in ("health", "ready", "metrics"):
            address = getattr(args, name)
            if address is not None:
                try:
                    split_address(address, 0)
                except ValueError as exc:
                    parser.error(f"--{name}: {exc}")
        if args.lameduck < 0:
            parser.error("--lameduck must not be negative")
        if args.autopath and args.pods != PodMode.VERIFIED.value:
            parser.error("--autopath needs --pods verified: the client's namespace comes from its pod")
        if not 1 <= args.workers <= 64:
            parser.error("--workers must be between 1 and 64")
        extra = {
            "workers": args.workers,
            "ops": OpsSettings(
                health=args.health, lameduck=args.lameduck, ready=args.ready, metrics=args.metrics
            ),
            "log_queries": args.log_queries,
            "loadbalance": args.loadbalance,
            "autopath": args.autopath,
            "hosts": HostsSettings(path=args.hosts, fallthrough=args.hosts_fallthrough)
            if args.hosts
            else None,
            "forward": _forward_settings(args, parser),
            "cache": _cache_settings(args, parser),
            "port": args.port,
            "max_udp_size": args.max_udp_size,
            "tcp_idle_timeout": args.tcp_idle_timeout,
            "max_tcp_connections": args.max_tcp_connections,
        }
    kube = _kube_settings(args, parser)
    return ServeConfig(
        kube=kube,
        zone=ZoneSettings(
            zones=zones,
            ttl=args.ttl,
            pods=PodMode(args.pods),
            endpoint_pod_names=args.endpoint_pod_names,
            ignore_empty_service=args.ignore_empty_service,
        ),
        snapshots=() if kube else (tuple(args.snapshot) or (DEFAULT_SNAPSHOT,)),
        namespaces=tuple(args.namespace),
        labels=args.labels,
        listen=listen,
        **extra,
    )


def _forward_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ForwardSettings | None:
    if args.no_forward:
        return None
    for upstream in args.upstream:
        try:
            parse_upstream(upstream)
        except ValueError as exc:
            parser.error(f"--upstream: {exc}")
    if args.max_concurrent < 1 or args.max_fails < 1:
        parser.error("--max-concurrent and --max-fails must be at least 1")
    if args.forward_timeout <= 0 or args.health_check <= 0:
        parser.error("--forward-timeout and --health-check must be positive")
    return ForwardSettings(
        upstreams=tuple(args.upstream),
        resolv_conf=args.resolv_conf,
        max_concurrent=args.max_concurrent,
        timeout=args.forward_timeout,
        max_fails=args.max_fails,
        health_check=args.health_check,
        policy=args.forward_policy,
        force_tcp=args.force_tcp,
        fallthrough_reverse=not args.no_fallthrough_reverse,
    )


def _cache_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> CacheSettings | None:
    if args.no_cache:
        return None
    if args.cache_capacity < 1 or (args.cache_ttl is not None and args.cache_ttl < 0) or args.serve_stale < 0:
        parser.error("--cache-capacity must be at least 1, --cache-ttl and --serve-stale not negative")
    defaults = CacheSettings()
    return CacheSettings(
        success_capacity=args.cache_capacity,
        denial_capacity=args.cache_capacity,
        success_ttl=defaults.success_ttl if args.cache_ttl is None else args.cache_ttl,
        denial_ttl=defaults.denial_ttl if args.cache_ttl is None else args.cache_ttl,
        min_ttl=min(defaults.min_ttl, args.cache_ttl) if args.cache_ttl is not None else defaults.min_ttl,
        serve_stale=args.serve_stale,
    )


def _kube_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> KubeSettings | None:
    """Which cluster to follow, if any: explicit options, else a pod's environment, else none."""
    explicit = args.kubeconfig is not None or args.context is not None or args.in_cluster
    if args.snapshot and explicit:
        parser.error("--snapshot and --kubeconfig/--context/--in-cluster are alternatives: choose one source")
    if args.in_cluster and (args.kubeconfig is not None or args.context is not None):
        parser.error("--in-cluster takes no --kubeconfig or --context")
    if args.startup_timeout < 0:
        parser.error("--startup-timeout must not be negative")
    if args.watch_idle_timeout <= 0:
        parser.error("--watch-idle-timeout must be positive")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        parser.error(f"--kubeconfig: {args.kubeconfig} is not a readable file")
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
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = from_corefile(args, parser) if getattr(args, "corefile", None) else config_from(args, parser)
    except corefile.CorefileError as exc:
        print(f"kdns: error: {exc}", file=sys.stderr)
        return USAGE_ERROR

    try:
        if args.command == "dump":
            zone = load_zone_from_api(config) if config.kube else build_zone(config)
            _print(dump_lines(zone))
            return 0
        return run(config)
    except (SnapshotError, ConnectionSettingsError, ResolvConfError, ValueError) as exc:
        print(f"kdns: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as exc:
        print(f"kdns: error: {exc.strerror or exc}", file=sys.stderr)
        return USAGE_ERROR


CORE_FILE_COMPANIONS = frozenset(
    {"command", "help", "corefile", "config", "snapshot", "kubeconfig", "context", "log_level", "workers"}
)


def from_corefile(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServeConfig:
    """The Corefile's configuration; ``--snapshot`` serves objects from files instead of the API,
    ``--kubeconfig``/``--context`` reach the API from outside the cluster."""
    subparser = parser._subparsers._group_actions[0].choices[args.command]
    given = [
        action.option_strings[0]
        for action in subparser._actions
        if action.dest not in CORE_FILE_COMPANIONS
        and action.option_strings
        and getattr(args, action.dest, None) != action.default
    ]
    if given:
        parser.error(f"--corefile configures everything; {', '.join(given)} cannot be given with it")
    config, warnings = corefile.load(args.corefile)
    for warning in warnings:
        log.warning("%s", warning)
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
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
