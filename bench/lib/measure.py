"""One measurement as every benchmark takes it: a dnsperf run against a server with the CPU time the
server, dnsperf and everything else on the machine used over it; and the medians over repeated runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.lib import dnsperf, stats
from bench.lib.dnsperf import Load
from bench.lib.processes import SERVER_CPU, CpuSet, machine_busy
from bench.lib.servers import Server

MEDIANS = (
    "qps", "avg_latency", "latency_stddev", "cpu_us_per_query", "system_share", "server_busy", "client_busy",
    "other_busy", "lost",
)  # fmt: skip


def measure(
    server: Server, load: Load, output: Path, *, verbose: bool = False, cpus: CpuSet = SERVER_CPU
) -> dict[str, Any]:
    """One dnsperf run against ``server`` (its threads first moved to ``cpus``), with the CPU time of both
    over it.

    ``server_busy`` and ``client_busy`` are CPU seconds per second of the dnsperf process's lifetime;
    ``other_busy`` is what every other process (and the hypervisor's steal) used of both CPUs meanwhile.
    ``verbose`` runs dnsperf with ``-v`` and adds the latencies' ``stats.distribution`` (seconds) from
    its answer lines."""
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
    result = dnsperf.parse(outcome.text)
    figures = {
        **asdict(result),
        "cpu_seconds": cpu,
        "cpu_us_per_query": stats.ratio(cpu * 1e6, result.completed),
        "system_share": stats.ratio(system, cpu),
        "server_busy": cpu / outcome.wall,
        "client_busy": outcome.cpu / outcome.wall,
        "other_busy": max(0.0, machine_cpu - cpu - outcome.cpu) / outcome.wall,
        "threads_moved": moved,
        "load": load.flags(),
    }
    if verbose:
        figures["latency"] = stats.distribution(dnsperf.latencies(outcome.text))
        dnsperf.drop_answer_lines(output, outcome.text)
    return figures


def summarise(label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeated ``measure`` runs of one server and load: the runs, the medians of ``MEDIANS``, the
    queries sent and lost over all of them and their response codes."""
    rcodes: Counter[str] = Counter()
    for run in runs:
        rcodes.update(run["rcodes"])
    return {
        "label": label,
        "load": runs[0]["load"],
        "runs": runs,
        "median": {key: stats.median_of(runs, key) for key in MEDIANS},
        "lost_total": sum(run["lost"] for run in runs),
        "sent_total": sum(run["sent"] for run in runs),
        "rcodes": dict(rcodes),
    }
