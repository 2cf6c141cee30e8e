"""``python -m bench.run``: kdns against Knot DNS on a generated 1000-Service cluster.

Generates the cluster and a query file into bench/out/, starts ``kdns serve`` and ``knotd`` (the same
records, from ``kdns dump``) pinned to one CPU, runs dnsperf pinned to another against each in turn,
alternating, and writes the medians to bench/README.md (``--quick``: bench/out/README.md).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import cluster, compare, dnsperf, queries, report, servers
from bench.dnsperf import Load
from bench.servers import Server

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
SERVER_CPU, CLIENT_CPU = 1, 0
MIX = "70% A/AAAA on Service names, 10% SRV on named ports, 20% search-path NXDOMAIN"


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
    return {"cpu": model, "nproc": _sh(["nproc"]) or str(os.cpu_count()), "kernel": platform.release()}


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
    }


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


def measure(server: Server, load: Load, output: Path) -> dict[str, Any]:
    """One dnsperf run against ``server``, with the CPU time of both over it.

    ``server_busy`` and ``client_busy`` are CPU seconds per second of the dnsperf process's lifetime."""
    server.check_alive()
    moved = server.pin(SERVER_CPU)
    before = server.cpu_seconds()
    outcome = dnsperf.run(load, server.port, output)
    cpu = server.cpu_seconds() - before
    server.check_alive()
    stats = dnsperf.parse(outcome.text)
    return {
        **asdict(stats),
        "cpu_seconds": cpu,
        "cpu_us_per_query": cpu * 1e6 / stats.completed if stats.completed else float("nan"),
        "server_busy": cpu / outcome.wall,
        "client_busy": outcome.cpu / outcome.wall,
        "threads_moved": moved,
    }


def summarise(label: str, runs: list[dict[str, Any]], server: Server) -> dict[str, Any]:
    keys = ("qps", "avg_latency", "latency_stddev", "cpu_us_per_query", "server_busy", "client_busy", "lost")
    rcodes: Counter[str] = Counter()
    for run in runs:
        rcodes.update(run["rcodes"])
    memory = server.memory_kib()
    return {
        "label": label,
        "runs": runs,
        "median": {key: statistics.median(run[key] for run in runs) for key in keys},
        "lost_total": sum(run["lost"] for run in runs),
        "sent_total": sum(run["sent"] for run in runs),
        "rcodes": dict(rcodes),
        "rss_kib": memory.get("VmRSS", 0),
        "hwm_kib": memory.get("VmHWM", 0),
    }


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    snapshot_path, query_path = out / "cluster.json", out / "queries.txt"
    for old in out.glob("dnsperf-*.txt"):
        old.unlink()
    snapshot = cluster.generate(args.services, seed=args.seed)
    cluster.write(snapshot, snapshot_path)
    query_list = queries.build(snapshot, args.queries, seed=args.seed)
    queries.write(query_list, query_path)
    zones = servers.dump_zones(snapshot_path)
    load = Load(query_path, args.clients, args.outstanding, args.seconds, CLIENT_CPU)
    started: list[Server] = []
    try:
        started.append(servers.start_kdns(snapshot_path, out / "kdns.log", SERVER_CPU))
        started.append(servers.start_knot(zones, out / "knot", SERVER_CPU))
        by_name = {s.name: s for s in started}
        print(f"kdns on port {by_name['kdns'].port}, knot on port {by_name['knot'].port}", file=sys.stderr)
        moved = {server.name: server.pin(SERVER_CPU) for server in started}
        for server in started:
            dnsperf.run(load, server.port, out / f"dnsperf-{server.name}-warmup.txt", once=True, timeout=120)
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in started}
        for i in range(1, args.repeats + 1):
            for server in started:
                result = measure(server, load, out / f"dnsperf-{server.name}-{i}.txt")
                runs[server.name].append(result)
                progress = f"run {i} {server.name}: {result['qps']:,.0f} qps, {result['lost']} lost"
                print(progress, file=sys.stderr)
        sample = compare.sample([q.line() for q in query_list], args.compare, seed=args.seed)
        checked = compare.compare(sample, by_name["kdns"].port, by_name["knot"].port)
        summaries = {
            "kdns": summarise("kdns", runs["kdns"], by_name["kdns"]),
            "knot": summarise("Knot DNS", runs["knot"], by_name["knot"]),
        }
        for name, summary in summaries.items():
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
            "clients": args.clients,
            "outstanding": args.outstanding,
            "seconds": args.seconds,
            "repeats": args.repeats,
            "client_cpu": CLIENT_CPU,
            "server_cpu": SERVER_CPU,
        },
        "servers": summaries,
        "comparison": {
            "asked": checked.asked,
            "mismatches": [(key, a.brief(), b.brief()) for key, a, b in checked.mismatches],
            "section_only": [
                (key, _section_counts(a), _section_counts(b)) for key, a, b in checked.section_only
            ],
        },
    }


def _section_counts(reply: compare.Reply) -> str:
    return f"{len(reply.authority)} authority, {len(reply.additional)} additional"


def _on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError("the benchmark ran past its time limit")


def _on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


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
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.seconds <= 0 or args.repeats < 1 or args.services < 2 or args.queries < 1:
        parser.error("--seconds, --repeats, --services and --queries must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    lock = (OUT / ".lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another benchmark is running in {OUT}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(600 + 2 * args.repeats * (args.seconds + 40)))
    try:
        result = benchmark(args, OUT)
    finally:
        signal.alarm(0)
    (OUT / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    readme = OUT / "README.md" if args.quick else BENCH / "README.md"
    readme.write_text(report.render(result) + report.kept_sections(readme), encoding="utf-8")
    kdns, knot = result["servers"]["kdns"]["median"], result["servers"]["knot"]["median"]
    print(
        f"kdns {kdns['qps']:,.0f} qps, Knot {knot['qps']:,.0f} qps, ratio {kdns['qps'] / knot['qps']:.3f}; "
        f"{len(result['comparison']['mismatches'])} answer differences; wrote {readme}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
