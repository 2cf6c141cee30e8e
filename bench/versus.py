"""``python -m bench.versus``: kdns beside CoreDNS, both running kubeadm's Corefile and following a
real kube-apiserver, in one run on one machine.

CoreDNS is v1.15.0 built from tests/coredns/go.mod; both servers read the same Corefile text
(``tests.support.coredns.kubeadm_corefile``: kubeadm's, moved to loopback, forwarding to Knot DNS on
127.0.0.1). etcd and kube-apiserver (no controller manager) keep the generated cluster between runs
(``bench.real_api.loaded``) and run on dnsperf's CPU, as do Knot and this script.

- Load: the 1,000-Service cluster and query mix of ``bench.run``, then forwarded names answered from
  the cache; first one CoreDNS (GOMAXPROCS=1) and one kdns process on the same CPU, loaded in turn by
  dnsperf on the other; then CoreDNS with GOMAXPROCS unset against ``kdns --workers 2``, servers and
  dnsperf sharing both CPUs. Each at half its maximum rate for latency percentiles.
- Scale: the 10,000-Service cluster of ``bench.real_api`` (about 100,000 endpoints): time from start
  to ``/ready`` 200, resident memory, and watch event to answer (an EndpointSlice address changed
  through the API).

Raw data go to bench/out/versus/; the figures to the "Beside CoreDNS" section of bench/README.md
(``--quick``: bench/out/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import cluster, outside, queries, real_api, report
from bench.informer import change_latency
from bench.lib import coredns, dnsperf, harness, host, kdns, options, servers
from bench.lib.dnsperf import Load
from bench.lib.harness import say
from bench.lib.measure import measure, summarise
from bench.lib.metrics import scrape
from bench.lib.processes import CLIENT_CPU, SERVER_CPU, CpuSet
from bench.lib.servers import HOST, Server
from bench.versus_report import render

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "versus"
SERVERS = ("kdns", "coredns")
KINDS = ("cluster", "forwarded")
# Queries sent upstream: kdns counts them as CoreDNS's forward plugin did before 1.11; CoreDNS 1.15 counts
# them in its proxy's request duration histogram.
FORWARDED = {
    "kdns": ("coredns_forward_requests_total", {}),
    "coredns": ("coredns_proxy_request_duration_seconds_count", {"proxy_name": "forward"}),
}
BOTH_CPUS = (CLIENT_CPU, SERVER_CPU)


@dataclass(frozen=True)
class Setup:
    """Where the servers and dnsperf run, and how many cores each server is told to use."""

    name: str
    label: str
    server_cpus: CpuSet
    client_cpus: CpuSet
    kdns_workers: int
    gomaxprocs: int | None


SETUPS = (
    Setup("one_cpu", "One CPU: kdns, one process; CoreDNS, GOMAXPROCS=1", SERVER_CPU, CLIENT_CPU, 1, 1),
    Setup("all_cpus", "Both CPUs: `--workers 2`; GOMAXPROCS unset", BOTH_CPUS, BOTH_CPUS, 2, None),
)  # fmt: skip


@dataclass
class Running:
    """A server under load and the port of its metrics."""

    server: Server
    metrics_port: int


def start(name: str, setup: Setup, corefile: coredns.Corefile, log: Path, timeout: float) -> Server:
    """kdns or CoreDNS on ``setup``'s CPUs running ``corefile``, once its ``/ready`` is 200."""
    if name == "kdns":
        return kdns.start(
            corefile=corefile, log=log, cpus=setup.server_cpus, workers=setup.kdns_workers, timeout=timeout
        )
    return coredns.start(corefile, log, setup.server_cpus, gomaxprocs=setup.gomaxprocs, timeout=timeout)


def once_ready(server: Server) -> dict[str, Any]:
    """A just started server's figures: seconds to ready, then, 1 s later (allocations settled), its
    memory (/proc/PID/status, KiB) and CPU seconds."""
    time.sleep(1.0)
    return {"ready_s": ready_s(server), **server.memory_kib(), "cpu_s": server.cpu_seconds()}


def ready_s(server: Server) -> float:
    """Seconds from spawning ``server`` to its first ``/ready`` 200."""
    ready_at, started = getattr(server, "ready_at", None), getattr(server, "started", 0.0)
    if ready_at is None:
        raise RuntimeError(f"{server.name} was not started from a Corefile")
    return ready_at - started


def counted(running: Running, load: Load, output: Path, cpus: CpuSet) -> dict[str, Any]:
    """``measure`` with the queries the server sent upstream over the run (its metrics)."""
    metric, labels = FORWARDED[running.server.name]
    before = scrape(running.metrics_port).value(metric, **labels)
    result = measure(running.server, load, output, cpus=cpus)
    sent = scrape(running.metrics_port).value(metric, **labels) - before
    return result | {
        "forward_requests": sent,
        "forward_metric": metric,
        "upstream_per_query": sent / (result["completed"] or 1),
    }


# -- load -------------------------------------------------------------------------------------------------
def load_setup(
    setup: Setup,
    files: dict[str, Path],
    kubeconfig: Path,
    upstream: str,
    *,
    args: argparse.Namespace,
    out: Path,
) -> dict[str, Any]:
    """Both servers on ``setup``: a warm-up pass over each query file, ``repeats`` runs of each file
    against each server in turn, then each at half its median QPS with ``-v``."""
    where = out / setup.name
    loads = {
        kind: Load(path, args.clients, args.outstanding, args.seconds, setup.client_cpus)
        for kind, path in files.items()
    }
    started: dict[str, Running] = {}
    try:
        for name in SERVERS:
            corefile = coredns.kubeadm(where / name / "Corefile", kubeconfig=kubeconfig, upstream=upstream)
            server = start(name, setup, corefile, where / name / f"{name}.log", args.timeout)
            started[name] = Running(server, corefile.ports.metrics)
            say(f"{setup.name}: {name} on port {server.port}, ready {ready_s(server):.2f} s after start")
        for name, running in started.items():
            for kind, load in loads.items():
                output = where / f"dnsperf-{name}-{kind}-warmup.txt"
                dnsperf.run(load, running.server.port, output, once=True, timeout=300)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {(k, n): [] for k in KINDS for n in SERVERS}
        for i in range(1, args.repeats + 1):
            for kind in KINDS:
                for name, running in started.items():
                    output = where / f"dnsperf-{name}-{kind}-{i}.txt"
                    result = counted(running, loads[kind], output, setup.server_cpus)
                    runs[kind, name].append(result)
                    say(f"{setup.name} run {i} {kind} {name}: {result['qps']:,.0f} qps, "
                        f"{result['cpu_us_per_query']:.2f} us/query, {result['lost']} lost")  # fmt: skip
        summaries = {kind: {name: summarise(name, runs[kind, name]) for name in SERVERS} for kind in KINDS}
        for kind in KINDS:
            for name, running in started.items():
                rate = max(1, round(summaries[kind][name]["median"]["qps"] / 2))
                half = replace(loads[kind], seconds=args.latency_seconds, rate=rate)
                output = where / f"dnsperf-{name}-{kind}-half.txt"
                result = measure(running.server, half, output, verbose=True, cpus=setup.server_cpus)
                summaries[kind][name]["half_rate"] = result
                say(f"{setup.name} {kind} {name} at -Q {rate}: p99 {result['latency']['p99'] * 1e3:.3f} ms")
        for name, running in started.items():
            memory = running.server.memory_kib()
            for kind in KINDS:
                summaries[kind][name]["rss_kib"] = memory.get("VmRSS", 0)
    finally:
        for running in started.values():
            running.server.stop()
    return {
        "label": setup.label,
        "server_cpus": setup.server_cpus,
        "client_cpus": setup.client_cpus,
        "kdns_workers": setup.kdns_workers,
        "gomaxprocs": setup.gomaxprocs,
        "kinds": summaries,
    }


def load_part(args: argparse.Namespace, out: Path, upstream: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Both setups, with the API server holding ``snapshot``'s cluster."""
    query_list = queries.build(snapshot, args.queries, seed=args.seed)
    files = {
        "cluster": queries.write(query_list, out / "queries-cluster.txt"),
        "forwarded": queries.write_lines(
            outside.forwarded_queries(outside.outside_names(args.names), args.queries, args.seed),
            out / "queries-forwarded.txt",
        ),
    }
    objects = real_api.api_objects(snapshot["items"])
    directory = real_api.data_directory(args.services, None, args.seed)
    result: dict[str, Any] = {"cluster": cluster.summary(snapshot), "queries": len(query_list)}
    with real_api.loaded(directory, objects) as plane:
        for setup in SETUPS:
            say(f"-- {setup.label}")
            result[setup.name] = load_setup(setup, files, plane.kubeconfig, upstream, args=args, out=out)
    return result


# -- scale ------------------------------------------------------------------------------------------------
def scale_part(args: argparse.Namespace, out: Path, upstream: str) -> dict[str, Any]:
    """Each server in turn on one CPU following the large cluster: start to ready and memory, ``starts``
    times; on the last start, watch event to answer."""
    generated = cluster.generate(
        args.scale_services, seed=args.seed, endpoints_per_service=args.endpoints_per_service
    )
    objects = real_api.api_objects(generated["items"])
    pods = real_api.generated_pods(generated["items"]) if args.pods_verified else None
    del generated
    timed = real_api.headless_member(objects, 5)
    name_asked = real_api.member_name(timed)
    directory = real_api.data_directory(args.scale_services, args.endpoints_per_service, args.seed)
    setup = SETUPS[0]
    result: dict[str, Any] = {
        "cluster": real_api.summary(objects) | {"endpoints_per_service": args.endpoints_per_service},
        "timed_name": name_asked,
        "servers": {name: {"starts": []} for name in SERVERS},
    }
    where = out / "scale"
    with real_api.loaded(directory, objects, pods=pods) as plane:
        api = real_api.client(plane.kubeconfig)
        try:
            change = real_api.mover(api, timed)
            for i in range(1, args.starts + 1):
                for name in SERVERS:
                    corefile = coredns.kubeadm(
                        where / name / "Corefile", kubeconfig=plane.kubeconfig, upstream=upstream
                    )
                    server = start(name, setup, corefile, where / name / f"{name}-{i}.log", args.timeout)
                    try:
                        start_ = once_ready(server)
                        result["servers"][name]["starts"].append(start_)
                        say(f"scale {i} {name}: ready after {start_['ready_s']:.2f} s, "
                            f"VmRSS {start_.get('VmRSS', 0) / 1024:.0f} MB")  # fmt: skip
                        if i == args.starts:
                            latency = change_latency(server.port, name_asked, change, args.updates, args.gap)
                            latency.pop("samples")
                            result["servers"][name]["latency"] = latency
                            result["servers"][name]["after_updates"] = server.memory_kib()
                            lat = latency["latency_ms"]
                            say(f"scale {name}: watch event to answer p50 {lat['p50']:.2f} ms, "
                                f"p99 {lat['p99']:.2f} ms")  # fmt: skip
                    finally:
                        server.stop()
        finally:
            api.close()
        if pods is not None:
            result["verified"] = verified_part(plane.kubeconfig, args, where, upstream)
            result["verified"]["load"] = json.loads((directory / real_api.PODS_LOADED).read_text())
    result["load"] = json.loads((directory / "loaded.json").read_text())  # how long writing it took
    return result


def verified_part(kubeconfig: Path, args: argparse.Namespace, where: Path, upstream: str) -> dict[str, Any]:
    """Each server once on one CPU with ``pods verified``, following the cluster's Pods as well: start
    to ready, CPU and memory."""
    servers: dict[str, Any] = {}
    for name in SERVERS:
        corefile = coredns.kubeadm(
            where / name / "Corefile-verified", kubeconfig=kubeconfig, upstream=upstream, pods="verified"
        )
        server = start(name, SETUPS[0], corefile, where / name / f"{name}-verified.log", args.timeout)
        try:
            servers[name] = once_ready(server)
        finally:
            server.stop()
        mib = servers[name].get("VmRSS", 0) / 1024
        say(f"pods verified {name}: ready after {servers[name]['ready_s']:.2f} s, VmRSS {mib:.0f} MB")
    return {"servers": servers}


# -- the run ----------------------------------------------------------------------------------------------
def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    started = time.monotonic()
    machine = host.machine()  # before pinning: nproc counts the CPUs this process may use
    os.sched_setaffinity(0, {CLIENT_CPU})  # and so the control plane, started from here
    for old in out.glob("**/dnsperf-*.txt"):
        old.unlink()
    snapshot = cluster.generate(args.services, seed=args.seed)
    names = outside.outside_names(args.names)
    zones = outside.upstream_zones(names, outside.external_targets(snapshot))
    knot = servers.start_knot(zones, out / "knot", CLIENT_CPU)
    try:
        upstream = f"{HOST}:{knot.port}"
        result: dict[str, Any] = {
            "date": host.date(),
            "machine": machine,
            "versions": host.versions() | {"coredns": coredns_version()},
            "quick": args.quick,
            "load": {
                "clients": args.clients,
                "outstanding": args.outstanding,
                "seconds": args.seconds,
                "repeats": args.repeats,
                "latency_seconds": args.latency_seconds,
                "names": len(names),
                "zones": sorted(zones),
            },
        }
        result["load_part"] = load_part(args, out, upstream, snapshot)
        knot.pin(CLIENT_CPU)
        result["scale"] = scale_part(args, out, upstream)
        result["scale"] |= {"updates": args.updates, "gap_s": args.gap, "starts": args.starts}
    finally:
        knot.stop()
    result["took_s"] = time.monotonic() - started
    return result


def coredns_version() -> str:
    import subprocess  # noqa: PLC0415

    from tests.support.coredns import binary  # noqa: PLC0415

    done = subprocess.run(
        [str(binary()), "-version"], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.split("\n", 1)[0].strip() or "unknown"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    quick = "2-second runs, once each, 1,000 Services for the scale part; writes bench/out/ only"
    parser = options.Parser("bench.versus", __doc__, quick=quick)
    parser.cluster(queries="queries per file")
    parser.add_argument("--names", type=int, default=300, help="names in each outside zone (default: 300)")
    parser.runs(seconds=(10, 2), repeats="runs of each query file against each server")
    parser.dnsperf()
    parser.quick_default("--latency-seconds", full=5, quick=2, help="length of the -v runs at half rate")
    parser.quick_default(
        "--scale-services", full=10_000, quick=1000, help="Services in the scale part's cluster", kind=int
    )
    parser.add_argument(
        "--endpoints-per-service",
        type=int,
        default=11,
        help="endpoints of each ClusterIP Service there (default: 11)",
    )
    parser.quick_default("--starts", full=3, quick=1, help="starts of each server on that cluster", kind=int)
    parser.quick_default("--updates", full=200, quick=30, help="EndpointSlice updates timed", kind=int)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between updates (default: 0.05)")
    parser.add_argument(
        "--no-pods-verified",
        dest="pods_verified",
        action="store_false",
        help="skip the run with 'pods verified' (its Pods take some 10 minutes to write the first time)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="longest wait for a start (default: 600)"
    )
    args = parser.parse(argv)
    counts = (args.seconds, args.repeats, args.latency_seconds, args.names, args.starts, args.queries)
    if (
        min(counts) <= 0
        or not 1 <= args.updates <= 10_000
        or args.scale_services < 100
        or args.services < 100
    ):
        parser.error("run lengths, counts and --updates (1-10000) must be positive; Services at least 100")
    return args


def time_limit(args: argparse.Namespace) -> int:
    """Seconds the whole benchmark may take: every run's length plus generous slack."""
    runs = (
        len(SETUPS)
        * len(KINDS)
        * len(SERVERS)
        * (args.repeats * (args.seconds + 10) + args.latency_seconds + 10)
    )
    scale = args.starts * len(SERVERS) * (args.timeout / 4 + 30) + 2 * args.updates * (args.gap + 1)
    return int(900 + runs + scale)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = harness.run_exclusively(OUT, time_limit(args), lambda: benchmark(args, OUT))
    if result is None:
        return 1
    readme = harness.readme_for(args.quick)
    report.write_section(readme, report.COREDNS_HEADING, render(result))
    say(f"took {result['took_s'] / 60:.1f} min; wrote {readme} and {OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
