"""The benchmark's README: machine, versions, workload, the results table and how to run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

INFORMER_HEADING = "## Following the Kubernetes API"  # written by bench/informer.py, kept by render's callers
HOW_TO_RUN = """\
## How to run

```sh
make bench                                   # full run; rewrites this file
.venv/bin/python -m bench.run --quick        # 2-second runs, once each; writes bench/out/ only
.venv/bin/python -m bench.run --seconds 30 --repeats 5
```

`make bench` installs dnsperf and Knot DNS when they are missing. Each run regenerates the cluster
(`python -m bench.cluster`) and the query file (`python -m bench.queries`) into `bench/out/`, which
also keeps the raw dnsperf output, the Knot configuration and zone files, the server logs and
`results.json`.
"""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _table(servers: dict[str, dict[str, Any]]) -> list[str]:
    rows = [
        "| Server | QPS | Avg latency (ms) | Latency stddev (ms) | Lost | CPU us/query | RSS MB "
        "| Server CPU busy | dnsperf CPU busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for data in servers.values():
        m = data["median"]
        rows.append(
            f"| {data['label']} | {m['qps']:,.0f} | {_ms(m['avg_latency'])} | {_ms(m['latency_stddev'])} "
            f"| {data['lost_total']:,} of {data['sent_total']:,} | {m['cpu_us_per_query']:.2f} "
            f"| {data['rss_kib'] / 1024:.1f} | {m['server_busy']:.0%} | {m['client_busy']:.0%} |"
        )
    return rows


def _ratios(servers: dict[str, dict[str, Any]]) -> list[str]:
    kdns, knot = servers["kdns"]["median"], servers["knot"]["median"]
    lines = [
        f"kdns/Knot QPS ratio: {kdns['qps'] / knot['qps']:.3f}; "
        f"kdns/Knot CPU per query: {kdns['cpu_us_per_query'] / knot['cpu_us_per_query']:.2f}",
    ]
    for data in servers.values():
        name, m = data["label"], data["median"]
        if m["server_busy"] < 0.9:
            lines += [
                "",
                f"{name} was {m['server_busy']:.0%} busy: this load does not saturate it, so its QPS is a "
                "lower bound. CPU us/query compares the servers' cost per answer.",
            ]
        if m["client_busy"] >= 0.9:
            lines += [
                "",
                f"dnsperf used {m['client_busy']:.0%} of its CPU during the {name} runs, so that QPS may be "
                "bounded by the client as well as by the server.",
            ]
    return lines


def _rcodes(servers: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for data in servers.values():
        total = sum(data["rcodes"].values()) or 1
        shares = ", ".join(f"{code} {n / total:.1%}" for code, n in sorted(data["rcodes"].items()))
        lines.append(f"- {data['label']}: {shares}")
    return lines


def _comparison(result: dict[str, Any]) -> list[str]:
    cmp = result["comparison"]
    lines = [
        f"{cmp['asked']} distinct queries sampled from the query file were asked of both servers "
        f"(UDP, no EDNS, as dnsperf sends them): {len(cmp['mismatches'])} differ in rcode, AA/TC flags or "
        f"answer section; {len(cmp['section_only'])} differ only in the authority or additional section "
        "(SOA serials are not compared).",
    ]
    if cmp["mismatches"]:
        lines += ["", "Differences in rcode, flags or answer:"]
    for key, kdns, knot in cmp["mismatches"][:10]:
        lines += ["", f"- `{key}`", f"  - kdns: {kdns}", f"  - Knot: {knot}"]
    if cmp["section_only"]:
        lines += ["", "Differences in the other sections:", ""]
    lines += [f"- `{key}`: kdns {kdns}, Knot {knot}" for key, kdns, knot in cmp["section_only"][:10]]
    return lines


def render(result: dict[str, Any]) -> str:
    machine, versions = result["machine"], result["versions"]
    cluster, load = result["cluster"], result["load"]
    dirty = " with uncommitted changes in kdns/" if versions["kdns_dirty"] else ""
    commit = versions["kdns_commit"] + dirty
    lines = [
        "# Benchmarks",
        "",
        "kdns and Knot DNS answer the same cluster zone over UDP on 127.0.0.1 while dnsperf sends queries.",
        "Knot serves the zone files that `kdns dump` prints for the generated cluster, so both hold the",
        "same records. This file is written by `python -m bench.run`.",
        "",
        "## Latest run",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {machine['cpu']}, {machine['nproc']} CPUs, Linux {machine['kernel']}",
        f"- kdns: commit {commit}, Python {versions['python']}, {versions['event_loop']}",
        f"- Knot DNS {versions['knot']}, dnsperf {versions['dnsperf']}",
        f"- Cluster: {cluster['services']:,} Services ({cluster['cluster_ip']} ClusterIP, "
        f"{cluster['headless']} headless, {cluster['external']} ExternalName) in {cluster['namespaces']} "
        f"namespaces, {cluster['endpoints']:,} endpoints; {cluster['records']:,} records in the dumped zones",
        f"- Queries: {load['queries']:,} in the file ({load['distinct']:,} distinct), {load['mix']}; kdns "
        "answers repeated questions from its answer cache, so after the warm-up every answer is a cache hit",
        f"- Load: `dnsperf -c {load['clients']} -q {load['outstanding']} -l {load['seconds']:g}` on CPU "
        f"{load['client_cpu']}, each server alone on CPU {load['server_cpu']}; each server warmed by one "
        f"pass over the query file, then measured {load['repeats']} times, alternating servers; figures are "
        "medians",
        "- Knot runs one UDP, one TCP and one background worker. knotd binds its UDP worker to CPU 0 itself,",
        f"  so before each run every thread of both servers is moved back to CPU {load['server_cpu']}",
        "- CPU us/query: the server's user+system time (/proc/PID/stat) over a dnsperf run divided by the",
        "  queries completed; CPU busy: CPU seconds used per second of the dnsperf process's lifetime;",
        "  RSS: VmRSS after the last run",
        "",
        *_table(result["servers"]),
        "",
        *_ratios(result["servers"]),
        "",
        "Response codes over all measured runs:",
        "",
        *_rcodes(result["servers"]),
        "",
        "### Answer check",
        "",
        *_comparison(result),
        "",
        HOW_TO_RUN,
    ]
    return "\n".join(lines).rstrip() + "\n"


def informer_offset(text: str) -> int:
    """Where the informer section's heading line starts in ``text``, or -1."""
    return ("\n" + text).find("\n" + INFORMER_HEADING + "\n")


def kept_sections(readme: Path) -> str:
    """The trailing section another script wrote into ``readme`` (from ``INFORMER_HEADING`` on), or ""."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    at = informer_offset(text)
    return "" if at < 0 else "\n" + text[at:].rstrip("\n") + "\n"
