"""``python -m bench.workers``: ``kdns serve --workers N`` on the cluster names of ``bench.run``.

``--workers N`` runs N processes answering on one address and port (SO_REUSEPORT) under a supervisor.
This machine has two CPUs and dnsperf needs one of them, so two workers cannot each get a core of their
own while dnsperf saturates them. What can be measured: one kdns process against two workers on the
same CPU (the cost of splitting the work into processes, and how the kernel spreads queries between
them), and one against two with both CPUs shared by dnsperf and kdns (whether a second worker turns CPU
time dnsperf leaves free into answers). Every kdns runs ``--no-forward`` with its metrics on 127.0.0.1;
for two workers the supervisor's metrics, added up from the workers', are checked against dnsperf's
count. Raw data go to bench/out/workers/; the figures to the "Several cores" section of bench/README.md
(``--quick``: bench/out/README.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import cluster, queries, report
from bench.lib import dnsperf, harness, host, kdns, options, stats
from bench.lib.dnsperf import Load
from bench.lib.harness import say
from bench.lib.kdns import Kdns
from bench.lib.measure import measure, summarise
from bench.lib.processes import CpuSet, process_cpu, process_memory, proportional_kib
from bench.lib.tables import ms, table

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "workers"
REQUESTS = "coredns_dns_requests_total"


@dataclass(frozen=True)
class Setup:
    name: str
    label: str
    workers: int
    server_cpus: CpuSet
    client_cpus: CpuSet


SETUPS = (
    Setup("one-pinned", "1 process (no `--workers`), CPU 1", 1, 1, 0),
    Setup("two-pinned", "`--workers 2`, both on CPU 1", 2, 1, 0),
    Setup("one-shared", "1 process, CPUs 0-1 shared with dnsperf", 1, (0, 1), (0, 1)),
    Setup("two-shared", "`--workers 2`, CPUs 0-1 shared with dnsperf", 2, (0, 1), (0, 1)),
)


def start(setup: Setup, snapshot: Path, out: Path) -> Kdns:
    return kdns.start(
        snapshot=snapshot,
        log=out / f"kdns-{setup.name}.log",
        cpus=setup.server_cpus,
        name=setup.name,
        workers=setup.workers,
        metrics=True,
    )


def measured(server: Kdns, setup: Setup, load: Load, output: Path) -> dict[str, Any]:
    """``measure`` on the setup's CPUs, with each worker's CPU time and the requests kdns counted."""
    pids = server.answering
    before = [sum(process_cpu(pid)) for pid in pids]
    requests = server.metrics().value(REQUESTS)
    result = measure(server, load, output, cpus=setup.server_cpus)
    counted = server.metrics().value(REQUESTS) - requests
    per_worker = [sum(process_cpu(pid)) - b for pid, b in zip(pids, before, strict=True)]
    total = sum(per_worker) or 1.0
    return result | {
        "worker_cpu_seconds": per_worker,
        "worker_cpu_shares": [cpu / total for cpu in per_worker],
        "supervisor_cpu_seconds": result["cpu_seconds"] - sum(per_worker),
        "requests_counted": counted,
    }


def memory(server: Kdns) -> list[dict[str, Any]]:
    """VmRSS and Pss (shared pages divided among their sharers) of each process, in KiB."""
    pids = server.pids
    roles = ["supervisor", *(f"worker {i}" for i in range(len(pids) - 1))] if len(pids) > 1 else ["kdns"]
    return [
        {"role": role, "pid": pid, "rss_kib": process_memory(pid)["VmRSS"], "pss_kib": proportional_kib(pid)}
        for role, pid in zip(roles, pids, strict=True)
    ]


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    snapshot_path, query_path = out / "cluster.json", out / "queries.txt"
    for old in out.glob("dnsperf-*.txt"):
        old.unlink()
    snapshot = cluster.generate(args.services, seed=args.seed)
    cluster.write(snapshot, snapshot_path)
    queries.write(queries.build(snapshot, args.queries, seed=args.seed), query_path)
    started: dict[Setup, Kdns] = {}
    loads = {
        s.name: Load(query_path, args.clients, args.outstanding, args.seconds, s.client_cpus) for s in SETUPS
    }
    try:
        for setup in SETUPS:
            started[setup] = start(setup, snapshot_path, out)
        for setup, server in started.items():
            server.pin(setup.server_cpus)
            warm = out / f"dnsperf-{setup.name}-warmup.txt"
            dnsperf.run(loads[setup.name], server.port, warm, once=True, timeout=120)
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in SETUPS}
        for i in range(1, args.repeats + 1):
            for setup, server in started.items():
                name = setup.name
                result = measured(server, setup, loads[name], out / f"dnsperf-{name}-{i}.txt")
                runs[name].append(result)
                shares = "/".join(f"{share:.0%}" for share in result["worker_cpu_shares"])
                say(f"run {i} {name}: {result['qps']:,.0f} qps, {result['cpu_us_per_query']:.2f} us/query, "
                    f"workers' CPU {shares}")  # fmt: skip
        summaries = {s.name: summarise(s.label, runs[s.name]) for s in SETUPS}
        for setup, server in started.items():
            summaries[setup.name]["memory"] = memory(server)
    finally:
        for server in started.values():
            server.stop()
    return {
        "date": host.date(),
        "machine": host.machine(),
        "versions": host.versions(),
        "quick": args.quick,
        "cluster": cluster.summary(snapshot),
        "load": {
            "queries": args.queries,
            "clients": args.clients,
            "outstanding": args.outstanding,
            "seconds": args.seconds,
            "repeats": args.repeats,
        },
        "setups": {s.name: {"label": s.label, "workers": s.workers} for s in SETUPS},
        "servers": summaries,
    }


# -- the README section ---------------------------------------------------------------------------------
HOW_TO_RUN = """\
### How to run

```sh
.venv/bin/python -m bench.workers             # full run, about 4 minutes; rewrites this section
.venv/bin/python -m bench.workers --quick     # 2-second runs, once each; writes bench/out/README.md only
```

Raw data go to `bench/out/workers/`: `results.json` (every run, each worker's CPU seconds), dnsperf's
output and the kdns logs.
"""


def _shares(data: dict[str, Any]) -> str:
    runs = data["runs"]
    if len(runs[0]["worker_cpu_shares"]) < 2:
        return "n/a"
    shares = zip(*(r["worker_cpu_shares"] for r in runs), strict=True)
    return " / ".join(f"{stats.median(values):.0%}" for values in shares)


def _table(result: dict[str, Any]) -> list[str]:
    header = [
        "Setup", "dnsperf on", "QPS", "Avg latency (ms)", "Lost", "CPU us/query, all processes",
        "of which system", "kdns CPU s per s", "dnsperf CPU busy", "Other CPU load",
        "Workers' shares of kdns's CPU", "Requests counted / answers",
    ]  # fmt: skip
    rows = []
    for name, setup in result["setups"].items():
        data = result["servers"][name]
        m, runs = data["median"], data["runs"]
        counted = sum(r["requests_counted"] for r in runs) / max(1, sum(r["completed"] for r in runs))
        client = "CPU 0" if name.endswith("pinned") else "CPUs 0-1"
        rows.append([
            setup["label"], client, f"{m['qps']:,.0f}", ms(m["avg_latency"]),
            f"{data['lost_total']:,} of {data['sent_total']:,}", f"{m['cpu_us_per_query']:.2f}",
            f"{m['system_share']:.0%}", f"{m['server_busy']:.2f}", f"{m['client_busy']:.0%}",
            f"{m['other_busy']:.2f}", _shares(data), f"{counted:.3f}",
        ])  # fmt: skip
    load = result["load"]
    return [
        *table(header, rows, "llr"),
        "",
        f"All with `dnsperf -c {load['clients']} -q {load['outstanding']} -l {load['seconds']:g}`; medians "
        f"of {load['repeats']} run{'s' if load['repeats'] != 1 else ''}.",
    ]


def _compare(result: dict[str, Any], one: str, two: str) -> tuple[float, float]:
    """QPS and CPU us/query of ``two`` over ``one``."""
    a, b = result["servers"][one]["median"], result["servers"][two]["median"]
    return b["qps"] / a["qps"], b["cpu_us_per_query"] / a["cpu_us_per_query"]


def _memory(result: dict[str, Any]) -> list[str]:
    rows = [
        [
            setup["label"],
            process["role"],
            f"{process['rss_kib'] / 1024:.1f}",
            f"{process['pss_kib'] / 1024:.1f}",
        ]
        for name, setup in result["setups"].items()
        for process in result["servers"][name]["memory"]
    ]
    return table(["Setup", "Process", "VmRSS MB", "Pss MB"], rows, "llr")


def _findings(result: dict[str, Any]) -> list[str]:
    servers = result["servers"]
    pinned_qps, pinned_cpu = _compare(result, "one-pinned", "two-pinned")
    shared_qps, shared_cpu = _compare(result, "one-shared", "two-shared")
    one, one_shared = servers["one-pinned"]["median"], servers["one-shared"]["median"]
    two_shared = servers["two-shared"]["median"]
    per_core = 1e6 / one["cpu_us_per_query"]
    cost = (
        "the extra CPU per query is the price of splitting one core between two processes (two event loops "
        "woken in turn, more context switches)"
        if pinned_cpu > 1.03
        else "splitting one core between two processes costs no measurable CPU per query"
    )
    one_two = servers["two-pinned"]["median"]
    if one_two["server_busy"] > one["server_busy"] + 0.05:
        cost += (
            f". The two workers got {one_two['server_busy']:.2f} CPU seconds per second of CPU 1 against "
            f"{one['server_busy']:.2f} for one process (other CPU load {one['other_busy']:.2f} and "
            f"{one_two['other_busy']:.2f}): on a CPU shared with other work the scheduler gives two "
            "processes a larger share than one"
            + (", and that, not the workers, is where their higher QPS comes from" if pinned_qps > 1 else "")
        )
    return [
        "### What this shows, and what it cannot",
        "",
        f"- **Two workers on one CPU** answer {pinned_qps:.2f}x the QPS of one process at {pinned_cpu:.2f}x "
        f"its CPU per query: {cost}. The kernel spread the queries between the two sockets by the hash of "
        f"each of dnsperf's {result['load']['clients']} source ports: the workers' shares of the CPU were "
        f"{_shares(servers['two-pinned'])}. With many clients (a cluster's pods) the hash evens out; with a "
        "handful it can leave one worker with most of the load.",
        f"- **Both CPUs shared with dnsperf**: two workers answer {shared_qps:.2f}x the QPS of one process "
        f"at {shared_cpu:.2f}x its CPU per query (workers' shares {_shares(servers['two-shared'])}). kdns "
        f"used {two_shared['server_busy']:.2f} CPU seconds per second with two workers, "
        f"{one_shared['server_busy']:.2f} with one, and dnsperf {two_shared['client_busy']:.0%} and "
        f"{one_shared['client_busy']:.0%} of a CPU (pinned to CPU 0 it used {one['client_busy']:.0%} of it "
        "to offer this load), so kdns gets what is left of two CPUs whichever the number of workers: a "
        "second worker can only take CPU time that dnsperf and other processes leave free, and the figure "
        "says nothing about a second dedicated core.",
        "- **Not measurable here:** QPS on two or more dedicated cores. That takes a load generator on "
        "other cores or another machine; on this one, any core given to a second worker is taken from "
        "dnsperf. The supervisor's metrics are checked, though: the requests it reports, added up from its "
        "workers, match dnsperf's answers (last column of the table, 1.000 when every answer was counted "
        "once).",
        f"- One worker costs {one['cpu_us_per_query']:.2f} us of CPU per answer here, about "
        f"{per_core:,.0f} answers per CPU second. Workers share nothing on the query path, so N workers "
        "on N dedicated cores can answer up to N times that, for as long as the kernel's UDP path and the "
        "network card's queues keep up: an upper bound computed from the measured cost, not a measurement.",
    ]


DESIGN = """\
### Design for 8 and more cores

One process per core, as `--workers N` runs them: the supervisor binds N UDP and N TCP sockets to the
same address and port with SO_REUSEPORT and forks one worker per socket pair, so the kernel hashes each
flow (source and destination address and port) to one worker's socket and there is no accept lock, no
shared queue and no hand-off between processes. Each worker is a whole kdns: its own event loop, answer
cache and forward cache, and, when it follows the API, its own informer (reflector threads, watches, zone
and indexes); from a snapshot the zone is built before the fork and shared copy-on-write (the Pss column
above). The supervisor answers /health, /ready and /metrics for all of them, asking each worker over a
socket pair and adding their metrics up, and stops the pod if a worker dies. Python's GIL is why these
are processes: threads of one process could not answer in parallel.

What limits it: every worker lists and watches the API server on its own, so 8 workers are 8 informers'
worth of lists after every restart or 410 and 8 streams of every watch event (on a 10,000-Service cluster
a relist is some 20,000 objects per worker); and every worker holds its own copy of the zone built from
the API, so resident memory is about N times the per-process figure of the "Following the Kubernetes
API" section below (CoreDNS's sizing guide counts one process). Sharing one informer among the
workers (the supervisor watching and sending changes down the socket pairs, or a shared-memory zone)
would remove both costs; a worker's answer cache and forward cache would stay per worker, so a forwarded
name is asked upstream once per worker, and each worker warms its own cache.
"""


def render(result: dict[str, Any]) -> str:
    tools, c = result["versions"], result["cluster"]
    lines = [
        report.WORKERS_HEADING,
        "",
        "`kdns serve --workers N` answers in N processes sharing one address and port (SO_REUSEPORT) under "
        "a supervisor (kdns/workers.py). This section is written by `python -m bench.workers`.",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {host.describe(result['machine'])}",
        f"- kdns: commit {host.commit(tools)}, Python {tools['python']}, dnsperf {tools['dnsperf']}",
        f"- Cluster and queries: `bench.run`'s ({c['services']:,} Services, {c['endpoints']:,} endpoints; "
        f"{result['load']['queries']:,} queries in its mix); every kdns `--snapshot cluster.json "
        "--no-forward --metrics 127.0.0.1:PORT`, two workers on a free port from the harness; each setup "
        "warmed by one pass over the query file, then the setups measured in turn",
        "- CPU us/query: user+system time (/proc/PID/stat) of the supervisor and every worker over the run, "
        "divided by the answers; kdns CPU s per s: the same per second of dnsperf's run (above 1 when it "
        "used both CPUs); workers' shares: each worker's part of that CPU time (the supervisor's is "
        "negligible); requests counted: the rise of `coredns_dns_requests_total` on the supervisor's "
        "/metrics (for one process, its own) over dnsperf's answers",
        "",
        "### Two CPUs",
        "",
        *_table(result),
        "",
        "Memory after the runs (Pss divides the pages processes share, such as the zone built before the "
        "fork, among them):",
        "",
        *_memory(result),
        "",
        *_findings(result),
        "",
        DESIGN,
        HOW_TO_RUN,
    ]
    return "\n".join(lines).rstrip() + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.Parser(
        "bench.workers", __doc__, quick="2-second runs, once each; bench/out/README.md only"
    )
    parser.cluster()
    parser.runs(seconds=(10, 2), repeats="runs per setup")
    parser.dnsperf()
    args = parser.parse(argv)
    if min(args.seconds, args.repeats) <= 0:
        parser.error("--seconds and --repeats must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    limit = int(600 + args.repeats * len(SETUPS) * (args.seconds + 20))
    result = harness.run_exclusively(OUT, limit, lambda: benchmark(args, OUT))
    if result is None:
        return 1
    readme = harness.readme_for(args.quick)
    report.write_section(readme, report.WORKERS_HEADING, render(result))
    pinned, _ = _compare(result, "one-pinned", "two-pinned")
    shared, _ = _compare(result, "one-shared", "two-shared")
    say(f"2 workers / 1: {pinned:.2f} on one CPU, {shared:.2f} sharing both; wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
