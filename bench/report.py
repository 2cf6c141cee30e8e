"""bench/README.md: the part ``bench.run`` writes, which opens it (machine, versions, workload, the
results and how to run it), and the order of the sections the other commands write after it, each
replacing its own and keeping the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.lib import host, stats
from bench.lib.profiling import function_table, share_table
from bench.lib.tables import ms, span, table, times

# Sections other scripts write after this one, in this order; each script replaces its own and keeps the rest
FORWARDED_HEADING = "## Forwarded names"  # bench/forwarded.py
WORKERS_HEADING = "## Several cores: --workers"  # bench/workers.py
INFORMER_HEADING = "## Following the Kubernetes API"  # bench/informer.py
REAL_API_HEADING = "## Through a real kube-apiserver"  # bench/real_api.py
COREDNS_HEADING = "## Beside CoreDNS: load, memory, start and watch"  # bench/versus.py
SIZING_HEADING = "## Memory for sizing"  # bench/sizing.py
ABUSE_HEADING = "## Abuse and overload"  # bench/abuse.py
SOAK_HEADING = "## Soak"  # bench/soak.py
FUZZ_HEADING = "## Fuzzing"  # bench/fuzz.py
CHANGES_HEADING = "## Changes to the hot path, before and after"  # kept by hand, one entry per change
TRAILING_HEADINGS = (
    FORWARDED_HEADING,
    WORKERS_HEADING,
    INFORMER_HEADING,
    REAL_API_HEADING,
    COREDNS_HEADING,
    SIZING_HEADING,
    ABUSE_HEADING,
    SOAK_HEADING,
    FUZZ_HEADING,
    CHANGES_HEADING,
)
HOW_TO_RUN = """\
## How to run

```sh
make bench                                   # every benchmark, about 25 minutes; rewrites this file
make soak                                    # ten minutes at 80% of capacity (the Soak section)
.venv/bin/python -m bench.run                # this part only, about 5 minutes; keeps the sections below
.venv/bin/python -m bench.forwarded          # each other section alone: forwarded, workers, informer,
.venv/bin/python -m bench.abuse --quick      #   real_api, abuse, soak; --quick writes bench/out/ only
.venv/bin/python -m bench.run --quick        # 2-second runs, once each; writes bench/out/ only
.venv/bin/python -m bench.run --seconds 30 --repeats 5 --profile-seconds 0
```

`make bench` installs dnsperf and Knot DNS when they are missing and builds etcd and kube-apiserver
(`make tools-cluster`, about 10 minutes the first time); py-spy comes with the `test` extra
(without it the profile is left out). Each run regenerates the cluster (`python -m bench.cluster`) and
the query file (`python -m bench.queries`) into `bench/out/`, which also keeps the raw dnsperf output
(the `-v` runs without their per-answer lines), py-spy's raw stacks, the Knot configuration and zone
files, the server logs and `results.json` (every run, every percentile). The reference servers run on
their own too: `python -m bench.minimal_server --kdns-port PORT --queries FILE [--loop asyncio]` and
`python -m bench.dnslib_server --kdns-port PORT --queries FILE` take their answers from the kdns on
PORT.
"""


INTRO = """\
kdns and four reference servers answer the same cluster names over UDP on 127.0.0.1 while dnsperf
sends queries. This file is written by `python -m bench.run`; the references are:

- **Minimal server, uvloop** ([minimal_server.py](minimal_server.py)): a dict of pre-packed responses
  for exactly the questions of the query file, taken from kdns at start-up, so its answers are kdns's
  bytes. Per query: find the end of the question, lowercase the name, one dict lookup, splice the
  query's ID and question into the stored response, `sendto`. No Python server on uvloop does less.
- **Minimal server, asyncio**: the same code on the standard asyncio event loop.
- **dnslib DNSServer** ([dnslib_server.py](dnslib_server.py)): dnslib's own `DNSServer` (a thread per
  datagram) with a resolver answering from a dict of kdns's responses parsed into dnslib records;
  dnslib parses every query and packs every reply. Request logging is off.
- **Knot DNS** (one UDP worker) serving the zone files that `kdns dump` prints for the generated
  cluster.
"""
TARGETS = {  # issue 5: kdns's QPS as a multiple of each reference's
    "minimal-uvloop": (0.8, ">= 0.8"),
    "dnslib": (25.0, ">= 25"),
}
P99_TARGET = 0.001  # seconds, at half the maximum rate


def _table(servers: dict[str, dict[str, Any]]) -> list[str]:
    header = [
        "Server", "dnsperf load", "QPS", "Avg latency (ms)", "Latency stddev (ms)", "p99 (ms), `-v` run",
        "Lost", "CPU us/query", "of which system", "RSS MB", "Server CPU busy", "dnsperf CPU busy",
        "Other CPU load",
    ]  # fmt: skip
    rows = []
    for data in servers.values():
        m = data["median"]
        full = data.get("full_load", {})
        rows.append([
            data["label"], f"`{data['load']}`", f"{m['qps']:,.0f}", ms(m["avg_latency"]),
            ms(m["latency_stddev"]), ms(full["latency"]["p99"]) if full else "n/a",
            f"{data['lost_total']:,} of {data['sent_total']:,}",
            f"{m['cpu_us_per_query']:.2f}", f"{m['system_share']:.0%}", f"{data['rss_kib'] / 1024:.1f}",
            f"{m['server_busy']:.0%}", f"{m['client_busy']:.0%}", _other(m),
        ])  # fmt: skip
    return table(header, rows, "llr")


def _ratios(servers: dict[str, dict[str, Any]]) -> list[str]:
    kdns = servers["kdns"]
    rows = []
    for name, data in servers.items():
        if name == "kdns":
            continue
        qps = kdns["median"]["qps"] / data["median"]["qps"]
        cpu = data["median"]["cpu_us_per_query"] / kdns["median"]["cpu_us_per_query"]
        target = "reported"
        if name in TARGETS:
            bound, text = TARGETS[name]
            target = f"{text}: {'met' if qps >= bound else 'not met'}"
        elif name == "minimal-asyncio":
            target = "none"
        per_repeat = span(stats.per_repeat(kdns["runs"], data["runs"], "qps"))
        rows.append([data["label"], f"{qps:.3g}", per_repeat, f"{cpu:.3g}", target])
    header = [
        "kdns against",
        "kdns QPS / its QPS",
        "Same, per repeat",
        "Its CPU us/query / kdns's",
        "Target (QPS)",
    ]
    return table(header, rows, "lrrrl")


def _other(m: dict[str, Any]) -> str:
    other = m.get("other_busy")
    return "n/a" if other is None else f"{other:.2f}"


def _notes(servers: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for data in servers.values():
        name, m = data["label"], data["median"]
        if m["server_busy"] < 0.9 and m["client_busy"] < 0.9:
            lines += [
                "",
                f"Neither {name} ({m['server_busy']:.0%}) nor dnsperf ({m['client_busy']:.0%}) kept its CPU "
                "busy: other processes took CPU time during these runs, so this QPS is below what the "
                "machine gives; CPU us/query is less affected.",
            ]
        elif m["server_busy"] < 0.9:
            lines += [
                "",
                f"{name} was {m['server_busy']:.0%} busy: this load does not saturate it, so its QPS is a "
                "lower bound; CPU us/query compares the servers' cost per answer.",
            ]
        if m["client_busy"] >= 0.9:
            lines += [
                "",
                f"dnsperf used {m['client_busy']:.0%} of its CPU during the {name} runs, so that QPS may be "
                "bounded by the client as well as by the server.",
            ]
    return lines


def _half_rate(servers: dict[str, dict[str, Any]]) -> list[str]:
    header = [
        "Server", "dnsperf load", "QPS", "Lost", "Avg (ms)", "p50 (ms)", "p90 (ms)", "p99 (ms)", "p99.9 (ms)",
        "max (ms)", "CPU us/query", "Server CPU busy", "Other CPU load",
    ]  # fmt: skip
    rows = []
    for data in servers.values():
        run = data.get("half_rate")
        if not run:
            continue
        lat = run["latency"]
        rows.append([
            data["label"], f"`{run['load']}`", f"{run['qps']:,.0f}", f"{run['lost']:,} of {run['sent']:,}",
            ms(run["avg_latency"]), ms(lat["p50"]), ms(lat["p90"]), ms(lat["p99"]), ms(lat["p999"]),
            ms(lat["max"]),
            f"{run['cpu_us_per_query']:.2f}", f"{run['server_busy']:.0%}", _other(run),
        ])  # fmt: skip
    lines = table(header, rows, "llr")
    kdns = servers["kdns"].get("half_rate")
    if kdns:
        p99 = kdns["latency"]["p99"]
        verdict = "met" if p99 < P99_TARGET else "not met"
        lines += [
            "",
            f"kdns's p99 at half its maximum rate: {ms(p99)} ms (target < 1 ms: {verdict}), over "
            f"{kdns['latency']['samples']:,} answers.",
        ]
        knot = servers.get("knot", {}).get("half_rate")
        if p99 >= P99_TARGET and knot and knot["latency"]["p99"] >= P99_TARGET:
            lines += [
                "",
                f"Knot DNS's p99 at half its rate was {ms(knot['latency']['p99'])} ms as well: a tail this "
                "long in every server comes from the machine (other processes taking the CPUs), not from the "
                "servers; the figure says little about kdns until the benchmark runs on a quiet machine.",
            ]
    return lines


def _profile(profile: dict[str, Any]) -> list[str]:
    if "error" in profile:
        return [f"No profile: {profile['error']}."]
    lines = [
        f"py-spy and perf sampled kdns together for {profile['seconds']:g} s while dnsperf loaded it as "
        f"above (both on dnsperf's CPU); kdns answered {profile['qps_while_profiled']:,.0f} QPS meanwhile. "
        "See [lib/profiling.py](lib/profiling.py) for why py-spy samples without stopping kdns and so sees "
        "Python frames only.",
    ]
    spy = profile.get("pyspy", {"error": "py-spy is not installed"})
    if "error" in spy:
        lines += ["", f"No py-spy profile: {spy['error']}."]
    else:
        lines += [
            "",
            f"py-spy, `record --nonblocking --rate 200`, {spy['samples']:,} samples of the busy thread "
            f"(idle ones left out; raw stacks in `bench/out/{spy['raw']}`). Own time is the function's "
            "Python code and the C code it runs (for `datagram_received`, the `sendto` syscall; for "
            "`Runner.run`, uvloop's C loop: epoll, `recvmsg`, building the callback's arguments); "
            "inclusive time adds the Python functions it calls.",
            "",
            *function_table(spy["functions"]),
        ]
    perf = profile.get("perf", {"error": "perf is not installed"})
    if "error" in perf:
        lines += ["", f"No perf profile: {perf['error']}."]
    else:
        lines += [
            "",
            "perf, `record -F 999`, self time by shared object (`[kernel.kallsyms]` is the kernel: the "
            "syscalls, and on loopback the delivery of each answer into dnsperf's socket, which runs in "
            "kdns's `sendmsg`):",
            "",
            *share_table("Shared object", perf["dsos"]),
            "",
            "and by symbol:",
            "",
            *share_table("Symbol (shared object)", perf["symbols"]),
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
    byte_check = result["byte_check"]
    lines = [
        f"The minimal servers against kdns, byte for byte: {byte_check['asked']} queries (the sampled "
        "questions below, each as written and upper-cased), same query bytes to both; "
        + "; ".join(
            f"{result['servers'][name]['label']}: {len(differ)} responses differ"
            for name, differ in byte_check["differ"].items()
        )
        + ".",
    ]
    for name, differ in byte_check["differ"].items():
        lines += [f"- {name}: `{key}`" for key in differ[:5]]
    for name, cmp in result["comparison"].items():
        label = result["servers"][name]["label"]
        lines += [
            "",
            f"kdns against {label}: {cmp['asked']} distinct queries sampled from the query file (UDP, no "
            f"EDNS, as dnsperf sends them): {len(cmp['mismatches'])} differ in rcode, AA/TC flags or answer "
            f"section; {len(cmp['section_only'])} differ only in the authority or additional section (SOA "
            "serials are not compared).",
        ]
        if cmp["mismatches"]:
            lines += ["", "Differences in rcode, flags or answer:"]
        for key, kdns, other in cmp["mismatches"][:10]:
            lines += ["", f"- `{key}`", f"  - kdns: {kdns}", f"  - {label}: {other}"]
        if cmp["section_only"]:
            lines += ["", "Differences in the other sections:", ""]
        lines += [f"- `{key}`: kdns {kdns}, {label} {other}" for key, kdns, other in cmp["section_only"][:10]]
    return lines


def _mix(load: dict[str, Any]) -> str:
    shares = load.get("shares", {})
    total = sum(shares.values()) or 1
    kinds = {"hit": "A/AAAA hits", "srv": "SRV", "nxdomain": "search-path NXDOMAIN"}
    counted = ", ".join(f"{shares.get(kind, 0) / total:.1%} {text}" for kind, text in kinds.items())
    return f"{load['mix']} (in the file: {counted})"


def _dnslib_load(result: dict[str, Any]) -> str:
    dnslib, load = result["servers"]["dnslib"], result["load"]
    same = load["dnslib"].split(" -l ")[0] == f"-c {load['clients']} -q {load['outstanding']}"
    lost = dnslib["lost_total"]
    text = (
        f"- dnslib's `DNSServer` answers {dnslib['median']['qps']:,.0f} QPS, so its runs are shorter "
        f"(`dnsperf {load['dnslib']}`, after 1 s of warm-up) to keep it from dominating the time; "
    )
    if same and not lost:
        return text + (
            "it takes the same -c and -q as the others without losing a query (it queues them, hence its "
            "latency), so they were not lowered (`--dnslib-clients`, `--dnslib-outstanding`)"
        )
    return (
        text + f"it lost {lost:,} queries at that load (`--dnslib-clients`, `--dnslib-outstanding` lower it)"
    )


def render(result: dict[str, Any]) -> str:
    machine, versions = result["machine"], result["versions"]
    cluster, load = result["cluster"], result["load"]
    lines = [
        "# Benchmarks",
        "",
        INTRO,
        "## Latest run",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {host.describe(machine)}",
        f"- kdns: commit {host.commit(versions)}, Python {versions['python']}, {versions['event_loop']} "
        f"{versions.get('uvloop', '')}",
        f"- Knot DNS {versions['knot']}, dnsperf {versions['dnsperf']}, dnslib {versions.get('dnslib')}, "
        f"py-spy {versions.get('py_spy')}",
        f"- Cluster: {cluster['services']:,} Services ({cluster['cluster_ip']} ClusterIP, "
        f"{cluster['headless']} headless, {cluster['external']} ExternalName) in {cluster['namespaces']} "
        f"namespaces, {cluster['endpoints']:,} endpoints; {cluster['records']:,} records in the dumped zones",
        f"- Queries: {load['queries']:,} in the file ({load['distinct']:,} distinct), {_mix(load)}; NXDOMAIN "
        "names are outside names under the search path of a pod, e.g. `example.com.<ns>.svc.cluster.local`; "
        "kdns answers repeated questions from its answer cache, so after the warm-up every answer is a cache "
        "hit",
        f"- Load: `dnsperf -c {load['clients']} -q {load['outstanding']} -l {load['seconds']:g}` on CPU "
        f"{load['client_cpu']}, each server alone on CPU {load['server_cpu']}; each server warmed by one "
        f"pass over the query file, then measured {times(load['repeats'])}, alternating servers; figures "
        "are medians of those runs. Other work on the machine shifts absolute "
        "figures from minute to minute: compare servers within one run, and CPU per query next to QPS",
        _dnslib_load(result),
        "- Knot runs one UDP, one TCP and one background worker. knotd binds its UDP worker to CPU 0 itself,",
        f"  so before each run every thread of every server is moved back to CPU {load['server_cpu']}",
        "- CPU us/query: the server's user+system time (/proc/PID/stat) over a dnsperf run divided by the",
        "  queries completed, and the share of it spent in the kernel; CPU busy: CPU seconds used per second",
        "  of the dnsperf process's lifetime; RSS: VmRSS at the end of the benchmark",
        "- Other CPU load: CPU seconds per second that all other processes (and the hypervisor's",
        "  steal) used of the two CPUs during the run, from /proc/stat",
        "- p99: dnsperf 2.10 prints no percentiles, so they come from a separate run per server with `-v`",
        "  (a line per answer with its latency); printing costs dnsperf CPU, so those runs offer a little",
        "  less load than the QPS runs. Percentiles, here and in every section below, interpolate linearly",
        "  between the two nearest ranks ([lib/stats.py](lib/stats.py))",
        "",
        "### Throughput",
        "",
        *_table(result["servers"]),
        "",
        *_ratios(result["servers"]),
        "",
        "The QPS ratios are ratios of the medians; per repeat they divide runs that followed each other "
        "within seconds. CPU per query is the fairer measure where dnsperf, not the server, is the limit.",
        *_notes(result["servers"]),
        "",
        "### Latency at half the maximum rate",
        "",
        "Each server at half its median QPS above (`dnsperf -Q`), with `-v`:",
        "",
        *_half_rate(result["servers"]),
        "",
        "### Where kdns's CPU goes",
        "",
        *_profile(result.get("profile", {"error": "none recorded"})),
        "",
        "### Response codes over all measured runs",
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


def section_offset(text: str, heading: str) -> int:
    """Where the line ``heading`` starts in ``text``, or -1."""
    return ("\n" + text).find("\n" + heading + "\n")


def trailing_offset(text: str) -> int:
    """Where the first of the sections other scripts write starts in ``text``, or -1."""
    found = [at for heading in TRAILING_HEADINGS if (at := section_offset(text, heading)) >= 0]
    return min(found, default=-1)


def replace_section(text: str, heading: str, section: str) -> str:
    """``text`` with the section under ``heading`` (up to the next of ``TRAILING_HEADINGS``) replaced by
    ``section``; a new one goes before the sections listed after it, or at the end."""
    later = TRAILING_HEADINGS[TRAILING_HEADINGS.index(heading) + 1 :]
    start = section_offset(text, heading)
    others = [section_offset(text, other) for other in TRAILING_HEADINGS if other != heading]
    if start >= 0:
        end = min((at for at in others if at > start), default=len(text))
    else:
        start = end = min(
            (at for other in later if (at := section_offset(text, other)) >= 0), default=len(text)
        )
    head, tail = text[:start].rstrip("\n"), text[end:].lstrip("\n")
    body = section.rstrip("\n") + "\n"
    return (head + "\n\n" if head else "") + body + ("\n" + tail if tail else "")


def write_section(readme: Path, heading: str, section: str) -> None:
    """Replace (or add) the section under ``heading`` in ``readme``, keeping every other part."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    readme.parent.mkdir(parents=True, exist_ok=True)
    readme.write_text(replace_section(text, heading, section), encoding="utf-8")


def kept_sections(readme: Path) -> str:
    """The trailing sections other scripts wrote into ``readme`` (from the first of ``TRAILING_HEADINGS``
    on), or ""."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    at = trailing_offset(text)
    return "" if at < 0 else "\n" + text[at:].rstrip("\n") + "\n"
