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
import random
import statistics
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode

from bench import cluster, dnsperf, harness, queries, report, run, servers
from bench.dnsperf import Load
from bench.harness import say
from bench.servers import HOST, Server

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "forwarded"
SERVER_CPU, CLIENT_CPU = run.SERVER_CPU, run.CLIENT_CPU
OUTSIDE_ZONES = ("example.com", "example.org")
MISS_ZONE = "misses.example"  # every name answered by a wildcard: each new name is a cache miss
TTL = 3600
WORDS = ("www", "api", "cdn", "img", "login", "static", "mail", "auth", "assets", "status")
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


# -- the outside zones Knot serves ----------------------------------------------------------------------
def outside_names(per_zone: int) -> list[str]:
    """``per_zone`` names in each of ``OUTSIDE_ZONES``, e.g. ``api-3.example.com``."""
    return [
        f"{WORDS[i % len(WORDS)]}-{i // len(WORDS)}.{apex}" for apex in OUTSIDE_ZONES for i in range(per_zone)
    ]


def external_targets(snapshot: dict[str, Any]) -> list[str]:
    """The ExternalName targets of the cluster's Services (kdns follows them upstream)."""
    return sorted({
        item["spec"]["externalName"].rstrip(".").lower()
        for item in snapshot["items"]
        if item["kind"] == "Service" and item["spec"].get("type") == "ExternalName"
    })  # fmt: skip


def apex_of(name: str) -> str:
    return ".".join(name.split(".")[-2:])


def zone_text(apex: str, names: Sequence[str]) -> str:
    """A zone file: SOA, NS, and an A and an AAAA for each of ``names`` (``*`` for a wildcard)."""
    lines = [
        f"$ORIGIN {apex}.",
        f"$TTL {TTL}",
        f"@ SOA ns.{apex}. hostmaster.{apex}. 1 7200 1800 86400 {TTL}",
        "@ NS ns",
        "ns A 192.0.2.53",
    ]
    for i, name in enumerate(names):
        owner = name.removesuffix("." + apex) if name != "*" else "*"
        lines += [f"{owner} A 198.51.{i // 250}.{i % 250 + 1}", f"{owner} AAAA 2001:db8::{i + 1:x}"]
    return "\n".join(lines) + "\n"


def upstream_zones(names: list[str], targets: list[str]) -> dict[str, str]:
    """Apex -> zone-file text: the outside names, the ExternalName targets and the wildcard zone."""
    by_apex: dict[str, list[str]] = {}
    for name in [*names, *targets]:
        by_apex.setdefault(apex_of(name), []).append(name)
    zones = {apex: zone_text(apex, sorted(set(owners))) for apex, owners in sorted(by_apex.items())}
    zones[MISS_ZONE] = zone_text(MISS_ZONE, ["*"])
    return zones


def forwarded_queries(names: list[str], count: int, seed: int) -> list[str]:
    """``count`` dnsperf lines over ``names``: 80% A, 20% AAAA."""
    rng = random.Random(seed)
    return [f"{rng.choice(names)} {'AAAA' if rng.random() < 0.2 else 'A'}" for _ in range(count)]


def miss_queries(count: int, seed: int) -> list[str]:
    """``count`` distinct names under the wildcard zone, none of them asked before in this run."""
    return [f"q{i}-{seed}.{MISS_ZONE} A" for i in range(count)]


def write_lines(lines: list[str], path: Path) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# -- kdns's counters ------------------------------------------------------------------------------------
def scrape(port: int, names: Sequence[str] = COUNTERS) -> dict[str, float]:
    """``names`` from the Prometheus text at 127.0.0.1:``port``/metrics, each summed over its labels."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


@dataclass
class Kdns:
    server: Server
    metrics_port: int


def start(snapshot: Path, log: Path, upstream: str | None) -> Kdns:
    """kdns on the server CPU with its metrics on 127.0.0.1: forwarding to ``upstream`` (on 127.0.0.1),
    or ``--no-forward`` without one."""
    metrics_port = servers.free_port()
    extra = ["--metrics", f"{HOST}:{metrics_port}"] + (["--cache-ttl", str(TTL)] if upstream else [])
    name = "kdns-forward" if upstream else "kdns-no-forward"
    server = servers.start_kdns(snapshot, log, SERVER_CPU, name=name, upstream=upstream, extra=extra)
    return Kdns(server, metrics_port)


def counted(kdns: Kdns, load: Load, output: Path, upstream: Server) -> dict[str, Any]:
    """``run.measure`` with kdns's forward and cache counters, and Knot's CPU, over the run."""
    before, knot_before = scrape(kdns.metrics_port), upstream.cpu_seconds()
    result = run.measure(kdns.server, load, output)
    after, knot_cpu = scrape(kdns.metrics_port), upstream.cpu_seconds() - knot_before
    deltas = {
        name.removeprefix("coredns_").removesuffix("_total"): after[name] - before[name] for name in COUNTERS
    }
    answered = result["completed"] or 1
    return result | {
        "counters": deltas,
        "upstream_per_query": deltas["forward_requests"] / answered,
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
    rng = random.Random(seed)
    distinct = sorted({tuple(line.split()) for line in lines})
    sample = rng.sample(distinct, min(size, len(distinct)))
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
def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    snapshot_path = out / "cluster.json"
    for old in out.glob("dnsperf-*.txt"):
        old.unlink()
    snapshot = cluster.generate(args.services, seed=args.seed)
    cluster.write(snapshot, snapshot_path)
    cluster_list = queries.build(snapshot, args.queries, seed=args.seed)
    queries.write(cluster_list, out / "queries-cluster.txt")
    names = outside_names(args.names)
    targets = external_targets(snapshot)
    forwarded_lines = forwarded_queries(names, args.queries, args.seed)
    files = {
        "cluster": out / "queries-cluster.txt",
        "forwarded": write_lines(forwarded_lines, out / "queries-forwarded.txt"),
        "miss": write_lines(miss_queries(args.miss_names, args.seed), out / "queries-miss.txt"),
    }
    loads = {
        kind: Load(path, args.clients, args.outstanding, args.seconds, CLIENT_CPU)
        for kind, path in files.items()
    }
    loads["miss"] = replace(loads["miss"], seconds=args.miss_seconds)
    zones = upstream_zones(names, targets)
    started: list[Server] = []
    try:
        knot = servers.start_knot(zones, out / "knot", CLIENT_CPU)
        started.append(knot)
        authoritative = start(snapshot_path, out / "kdns-no-forward.log", None)
        forwarding = start(snapshot_path, out / "kdns-forward.log", f"{HOST}:{knot.port}")
        started += [authoritative.server, forwarding.server]
        by_kind = dict.fromkeys(KINDS, forwarding) | {"cluster": authoritative}
        say(f"kdns --no-forward on port {authoritative.server.port}, kdns on port {forwarding.server.port} "
            f"forwarding to Knot on port {knot.port}")  # fmt: skip
        warm = {}
        for kind in KINDS:
            kdns = by_kind[kind]
            before = scrape(kdns.metrics_port)
            output = out / f"dnsperf-{kind}-warmup.txt"
            dnsperf.run(loads[FILES_OF[kind]], kdns.server.port, output, once=True, timeout=120)
            after = scrape(kdns.metrics_port)
            warm[kind] = {name: after[name] - before[name] for name in COUNTERS}
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
        summaries = {kind: run.summarise(LABELS[kind], runs[kind]) for kind in KINDS}
        checked = check(forwarded_lines, args.compare, forwarding.server.port, knot.port, args.seed)
        knot.pin(CLIENT_CPU)
        miss = counted(forwarding, loads["miss"], out / "dnsperf-miss.txt", knot)
        say(f"misses: {miss['qps']:,.0f} qps, {miss['cpu_us_per_query']:.2f} us/query, {miss['lost']} lost")
        summaries["miss"] = run.summarise(LABELS["miss"], [miss])
        memory = forwarding.server.memory_kib()
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
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": run.machine(),
        "versions": run.versions(),
        "quick": args.quick,
        "cluster": run.cluster_summary(snapshot, {}),
        "upstream": {
            "outside_zones": list(OUTSIDE_ZONES),
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


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _row(data: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    m = data["median"]
    upstream = statistics.median(r["upstream_per_query"] for r in runs)
    knot = statistics.median(r["knot_cpu_seconds"] for r in runs)
    return (
        f"| {data['label']} | `{data['load']}` | {m['qps']:,.0f} | {_ms(m['avg_latency'])} "
        f"| {data['lost_total']:,} of {data['sent_total']:,} | {m['cpu_us_per_query']:.2f} "
        f"| {m['system_share']:.0%} | {m['server_busy']:.0%} | {m['client_busy']:.0%} "
        f"| {m['other_busy']:.2f} | {upstream:.3f} | {knot:.2f} |"
    )


def _met(ratio: float) -> str:
    return "met" if ratio >= TARGET else "not met"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _ratio(servers: dict[str, Any], reference: str = "cluster") -> tuple[float, str, float]:
    """Forwarded cache hits against ``reference``: QPS ratio of the medians, its range over the repeats,
    and the ratio of CPU per query (reference / forwarded)."""
    cluster, forwarded = servers[reference], servers["forwarded"]
    qps = forwarded["median"]["qps"] / cluster["median"]["qps"]
    per_repeat = [f["qps"] / c["qps"] for f, c in zip(forwarded["runs"], cluster["runs"], strict=False)]
    spread = f"{min(per_repeat):.3g} to {max(per_repeat):.3g}" if len(per_repeat) > 1 else "n/a"
    cpu = cluster["median"]["cpu_us_per_query"] / forwarded["median"]["cpu_us_per_query"]
    return qps, spread, cpu


def _table(result: dict[str, Any]) -> list[str]:
    servers = result["servers"]
    rows = [
        "| Queries, server | dnsperf load | QPS | Avg latency (ms) | Lost | CPU us/query | of which system "
        "| kdns CPU busy | dnsperf CPU busy | Other CPU load | Sent upstream per answer | Knot CPU s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = ("cluster", "forwarded", "cluster_forwarding", "miss")
    rows += [_row(servers[kind], servers[kind]["runs"]) for kind in order if kind in servers]
    qps, spread, cpu = _ratio(servers)
    qps_fwd, spread_fwd, cpu_fwd = _ratio(servers, "cluster_forwarding")
    verdict = f"QPS: {_met(qps)}; CPU per query: {_met(cpu)}"
    return [
        *rows,
        "",
        "| Forwarded names from the cache against | Cluster names, `--no-forward` "
        "| Cluster names, `--upstream` |",
        "|---|---:|---:|",
        f"| QPS, forwarded / cluster (medians) | {qps:.3g} | {qps_fwd:.3g} |",
        f"| Same, per repeat | {spread} | {spread_fwd} |",
        f"| CPU us/query, cluster / forwarded | {cpu:.3g} | {cpu_fwd:.3g} |",
        f"| Target: at least {TARGET:g}x the speed of cluster names | {verdict} | |",
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
    upstream = statistics.median(r["upstream_per_query"] for r in fwd["runs"])
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
            f"asked before (a `{MISS_ZONE}` wildcard in Knot), so each went upstream "
            f"({run_['counters']['forward_requests']:,.0f} upstream queries for {run_['completed']:,} "
            f"answers{again}); one `dnsperf -l {load['miss_seconds']:g}` run after the others. kdns's CPU "
            "per answer covers the upstream exchange, parsing the upstream's answer with dnslib and storing "
            "it in the cache; Knot answered on dnsperf's CPU."
        )
    lines.append(
        f"- Cached answers checked against Knot: {check['asked']} distinct forwarded questions asked of "
        f"both; {len(check['differ'])} differ in rcode or records (TTLs aside); kdns's TTLs "
        f"{check['ttl_min']} to {check['ttl_max']} s, counting down from Knot's {TTL}."
    )
    lines += [f"  - {line}" for line in check["differ"][:5]]
    return lines


def render(result: dict[str, Any]) -> str:
    machine, versions, c, up = result["machine"], result["versions"], result["cluster"], result["upstream"]
    load = result["load"]
    dirty = " with uncommitted changes in kdns/" if versions["kdns_dirty"] else ""
    warm = result["warmup"]
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
        f"- Machine: {machine['cpu']}, {machine['nproc']} CPUs, Linux {machine['kernel']}"
        + report.niceness(machine),
        f"- kdns: commit {versions['kdns_commit']}{dirty}, Python {versions['python']}; Knot DNS "
        f"{versions['knot']}, dnsperf {versions['dnsperf']}",
        f"- Upstream: Knot DNS on 127.0.0.1, pinned to CPU {CLIENT_CPU} with dnsperf, authoritative for "
        f"{', '.join(f'`{z}`' for z in up['zones'])}: {up['names']} names with an A and an AAAA each in "
        f"{' and '.join(f'`{z}`' for z in up['outside_zones'])}, the {up['external_targets']} targets of "
        f"the cluster's ExternalName Services, and a wildcard in `{MISS_ZONE}`; TTL {TTL} s",
        f"- kdns: `kdns serve --snapshot cluster.json --no-forward` and `kdns serve --snapshot cluster.json "
        f"--upstream 127.0.0.1:PORT --cache-ttl {TTL}`, each with `--metrics 127.0.0.1:PORT`, both on CPU "
        f"{SERVER_CPU} (one of them loaded at a time); the cluster is `bench.run`'s ({c['services']:,} "
        f"Services in {c['namespaces']} namespaces, {c['endpoints']:,} endpoints)",
        f"- Cluster names: `bench.run`'s mix, {load['queries']:,} queries; {load['external_share']:.1%} of "
        "them ask an ExternalName Service's A: `--no-forward` answers the CNAME alone, a forwarding kdns "
        "adds the target's records from upstream",
        f"- Forwarded names: {load['queries']:,} queries over the {up['names']} outside names, 80% A and 20% "
        f"AAAA ({up['distinct_questions']:,} distinct questions)",
        f"- Load: `dnsperf -c {load['clients']} -q {load['outstanding']} -l {load['seconds']:g}` on CPU "
        f"{CLIENT_CPU}, as in `bench.run`; one pass over each query file first (the forwarded pass sent "
        f"{warm['forwarded']['coredns_forward_requests_total']:,.0f} queries upstream), then "
        f"{_times(load['repeats'])} each, alternating; medians. CPU us/query is kdns's user+system time "
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
    parser = argparse.ArgumentParser(prog="python -m bench.forwarded", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="2-second runs, once each; bench/out/README.md only"
    )
    parser.add_argument("--services", type=int, default=1000, help="Services in the cluster (default: 1000)")
    parser.add_argument("--queries", type=int, default=100_000, help="queries per file (default: 100000)")
    parser.add_argument("--names", type=int, default=300, help="names in each outside zone (default: 300)")
    parser.add_argument("--seconds", type=float, help="length of each dnsperf run (default: 10; quick: 2)")
    parser.add_argument("--repeats", type=int, help="runs of each query file (default: 3; quick: 1)")
    parser.add_argument(
        "--miss-seconds", type=float, help="length of the cache-miss run (default: 5; quick: 2)"
    )
    parser.add_argument(
        "--miss-names", type=int, default=300_000, help="distinct miss names (default: 300000)"
    )
    parser.add_argument("--clients", type=int, default=8, help="dnsperf -c (default: 8)")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q (default: 100)")
    parser.add_argument(
        "--compare", type=int, default=200, help="questions checked against Knot (default: 200)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of cluster and queries (default: 1)")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.miss_seconds = args.miss_seconds or (2.0 if args.quick else 5.0)
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
