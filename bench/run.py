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
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench import cluster, compare, dnsperf, harness, profiling, queries, report, servers
from bench.dnsperf import Load
from bench.servers import CpuSet, Server

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
SERVER_CPU, CLIENT_CPU = 1, 0
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIX = "70% A/AAAA on Service names, 10% SRV on named ports, 20% search-path NXDOMAIN"
ORDER = ("kdns", "minimal-uvloop", "minimal-asyncio", "dnslib", "knot")
LABELS = {
    "kdns": "kdns",
    "minimal-uvloop": "Minimal server, uvloop",
    "minimal-asyncio": "Minimal server, asyncio",
    "dnslib": "dnslib DNSServer",
    "knot": "Knot DNS",
}
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p999": 0.999, "max": 1.0}


def _sh(command: list[str], timeout: float = 30) -> str:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def machine() -> dict[str, Any]:
    models = [line.split(":", 1)[1].strip() for line in _sh(["lscpu"]).splitlines() if "Model name" in line]
    model = models[0] if models else platform.processor() or "unknown"
    return {
        "cpu": model,
        "nproc": _sh(["nproc"]) or str(os.cpu_count()),
        "kernel": platform.release(),
        "nice": os.nice(0),
    }


def versions() -> dict[str, Any]:
    knot = _sh(["knotd", "--version"]).rsplit(" ", 1)[-1] or "unknown"
    try:
        import uvloop  # noqa: F401, PLC0415

        event_loop = "uvloop"
    except ImportError:
        event_loop = "asyncio event loop"
    return {
        "kdns_commit": _sh(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
        "kdns_dirty": bool(_sh(["git", "status", "--porcelain", "--", "kdns"])),
        "python": platform.python_version(),
        "event_loop": event_loop,
        "knot": knot,
        "dnsperf": dnsperf.version(),
        "uvloop": _version("uvloop"),
        "dnslib": _version("dnslib"),
        "py_spy": _version("py-spy"),
        "perf": _sh(["perf", "--version"]).rsplit(" ", 1)[-1] or "none",
    }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _service_kind(spec: dict[str, Any]) -> str:
    if spec.get("type") == "ExternalName":
        return "external"
    return "headless" if spec.get("clusterIP") == "None" else "cluster_ip"


def cluster_summary(snapshot: dict[str, Any], zones: dict[str, str]) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    endpoints = 0
    for item in snapshot["items"]:
        if item["kind"] == "Service":
            kinds[_service_kind(item["spec"])] += 1
        elif item["kind"] == "EndpointSlice":
            endpoints += len(item["endpoints"])
    records = sum(1 for text in zones.values() for line in text.splitlines() if not line.startswith("$"))
    namespaces = sum(1 for item in snapshot["items"] if item["kind"] == "Namespace")
    return {
        "services": sum(kinds.values()),
        **{k: kinds[k] for k in ("cluster_ip", "headless", "external")},
        "namespaces": namespaces,
        "endpoints": endpoints,
        "records": records,
    }


def machine_busy() -> float:
    """CPU seconds all CPUs have spent busy since boot: /proc/stat's user, nice, system, irq, softirq
    and steal."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def measure(
    server: Server, load: Load, output: Path, *, verbose: bool = False, cpus: CpuSet = SERVER_CPU
) -> dict[str, Any]:
    """One dnsperf run against ``server`` (its threads first moved to ``cpus``), with the CPU time of both
    over it.

    ``server_busy`` and ``client_busy`` are CPU seconds per second of the dnsperf process's lifetime;
    ``other_busy`` is what every other process (and the hypervisor's steal) used of both CPUs meanwhile.
    ``verbose`` runs dnsperf with ``-v`` and adds latency percentiles (seconds) from its answer lines."""
    server.check_alive()
    moved = server.pin(cpus)
    user_before, system_before = server.cpu_times()
    machine_before = machine_busy()
    outcome = dnsperf.run(load, server.port, output, verbose=verbose)
    machine_cpu = machine_busy() - machine_before
    user_after, system_after = server.cpu_times()
    system = system_after - system_before
    cpu = user_after - user_before + system
    server.check_alive()
    stats = dnsperf.parse(outcome.text)
    result = {
        **asdict(stats),
        "cpu_seconds": cpu,
        "cpu_us_per_query": cpu * 1e6 / stats.completed if stats.completed else float("nan"),
        "system_share": system / cpu if cpu else float("nan"),
        "server_busy": cpu / outcome.wall,
        "client_busy": outcome.cpu / outcome.wall,
        "other_busy": max(0.0, machine_cpu - cpu - outcome.cpu) / outcome.wall,
        "threads_moved": moved,
        "load": load.flags(),
    }
    if verbose:
        ordered = dnsperf.latencies(outcome.text)
        dnsperf.drop_answer_lines(output, outcome.text)
        result["latency"] = {
            "samples": len(ordered),
            **{name: dnsperf.percentile(ordered, share) for name, share in PERCENTILES.items()},
        }
    return result


def summarise(label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "qps", "avg_latency", "latency_stddev", "cpu_us_per_query", "system_share", "server_busy",
        "client_busy", "other_busy", "lost",
    )  # fmt: skip
    rcodes: Counter[str] = Counter()
    for run in runs:
        rcodes.update(run["rcodes"])
    return {
        "label": label,
        "load": runs[0]["load"],
        "runs": runs,
        "median": {key: statistics.median(run[key] for run in runs) for key in keys},
        "lost_total": sum(run["lost"] for run in runs),
        "sent_total": sum(run["sent"] for run in runs),
        "rcodes": dict(rcodes),
    }


def start_servers(
    snapshot_path: Path, query_path: Path, zones: dict[str, str], out: Path, started: list[Server]
) -> None:
    """Start every server into ``started`` (so the caller stops them whatever happens): kdns first, since
    the Python references take their answers from it."""
    kdns = servers.start_kdns(snapshot_path, out / "kdns.log", SERVER_CPU)
    started.append(kdns)
    for loop in ("uvloop", "asyncio"):
        started.append(
            servers.start_minimal(loop, kdns.port, query_path, out / f"minimal-{loop}.log", SERVER_CPU)
        )
    started.append(servers.start_dnslib(kdns.port, query_path, out / "dnslib.log", SERVER_CPU))
    started.append(servers.start_knot(zones, out / "knot", SERVER_CPU))
    started.sort(key=lambda server: ORDER.index(server.name))
    ports = ", ".join(f"{server.name} on port {server.port}" for server in started)
    print(ports, file=sys.stderr)


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
        latency = result["latency"]
        print(f"{name} at -Q {half.rate}: p99 {latency['p99'] * 1e3:.3f} ms", file=sys.stderr)


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    snapshot_path, query_path = out / "cluster.json", out / "queries.txt"
    for old in [*out.glob("dnsperf-*.txt"), *out.glob("py*spy-*"), *out.glob("perf-*")]:
        old.unlink()
    snapshot = cluster.generate(args.services, seed=args.seed)
    cluster.write(snapshot, snapshot_path)
    query_list = queries.build(snapshot, args.queries, seed=args.seed)
    queries.write(query_list, query_path)
    zones = servers.dump_zones(snapshot_path)
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
                progress = f"run {i} {server.name}: {result['qps']:,.0f} qps, {result['lost']} lost"
                print(progress, file=sys.stderr)
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
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "versions": versions(),
        "cluster": cluster_summary(snapshot, zones),
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
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2-second runs, one each; results in bench/out/")
    parser.add_argument("--services", type=int, default=1000, help="Services in the cluster (default: 1000)")
    parser.add_argument("--queries", type=int, default=100_000, help="queries in the file (default: 100000)")
    parser.add_argument("--seconds", type=float, help="length of each dnsperf run (default: 10)")
    parser.add_argument("--repeats", type=int, help="runs per server (default: 3)")
    parser.add_argument("--clients", type=int, default=8, help="dnsperf -c (default: 8)")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q (default: 100)")
    parser.add_argument("--compare", type=int, default=300, help="queries asked of both (default: 300)")
    parser.add_argument("--seed", type=int, default=1, help="seed of cluster and queries (default: 1)")
    parser.add_argument("--dnslib-seconds", type=float, help="length of dnslib's runs (default: 3)")
    parser.add_argument("--dnslib-clients", type=int, default=8, help="dnsperf -c for dnslib (default: 8)")
    parser.add_argument(
        "--dnslib-outstanding", type=int, default=100, help="dnsperf -q for dnslib (default: 100)"
    )
    parser.add_argument("--latency-seconds", type=float, help="length of the -v latency runs (default: 5)")
    parser.add_argument(
        "--profile-seconds", type=float, help="profile kdns for this long, 0 for not (default: 10)"
    )
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.dnslib_seconds = args.dnslib_seconds or (1.0 if args.quick else 3.0)
    args.latency_seconds = args.latency_seconds or (2.0 if args.quick else 5.0)
    if args.profile_seconds is None:
        args.profile_seconds = 3.0 if args.quick else 10.0
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
    print(
        f"kdns {medians['kdns']:,.0f} qps; kdns{ratios}; {differences} answer differences; wrote {readme}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
