"""``python -m bench.soak``: kdns for ten minutes at 80% of its measured capacity, on a mix of cluster
names, forwarded names and TCP, with its memory sampled throughout.

kdns serves the 1000-Service cluster of ``bench.run`` on CPU 1 and forwards outside names to Knot DNS
on 127.0.0.1 (the outside zones of ``bench.forwarded``); dnsperf and Knot run on CPU 0. The UDP mix is
the cluster mix of ``bench.run`` with a fifth of its lines replaced by forwarded names. After one pass
over each file, a 5-second run at full load measures kdns's capacity on the mix; the soak then offers
80% of it: UDP at a fixed rate, plus a TCP stream (``dnsperf -m tcp``) of ``--tcp-share`` of it.

Measured: resident memory every ``--sample`` seconds (growth after the warm-up, target under 5%),
queries lost (UDP and TCP), kdns's log lines at WARNING and above, and kdns's CPU. Raw data go to
bench/out/soak/; the figures to the "Soak" section of bench/README.md (``--quick``: a one-minute soak,
bench/out/README.md).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import cluster, outside, queries, report
from bench.lib import dnsperf, harness, host, kdns, options, servers
from bench.lib.dnsperf import Load
from bench.lib.harness import say
from bench.lib.measure import measure
from bench.lib.processes import CLIENT_CPU, SERVER_CPU
from bench.lib.servers import HOST, Server
from bench.lib.tables import codes, table

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "soak"
REQUESTS = "coredns_dns_requests_total"
SECTION = report.SOAK_HEADING
FORWARDED_SHARE = 0.2
GROWTH_TARGET = 0.05


def mixed_lines(cluster_file: Path, outside: list[str], seed: int) -> list[str]:
    """The cluster mix with ``FORWARDED_SHARE`` of its lines replaced by forwarded names."""
    rng = random.Random(seed)
    lines = cluster_file.read_text(encoding="utf-8").splitlines()
    return [rng.choice(outside) if rng.random() < FORWARDED_SHARE else line for line in lines]


class Sampler(harness.Background):
    """kdns's resident memory and CPU every ``interval`` seconds, on a thread, until ``stop``."""

    def __init__(self, server: Server, interval: float) -> None:
        super().__init__("sampler")
        self.server, self.interval = server, interval
        self.samples: list[dict[str, float]] = []
        self._start = time.monotonic()

    def _run(self) -> None:
        while True:
            self.samples.append({
                "t": time.monotonic() - self._start,
                "rss_mb": self.server.rss_mb(),
                "cpu_s": sum(self.server.cpu_times()),
            })  # fmt: skip
            if self._stop.wait(self.interval):
                return


def growth(samples: list[dict[str, float]], warmup: float) -> dict[str, float]:
    """Resident memory at the end of the warm-up, its highest after it, at the end, and the growth."""
    after = [s for s in samples if s["t"] >= warmup] or samples
    first, last = after[0]["rss_mb"], after[-1]["rss_mb"]
    peak = max(s["rss_mb"] for s in after)
    return {"after_warmup_mb": first, "peak_mb": peak, "end_mb": last, "growth": (last - first) / first}


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    snapshot = cluster.generate(args.services, seed=args.seed)
    snapshot_path, cluster_file = out / "cluster.json", out / "queries-cluster.txt"
    cluster.write(snapshot, snapshot_path)
    queries.write(queries.build(snapshot, args.queries, seed=args.seed), cluster_file)
    names = outside.outside_names(args.names)
    forwarded = outside.forwarded_queries(names, args.queries, args.seed)
    mix_file = queries.write_lines(mixed_lines(cluster_file, forwarded, args.seed), out / "queries-mix.txt")
    zones = outside.upstream_zones(names, outside.external_targets(snapshot))
    full = Load(mix_file, args.clients, args.outstanding, args.capacity_seconds, CLIENT_CPU)
    started: list[Server] = []
    try:
        knot = servers.start_knot(zones, out / "knot", CLIENT_CPU)
        started.append(knot)
        server = kdns.start(
            snapshot=snapshot_path, log=out / "kdns.log", cpus=SERVER_CPU, upstream=f"{HOST}:{knot.port}",
            metrics=True, extra=["--cache-ttl", str(outside.TTL)],
        )  # fmt: skip
        started.append(server)
        say(f"kdns on port {server.port} forwarding to Knot on port {knot.port}")
        dnsperf.run(full, server.port, out / "dnsperf-warmup.txt", once=True, timeout=120)
        capacity = measure(server, full, out / "dnsperf-capacity.txt")
        total = int(capacity["qps"] * args.load)
        tcp_rate = max(1, int(total * args.tcp_share))
        udp = replace(full, seconds=args.seconds, rate=total - tcp_rate)
        tcp = replace(full, seconds=args.seconds, rate=tcp_rate, clients=2, outstanding=20)
        say(f"capacity {capacity['qps']:,.0f} qps; soaking at {total:,} qps ({tcp_rate:,} over TCP)")
        problems_before = len(server.problems())
        before = server.metrics().value(REQUESTS)
        sampler = Sampler(server, args.sample).start()
        try:
            udp_out, tcp_out = harness.concurrently(
                (udp, server.port, out / "dnsperf-soak-udp.txt", ()),
                (tcp, server.port, out / "dnsperf-soak-tcp.txt", ("-m", "tcp")),
            )
        finally:
            sampler.stop()
        after = server.metrics().value(REQUESTS)
        server.check_alive()
        problems = server.problems()[problems_before:]
    finally:
        for server in started:
            server.stop()
    udp_stats, tcp_stats = dnsperf.parse(udp_out.text), dnsperf.parse(tcp_out.text)
    samples = sampler.samples
    cpu = samples[-1]["cpu_s"] - samples[0]["cpu_s"]
    return {
        "date": host.date(),
        "machine": host.machine(),
        "services": args.services,
        "capacity": {"qps": capacity["qps"], "load": full.flags(), "cpu_us": capacity["cpu_us_per_query"]},
        "offered": {"total": total, "udp": udp.flags(), "tcp": tcp.flags() + " -m tcp", "share": args.load},
        "seconds": args.seconds,
        "warmup": args.warmup,
        "udp": udp_stats.brief(),
        "tcp": tcp_stats.brief(),
        "requests_counted": after - before,
        "server_busy": cpu / (samples[-1]["t"] - samples[0]["t"]) if len(samples) > 1 else float("nan"),
        "memory": growth(samples, args.warmup),
        "samples": samples,
        "problems": problems[:20],
        "problem_count": len(problems),
    }


# -- report ---------------------------------------------------------------------------------------------
def render(result: dict[str, Any]) -> str:
    memory, udp, tcp = result["memory"], result["udp"], result["tcp"]
    capacity, offered, machine = result["capacity"], result["offered"], result["machine"]
    met = "met" if memory["growth"] < GROWTH_TARGET else "not met"
    samples = result["samples"]
    every = samples[1]["t"] - samples[0]["t"] if len(samples) > 1 else 0
    lines = [
        SECTION,
        "",
        f"Written by `python -m bench.soak` on {result['date']} ({machine['cpu']}, {machine['nproc']} "
        f"CPUs): kdns on CPU {SERVER_CPU} forwarding to Knot DNS on 127.0.0.1; dnsperf and Knot on CPU "
        f"{CLIENT_CPU}; the {result['services']:,}-Service cluster of `bench.run`. The UDP mix is "
        f"`bench.run`'s with {FORWARDED_SHARE:.0%} of its lines replaced by forwarded names (answered from "
        "the forward cache after the first pass).",
        "",
        f"- Capacity on the mix: {capacity['qps']:,.0f} QPS (`dnsperf {capacity['load']}`, "
        f"{capacity['cpu_us']:.2f} us of kdns CPU per query).",
        f"- Soak: {result['seconds'] / 60:g} minutes at {offered['share']:.0%} of it, "
        f"{offered['total']:,} QPS: UDP `dnsperf {offered['udp']}` and TCP `dnsperf {offered['tcp']}`.",
        "",
        *table(
            ["", "QPS", "Sent", "Lost", "Avg latency (ms)", "Response codes"],
            [_row("UDP", udp), _row("TCP", tcp)],
            "lrrrrl",
        ),
        "",
        f"- Resident memory after the {result['warmup']:g}-second warm-up "
        f"{memory['after_warmup_mb']:.1f} MB, highest after it {memory['peak_mb']:.1f} MB, at the end "
        f"{memory['end_mb']:.1f} MB: growth {memory['growth']:+.1%} (target under {GROWTH_TARGET:.0%}: "
        f"{met}).",
        f"- kdns CPU busy {result['server_busy']:.0%}; its own request counter went up "
        f"{result['requests_counted']:,.0f} (dnsperf completed {udp['completed'] + tcp['completed']:,}).",
        f"- kdns log lines at WARNING or above during the soak: {result['problem_count']}"
        + (": " + "; ".join(f"`{p[:160]}`" for p in result["problems"][:3]) if result["problems"] else "."),
        "",
        f"Resident memory over the soak (MB, every {every:.0f} s): "
        + ", ".join(f"{s['rss_mb']:.1f}" for s in samples[:: max(1, len(samples) // 30)]),
        "",
    ]
    return "\n".join(lines)


def _row(label: str, run: dict[str, Any]) -> list[str]:
    return [
        label, f"{run['qps']:,.0f}", f"{run['sent']:,}", f"{run['lost']:,}", f"{run['avg_latency_ms']:.3f}",
        codes(run["rcodes"]),
    ]  # fmt: skip


# -- command line ---------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.Parser("bench.soak", __doc__, quick="a one-minute soak; writes bench/out/ only")
    parser.quick_default("--seconds", full=600, quick=60, help="length of the soak")
    parser.quick_default("--warmup", full=60, quick=10, help="seconds before memory counts")
    parser.add_argument(
        "--load", type=float, default=0.8, help="share of the capacity offered (default: 0.8)"
    )
    parser.add_argument("--tcp-share", type=float, default=0.02, help="share of it over TCP (default: 0.02)")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples (default: 5)")
    parser.cluster(queries="lines in the query file")
    parser.add_argument("--names", type=int, default=200, help="outside names per zone (default: 200)")
    parser.add_argument("--capacity-seconds", type=float, default=5.0, help="capacity run (default: 5)")
    parser.dnsperf()
    args = parser.parse(argv)
    if not 0 < args.load <= 1 or not 0 < args.tcp_share < 1 or args.warmup >= args.seconds:
        parser.error("--load must be in (0, 1], --tcp-share in (0, 1), --warmup shorter than --seconds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = harness.run_exclusively(OUT, int(args.seconds + 600), lambda: benchmark(args, OUT))
    if result is None:
        return 1
    readme = harness.readme_for(args.quick)
    report.write_section(readme, SECTION, render(result))
    say(f"wrote {readme} and {OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
