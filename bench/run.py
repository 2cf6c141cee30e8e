"""``python -m bench.run``: kdns against reference servers on a generated 1000-Service cluster.

Generates the cluster and a query file into bench/out/, starts ``kdns serve``, the minimal pre-packed
server on uvloop and on asyncio, dnslib's ``DNSServer`` (those three answer kdns's own responses) and
``knotd`` (the same records, from ``kdns dump``), all pinned to one CPU; runs dnsperf pinned to another
against each in turn, alternating; then measures latency percentiles at full load and at half each
server's rate, profiles kdns (py-spy, perf), checks the answers agree, and writes the medians to
bench/README.md (``--quick``: bench/out/README.md).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import cluster, queries, report
from bench.lib import compare, dnsperf, harness, host, kdns, options, profiling, servers
from bench.lib.dnsperf import Load
from bench.lib.harness import say
from bench.lib.host import machine, versions
from bench.lib.measure import measure, summarise
from bench.lib.processes import CLIENT_CPU, SERVER_CPU
from bench.lib.servers import Server

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
MIX = "70% A/AAAA on Service names, 10% SRV on named ports, 20% search-path NXDOMAIN"
ORDER = ("kdns", "minimal-uvloop", "minimal-asyncio", "dnslib", "knot")
LABELS = {
    "kdns": "kdns",
    "minimal-uvloop": "Minimal server, uvloop",
    "minimal-asyncio": "Minimal server, asyncio",
    "dnslib": "dnslib DNSServer",
    "knot": "Knot DNS",
}


def start_servers(
    snapshot_path: Path, query_path: Path, zones: dict[str, str], out: Path, started: list[Server]
) -> None:
    """Start every server into ``started`` (so the caller stops them whatever happens): kdns first, since
    the Python references take their answers from it."""
    ours = kdns.start(snapshot=snapshot_path, log=out / "kdns.log", cpus=SERVER_CPU)
    started.append(ours)
    for loop in ("uvloop", "asyncio"):
        started.append(
            servers.start_minimal(loop, ours.port, query_path, out / f"minimal-{loop}.log", SERVER_CPU)
        )
    started.append(servers.start_dnslib(ours.port, query_path, out / "dnslib.log", SERVER_CPU))
    started.append(servers.start_knot(zones, out / "knot", SERVER_CPU))
    started.sort(key=lambda server: ORDER.index(server.name))
    say(", ".join(f"{server.name} on port {server.port}" for server in started))


def latency_runs(
    by_name: dict[str, Server],
    loads: dict[str, Load],
    seconds: float,
    summaries: dict[str, dict[str, Any]],
    out: Path,
) -> None:
    """A ``-v`` run of each server at full load, then one at half its median QPS (``-Q``); ``seconds``
    long, or as long as the server's own shorter runs."""
    lengths = {name: replace(load, seconds=min(seconds, load.seconds)) for name, load in loads.items()}
    for name, server in by_name.items():
        output = out / f"dnsperf-{name}-v.txt"
        summaries[name]["full_load"] = measure(server, lengths[name], output, verbose=True)
    for name, server in by_name.items():
        half = replace(lengths[name], rate=max(1, round(summaries[name]["median"]["qps"] / 2)))
        result = measure(server, half, out / f"dnsperf-{name}-half.txt", verbose=True)
        summaries[name]["half_rate"] = result
        say(f"{name} at -Q {half.rate}: p99 {result['latency']['p99'] * 1e3:.3f} ms")


def records(zones: dict[str, str]) -> int:
    """The records of zone files (every line but ``$`` directives)."""
    return sum(1 for text in zones.values() for line in text.splitlines() if not line.startswith("$"))


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    snapshot_path, query_path = out / "cluster.json", out / "queries.txt"
    for old in [*out.glob("dnsperf-*.txt"), *out.glob("py*spy-*"), *out.glob("perf-*")]:
        old.unlink()
    snapshot = cluster.generate(args.services, seed=args.seed)
    cluster.write(snapshot, snapshot_path)
    query_list = queries.build(snapshot, args.queries, seed=args.seed)
    queries.write(query_list, query_path)
    zones = kdns.dump_zones(snapshot_path)
    load = Load(query_path, args.clients, args.outstanding, args.seconds, CLIENT_CPU)
    short = Load(query_path, args.dnslib_clients, args.dnslib_outstanding, args.dnslib_seconds, CLIENT_CPU)
    loads = {name: short if name == "dnslib" else load for name in ORDER}
    started: list[Server] = []
    try:
        start_servers(snapshot_path, query_path, zones, out, started)
        by_name = {s.name: s for s in started}
        moved = {server.name: server.pin(SERVER_CPU) for server in started}
        for server in started:
            warm = out / f"dnsperf-{server.name}-warmup.txt"
            if server.name == "dnslib":
                dnsperf.run(replace(short, seconds=1), server.port, warm)
            else:
                dnsperf.run(load, server.port, warm, once=True, timeout=120)
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in started}
        for i in range(1, args.repeats + 1):
            for server in started:
                result = measure(server, loads[server.name], out / f"dnsperf-{server.name}-{i}.txt")
                runs[server.name].append(result)
                say(f"run {i} {server.name}: {result['qps']:,.0f} qps, {result['lost']} lost")
        summaries = {name: summarise(LABELS[name], runs[name]) for name in runs}
        latency_runs(by_name, loads, args.latency_seconds, summaries, out)
        profile = (
            profiling.record(by_name["kdns"], load, args.profile_seconds, out)
            if args.profile_seconds > 0
            else {"error": "not profiled (--profile-seconds 0)"}
        )
        sample = compare.sample([q.line() for q in query_list], args.compare, seed=args.seed)
        kdns_port = by_name["kdns"].port
        checked = {
            "knot": compare.compare(sample, kdns_port, by_name["knot"].port),
            "dnslib": compare.compare(sample, kdns_port, by_name["dnslib"].port),
        }
        byte_differences = {
            name: compare.identical(sample, kdns_port, by_name[name].port)
            for name in ("minimal-uvloop", "minimal-asyncio")
        }
        for name, summary in summaries.items():
            memory = by_name[name].memory_kib()
            summary["rss_kib"], summary["hwm_kib"] = memory.get("VmRSS", 0), memory.get("VmHWM", 0)
            summary["threads_moved_at_start"] = moved[name]
    finally:
        for server in started:
            server.stop()
    return {
        "date": host.date(),
        "machine": machine(),
        "versions": versions(),
        "cluster": cluster.summary(snapshot) | {"records": records(zones)},
        "load": {
            "queries": len(query_list),
            "distinct": len({q.line() for q in query_list}),
            "mix": MIX,
            "shares": dict(Counter(q.kind for q in query_list)),
            "clients": args.clients,
            "outstanding": args.outstanding,
            "seconds": args.seconds,
            "repeats": args.repeats,
            "dnslib": short.flags(),
            "client_cpu": CLIENT_CPU,
            "server_cpu": SERVER_CPU,
        },
        "servers": summaries,
        "profile": profile,
        "comparison": {
            name: {
                "asked": result.asked,
                "mismatches": [(key, a.brief(), b.brief()) for key, a, b in result.mismatches],
                "section_only": [
                    (key, _section_counts(a), _section_counts(b)) for key, a, b in result.section_only
                ],
            }
            for name, result in checked.items()
        },
        "byte_check": {"asked": 2 * len(sample), "differ": byte_differences},
    }


def _section_counts(reply: compare.Reply) -> str:
    return f"{len(reply.authority)} authority, {len(reply.additional)} additional"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.Parser("bench.run", __doc__, quick="2-second runs, one each; results in bench/out/")
    parser.cluster()
    parser.runs(seconds=(10, 2), repeats="runs per server")
    parser.dnsperf()
    parser.add_argument("--compare", type=int, default=300, help="queries asked of both (default: 300)")
    parser.quick_default("--dnslib-seconds", full=3, quick=1, help="length of dnslib's runs")
    parser.add_argument("--dnslib-clients", type=int, default=8, help="dnsperf -c for dnslib (default: 8)")
    parser.add_argument(
        "--dnslib-outstanding", type=int, default=100, help="dnsperf -q for dnslib (default: 100)"
    )
    parser.quick_default("--latency-seconds", full=5, quick=2, help="length of the -v latency runs")
    parser.quick_default("--profile-seconds", full=10, quick=3, help="profile kdns for this long, 0 for not")
    args = parser.parse(argv)
    positive = (
        args.seconds,
        args.repeats,
        args.services,
        args.queries,
        args.dnslib_seconds,
        args.latency_seconds,
    )
    if min(positive) <= 0 or args.services < 2 or args.profile_seconds < 0:
        parser.error("--seconds, --repeats, --services, --queries and the run lengths must be positive")
    return args


def time_limit(args: argparse.Namespace) -> int:
    """Seconds the whole benchmark may take: every run's length plus generous slack."""
    runs = args.repeats * (4 * (args.seconds + 10) + args.dnslib_seconds + 10)
    latency = 2 * 5 * (args.latency_seconds + 10)
    return int(600 + runs + latency + args.profile_seconds + 60)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = harness.run_exclusively(OUT, time_limit(args), lambda: benchmark(args, OUT))
    if result is None:
        return 1
    readme = harness.readme_for(args.quick)
    readme.write_text(report.render(result) + report.kept_sections(readme), encoding="utf-8")
    medians = {name: data["median"]["qps"] for name, data in result["servers"].items()}
    ratios = ", ".join(f"/{name} {medians['kdns'] / medians[name]:.3g}" for name in ORDER[1:])
    differences = sum(len(c["mismatches"]) for c in result["comparison"].values())
    say(f"kdns {medians['kdns']:,.0f} qps; kdns{ratios}; {differences} answer differences; wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
