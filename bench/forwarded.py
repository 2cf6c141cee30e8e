"""``python -m bench.forwarded``: kdns answering names outside its zones from its forward cache, beside
cluster names, in one run.

Knot DNS on 127.0.0.1 (pinned to dnsperf's CPU) is kdns's only upstream: it serves generated outside
zones (``example.com`` and ``example.org``, a few hundred names with A and AAAA, TTL 3600), the targets of
the cluster's ExternalName Services, and a wildcard zone for cache misses. kdns serves the 1000-Service
cluster of ``bench.run`` with ``--upstream 127.0.0.1:PORT``, pinned to its own CPU. After one pass over
each query file, dnsperf alternates between the cluster mix of ``bench.run`` and a file of forwarded
names, which kdns then answers from its cache; a last run asks names never asked before, so that every
query is forwarded. kdns's metrics (on 127.0.0.1) count the queries sent upstream in each run. Raw data go
to bench/out/forwarded/; the figures to the "Forwarded names" section of bench/README.md (``--quick``:
bench/out/README.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode

from bench import cluster, outside, queries, report
from bench.lib import compare, dnsperf, harness, host, kdns, options, servers, stats
from bench.lib.dnsperf import Load
from bench.lib.harness import say
from bench.lib.kdns import Kdns
from bench.lib.measure import measure, summarise
from bench.lib.processes import CLIENT_CPU, SERVER_CPU
from bench.lib.servers import HOST, Server
from bench.lib.tables import ms, span, table, times

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "forwarded"
TARGET = 0.5  # issue 5: forwarded cache hits at least half the QPS of cluster names
KINDS = ("cluster", "forwarded", "cluster_forwarding")  # measured in turn, ``repeats`` times
FILES_OF = {"cluster": "cluster", "forwarded": "forwarded", "cluster_forwarding": "cluster", "miss": "miss"}
LABELS = {
    "cluster": "Cluster names, kdns `--no-forward` (as in `bench.run`)",
    "forwarded": "Forwarded names from the cache, kdns `--upstream`",
    "cluster_forwarding": "Cluster names, kdns `--upstream`",
    "miss": "Forwarded names, cache misses, kdns `--upstream`",
}
COUNTERS = ("coredns_forward_requests_total", "coredns_cache_hits_total", "coredns_cache_misses_total")


def counted(server: Kdns, load: Load, output: Path, upstream: Server) -> dict[str, Any]:
    """``measure`` with kdns's forward and cache counters, and Knot's CPU, over the run."""
    before, knot_before = server.metrics(), upstream.cpu_seconds()
    result = measure(server, load, output)
    after, knot_cpu = server.metrics(), upstream.cpu_seconds() - knot_before
    deltas = {
        name.removeprefix("coredns_").removesuffix("_total"): after.value(name) - before.value(name)
        for name in COUNTERS
    }
    return result | {
        "counters": deltas,
        "upstream_per_query": deltas["forward_requests"] / (result["completed"] or 1),
        "knot_cpu_seconds": knot_cpu,
    }


# -- checking the cached answers against Knot -----------------------------------------------------------
def answer_of(port: int, name: str, qtype: str) -> tuple[str, tuple[str, ...], int]:
    """rcode, the answer's records without TTLs (sorted), and the smallest TTL."""
    query = dns.message.make_query(name, qtype, use_edns=False)
    try:
        response = dns.query.udp(query, HOST, port=port, timeout=2.0)
    except dns.exception.Timeout:
        return "TIMEOUT", (), -1
    records = tuple(
        sorted(f"{rrset.name} {rrset.rdtype!r} {rdata}" for rrset in response.answer for rdata in rrset)
    )
    ttls = [rrset.ttl for rrset in response.answer]
    return dns.rcode.to_text(response.rcode()), records, min(ttls, default=-1)


def check(lines: list[str], size: int, kdns_port: int, knot_port: int, seed: int) -> dict[str, Any]:
    """A sample of distinct forwarded questions asked of kdns and of Knot: rcode and records must agree."""
    sample = compare.sample(lines, size, seed)
    differ, ttls = [], []
    for name, qtype in sample:
        ours, theirs = answer_of(kdns_port, name, qtype), answer_of(knot_port, name, qtype)
        ttls.append(ours[2])
        if ours[:2] != theirs[:2] or not ours[1]:
            differ.append(
                f"{name} {qtype}: kdns {ours[0]} {list(ours[1])}, Knot {theirs[0]} {list(theirs[1])}"
            )
    return {
        "asked": len(sample),
        "differ": differ,
        "ttl_min": min(ttls, default=-1),
        "ttl_max": max(ttls, default=-1),
    }


# -- the run --------------------------------------------------------------------------------------------
def start(snapshot: Path, log: Path, upstream: str | None) -> Kdns:
    """kdns with its metrics: forwarding to ``upstream`` and caching for up to its TTL, or without one
    ``--no-forward``."""
    extra = ["--cache-ttl", str(outside.TTL)] if upstream else []
    name = "kdns-forward" if upstream else "kdns-no-forward"
    return kdns.start(
        snapshot=snapshot, log=log, cpus=SERVER_CPU, name=name, upstream=upstream, metrics=True, extra=extra
    )


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    snapshot_path = out / "cluster.json"
    for old in out.glob("dnsperf-*.txt"):
        old.unlink()
    snapshot = cluster.generate(args.services, seed=args.seed)
    cluster.write(snapshot, snapshot_path)
    cluster_list = queries.build(snapshot, args.queries, seed=args.seed)
    names = outside.outside_names(args.names)
    targets = outside.external_targets(snapshot)
    forwarded_lines = outside.forwarded_queries(names, args.queries, args.seed)
    files = {
        "cluster": queries.write(cluster_list, out / "queries-cluster.txt"),
        "forwarded": queries.write_lines(forwarded_lines, out / "queries-forwarded.txt"),
        "miss": queries.write_lines(
            outside.miss_queries(args.miss_names, args.seed), out / "queries-miss.txt"
        ),
    }
    loads = {
        kind: Load(path, args.clients, args.outstanding, args.seconds, CLIENT_CPU)
        for kind, path in files.items()
    }
    loads["miss"] = replace(loads["miss"], seconds=args.miss_seconds)
    zones = outside.upstream_zones(names, targets)
    started: list[Server] = []
    try:
        knot = servers.start_knot(zones, out / "knot", CLIENT_CPU)
        started.append(knot)
        authoritative = start(snapshot_path, out / "kdns-no-forward.log", None)
        started.append(authoritative)
        forwarding = start(snapshot_path, out / "kdns-forward.log", f"{HOST}:{knot.port}")
        started.append(forwarding)
        by_kind = dict.fromkeys(KINDS, forwarding) | {"cluster": authoritative}
        say(f"kdns --no-forward on port {authoritative.port}, kdns on port {forwarding.port} "
            f"forwarding to Knot on port {knot.port}")  # fmt: skip
        warm = {}
        for kind in KINDS:
            server = by_kind[kind]
            before = server.metrics()
            output = out / f"dnsperf-{kind}-warmup.txt"
            dnsperf.run(loads[FILES_OF[kind]], server.port, output, once=True, timeout=120)
            after = server.metrics()
            warm[kind] = {name: after.value(name) - before.value(name) for name in COUNTERS}
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for i in range(1, args.repeats + 1):
            for kind in KINDS:
                knot.pin(CLIENT_CPU)
                output = out / f"dnsperf-{kind}-{i}.txt"
                result = counted(by_kind[kind], loads[FILES_OF[kind]], output, knot)
                runs[kind].append(result)
                sent = result["counters"]["forward_requests"]
                say(f"run {i} {kind}: {result['qps']:,.0f} qps, {result['cpu_us_per_query']:.2f} us/query, "
                    f"{result['lost']} lost, {sent:.0f} sent upstream")  # fmt: skip
        summaries = {kind: summarise(LABELS[kind], runs[kind]) for kind in KINDS}
        checked = check(forwarded_lines, args.compare, forwarding.port, knot.port, args.seed)
        knot.pin(CLIENT_CPU)
        miss = counted(forwarding, loads["miss"], out / "dnsperf-miss.txt", knot)
        say(f"misses: {miss['qps']:,.0f} qps, {miss['cpu_us_per_query']:.2f} us/query, {miss['lost']} lost")
        summaries["miss"] = summarise(LABELS["miss"], [miss])
        memory = forwarding.memory_kib()
    finally:
        for server in started:
            server.stop()
    external = {
        f"{item['metadata']['name']}.{item['metadata']['namespace']}.svc.cluster.local"
        for item in snapshot["items"]
        if item["kind"] == "Service" and item["spec"].get("type") == "ExternalName"
    }
    externals = sum(1 for q in cluster_list if q.name in external)
    return {
        "date": host.date(),
        "machine": host.machine(),
        "versions": host.versions(),
        "quick": args.quick,
        "cluster": cluster.summary(snapshot),
        "upstream": {
            "outside_zones": list(outside.OUTSIDE_ZONES),
            "names": len(names),
            "distinct_questions": len(set(forwarded_lines)),
            "external_targets": len(targets),
            "zones": sorted(zones),
            "miss_names": args.miss_names,
        },
        "load": {
            "queries": args.queries,
            "clients": args.clients,
            "outstanding": args.outstanding,
            "seconds": args.seconds,
            "repeats": args.repeats,
            "miss_seconds": args.miss_seconds,
            "external_share": externals / len(cluster_list),
        },
        "warmup": warm,
        "servers": summaries,
        "check": checked,
        "rss_kib": memory.get("VmRSS", 0),
    }


# -- the README section ---------------------------------------------------------------------------------
HOW_TO_RUN = """\
### How to run

```sh
.venv/bin/python -m bench.forwarded           # full run, about 3 minutes; rewrites this section
.venv/bin/python -m bench.forwarded --quick   # 2-second runs, once each; writes bench/out/README.md only
```

Raw data go to `bench/out/forwarded/`: `results.json` (every run, with kdns's forward and cache
counters), the query files, dnsperf's output, the kdns log and Knot's configuration and zone files.
"""


def _row(data: dict[str, Any]) -> list[str]:
    m, runs = data["median"], data["runs"]
    return [
        data["label"], f"`{data['load']}`", f"{m['qps']:,.0f}", ms(m["avg_latency"]),
        f"{data['lost_total']:,} of {data['sent_total']:,}", f"{m['cpu_us_per_query']:.2f}",
        f"{m['system_share']:.0%}", f"{m['server_busy']:.0%}", f"{m['client_busy']:.0%}",
        f"{m['other_busy']:.2f}", f"{stats.median_of(runs, 'upstream_per_query'):.3f}",
        f"{stats.median_of(runs, 'knot_cpu_seconds'):.2f}",
    ]  # fmt: skip


def _met(ratio: float) -> str:
    return "met" if ratio >= TARGET else "not met"


def _ratio(servers: dict[str, Any], reference: str = "cluster") -> tuple[float, str, float]:
    """Forwarded cache hits against ``reference``: QPS ratio of the medians, its range over the repeats,
    and the ratio of CPU per query (reference / forwarded)."""
    cluster, forwarded = servers[reference], servers["forwarded"]
    qps = forwarded["median"]["qps"] / cluster["median"]["qps"]
    per_repeat = span(stats.per_repeat(forwarded["runs"], cluster["runs"], "qps"))
    cpu = cluster["median"]["cpu_us_per_query"] / forwarded["median"]["cpu_us_per_query"]
    return qps, per_repeat, cpu


def _table(result: dict[str, Any]) -> list[str]:
    servers = result["servers"]
    header = [
        "Queries, server", "dnsperf load", "QPS", "Avg latency (ms)", "Lost", "CPU us/query",
        "of which system", "kdns CPU busy", "dnsperf CPU busy", "Other CPU load", "Sent upstream per answer",
        "Knot CPU s",
    ]  # fmt: skip
    order = ("cluster", "forwarded", "cluster_forwarding", "miss")
    qps, spread, cpu = _ratio(servers)
    qps_fwd, spread_fwd, cpu_fwd = _ratio(servers, "cluster_forwarding")
    ratios = [
        ["QPS, forwarded / cluster (medians)", f"{qps:.3g}", f"{qps_fwd:.3g}"],
        ["Same, per repeat", spread, spread_fwd],
        ["CPU us/query, cluster / forwarded", f"{cpu:.3g}", f"{cpu_fwd:.3g}"],
        [
            f"Target: at least {TARGET:g}x the speed of cluster names",
            f"QPS: {_met(qps)}; CPU per query: {_met(cpu)}",
            "",
        ],
    ]
    return [
        *table(header, [_row(servers[kind]) for kind in order if kind in servers], "llr"),
        "",
        *table(
            [
                "Forwarded names from the cache against",
                "Cluster names, `--no-forward`",
                "Cluster names, `--upstream`",
            ],
            ratios,
        ),
    ]


def _notes(result: dict[str, Any]) -> list[str]:
    servers, load, check = result["servers"], result["load"], result["check"]
    lines = []
    busy = {servers[kind]["label"]: servers[kind]["median"]["client_busy"] for kind in KINDS}
    if max(busy.values()) >= 0.9:
        lines.append(
            "- dnsperf's CPU: "
            + ", ".join(f"{share:.0%} busy for {label}" for label, share in busy.items())
            + ". Near 100% the QPS is bounded by the client as much as by kdns; CPU per query is then the "
            "fairer comparison."
        )
    fwd = servers["cluster_forwarding"]
    upstream = stats.median_of(fwd["runs"], "upstream_per_query")
    lines.append(
        f"- Cluster names on the forwarding kdns: {upstream:.2%} of the answers cost an upstream query. "
        f"The {load['external_share']:.1%} of the mix that ask an ExternalName Service with an outside "
        "target are answered with the CNAME and the target's records, which kdns keeps in its forward "
        "cache under the client's question (no longer than the CNAME's TTL), so after the first pass "
        "they come from the cache like the forwarded names."
    )
    miss = servers.get("miss")
    if miss:
        run_ = miss["runs"][0]
        asked = run_["completed"] + run_["lost"]
        repeated = max(0, asked - result["upstream"]["miss_names"])
        again = f"; {repeated:,} names came round again" if repeated else ""
        lines.append(
            f"- Cache misses (informational): {miss['median']['qps']:,.0f} answers/s, each for a name never "
            f"asked before (a `{outside.MISS_ZONE}` wildcard in Knot), so each went upstream "
            f"({run_['counters']['forward_requests']:,.0f} upstream queries for {run_['completed']:,} "
            f"answers{again}); one `dnsperf -l {load['miss_seconds']:g}` run after the others. kdns's CPU "
            "per answer covers the upstream exchange, parsing the upstream's answer with dnslib and storing "
            "it in the cache; Knot answered on dnsperf's CPU."
        )
    lines.append(
        f"- Cached answers checked against Knot: {check['asked']} distinct forwarded questions asked of "
        f"both; {len(check['differ'])} differ in rcode or records (TTLs aside); kdns's TTLs "
        f"{check['ttl_min']} to {check['ttl_max']} s, counting down from Knot's {outside.TTL}."
    )
    lines += [f"  - {line}" for line in check["differ"][:5]]
    return lines


def render(result: dict[str, Any]) -> str:
    tools, c, up = result["versions"], result["cluster"], result["upstream"]
    load, warm = result["load"], result["warmup"]
    lines = [
        report.FORWARDED_HEADING,
        "",
        "kdns forwards names outside its zones to its upstreams and keeps their answers in its cache. "
        "Here dnsperf asks, in turn, a kdns run as in `bench.run` (`--no-forward`) for the cluster names "
        "of `bench.run`, and a kdns forwarding to Knot DNS for outside names (which it then answers from "
        "its cache) and for the same cluster names. This section is written by `python -m "
        "bench.forwarded`.",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {host.describe(result['machine'])}",
        f"- kdns: commit {host.commit(tools)}, Python {tools['python']}; Knot DNS {tools['knot']}, dnsperf "
        f"{tools['dnsperf']}",
        f"- Upstream: Knot DNS on 127.0.0.1, pinned to CPU {CLIENT_CPU} with dnsperf, authoritative for "
        f"{', '.join(f'`{z}`' for z in up['zones'])}: {up['names']} names with an A and an AAAA each in "
        f"{' and '.join(f'`{z}`' for z in up['outside_zones'])}, the {up['external_targets']} targets of "
        f"the cluster's ExternalName Services, and a wildcard in `{outside.MISS_ZONE}`; TTL {outside.TTL} s",
        f"- kdns: `kdns serve --snapshot cluster.json --no-forward` and `kdns serve --snapshot cluster.json "
        f"--upstream 127.0.0.1:PORT --cache-ttl {outside.TTL}`, each with `--metrics 127.0.0.1:PORT`, both "
        f"on CPU {SERVER_CPU} (one of them loaded at a time); the cluster is `bench.run`'s "
        f"({c['services']:,} Services in {c['namespaces']} namespaces, {c['endpoints']:,} endpoints)",
        f"- Cluster names: `bench.run`'s mix, {load['queries']:,} queries; {load['external_share']:.1%} of "
        "them ask an ExternalName Service's A: `--no-forward` answers the CNAME alone, a forwarding kdns "
        "adds the target's records from upstream",
        f"- Forwarded names: {load['queries']:,} queries over the {up['names']} outside names, 80% A and 20% "
        f"AAAA ({up['distinct_questions']:,} distinct questions)",
        f"- Load: `dnsperf -c {load['clients']} -q {load['outstanding']} -l {load['seconds']:g}` on CPU "
        f"{CLIENT_CPU}, as in `bench.run`; one pass over each query file first (the forwarded pass sent "
        f"{warm['forwarded']['coredns_forward_requests_total']:,.0f} queries upstream), then "
        f"{times(load['repeats'])} each, alternating; medians. CPU us/query is kdns's user+system time "
        'over the run (/proc) divided by the answers; "Sent upstream per answer" comes from kdns\'s '
        "`coredns_forward_requests_total` over the run, Knot's CPU from /proc; other CPU load: CPU seconds "
        "per second that every other process used of the two CPUs (other work on the machine shifts the "
        "figures: compare rows of one run)",
        "",
        "### Cache hits against cluster names",
        "",
        *_table(result),
        "",
        *_notes(result),
        "",
        HOW_TO_RUN,
    ]
    return "\n".join(lines).rstrip() + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.Parser(
        "bench.forwarded", __doc__, quick="2-second runs, once each; bench/out/README.md only"
    )
    parser.cluster(queries="queries per file")
    parser.add_argument("--names", type=int, default=300, help="names in each outside zone (default: 300)")
    parser.runs(seconds=(10, 2), repeats="runs of each query file")
    parser.quick_default("--miss-seconds", full=5, quick=2, help="length of the cache-miss run")
    parser.add_argument(
        "--miss-names", type=int, default=300_000, help="distinct miss names (default: 300000)"
    )
    parser.dnsperf()
    parser.add_argument(
        "--compare", type=int, default=200, help="questions checked against Knot (default: 200)"
    )
    args = parser.parse(argv)
    if min(args.seconds, args.repeats, args.miss_seconds, args.names, args.miss_names) <= 0:
        parser.error("--seconds, --repeats, --miss-seconds, --names and --miss-names must be positive")
    return args


def time_limit(args: argparse.Namespace) -> int:
    """Seconds the whole benchmark may take: every run's length plus generous slack."""
    return int(600 + args.repeats * len(KINDS) * (args.seconds + 20) + args.miss_seconds + 60)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = harness.run_exclusively(OUT, time_limit(args), lambda: benchmark(args, OUT))
    if result is None:
        return 1
    readme = harness.readme_for(args.quick)
    report.write_section(readme, report.FORWARDED_HEADING, render(result))
    qps, _, cpu = _ratio(result["servers"])
    say(f"forwarded/cluster: {qps:.3g} QPS, {cpu:.3g} by CPU per query; wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
