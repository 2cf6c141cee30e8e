"""The "Beside CoreDNS" section of bench/README.md, from ``bench.versus``'s results: every figure as
kdns / CoreDNS, the side that does better named."""

from __future__ import annotations

from typing import Any

from bench import report
from bench.lib import host, stats
from bench.lib.tables import span, table, times

SETUP_NAMES = ("one_cpu", "all_cpus")
KINDS = {"cluster": "cluster names", "forwarded": "forwarded names, cache hits"}
QUIET = 0.1  # other CPU load (CPU seconds per second) above which a run is said to share the machine
SHORT = {"one_cpu": "one CPU", "all_cpus": "both CPUs"}
HALF_HEADER = [
    "Queries", "Server", "dnsperf load", "QPS", "Lost", "p50 (ms)", "p90 (ms)", "p99 (ms)", "p99.9 (ms)",
    "max (ms)", "CPU us/query", "Other CPU load",
]  # fmt: skip
SCALE_HEADER = [
    "Server", "Start to ready (s), median", "Range", "CPU s to ready", "VmRSS MB", "VmHWM MB",
    "VmRSS after updates MB", "Event to answer p50 (ms)", "p99 (ms)", "max (ms)", "Missed",
]  # fmt: skip
VERIFIED_HEADER = ["Server", "Start to ready (s)", "CPU s to ready", "VmRSS MB", "VmHWM MB"]
HOW_TO_RUN = """\
### How to run

```sh
.venv/bin/python -m bench.versus           # full run, about {minutes:.0f} minutes; rewrites this section
.venv/bin/python -m bench.versus --quick   # 2-second runs, 1,000 Services for the scale part; bench/out/ only
```

Raw data go to `bench/out/versus/`: `results.json` (every run), the query files, the Corefiles, the
server logs and dnsperf's output. CoreDNS is built by `make tools-cluster` (`tests/cluster/build.sh
coredns`); the clusters stay loaded in etcd's data directories under `~/.cache/kdns-cluster/`.
"""


def _better(kdns: float, coredns: float, higher_wins: bool) -> str:
    if kdns == coredns:
        return "even"
    return "kdns" if (kdns > coredns) == higher_wins else "**CoreDNS**"


def _row(figure: str, kdns: float, coredns: float, fmt: str, higher_wins: bool) -> list[str]:
    return [
        figure,
        format(kdns, fmt),
        format(coredns, fmt),
        f"{stats.ratio(kdns, coredns):.2f}",
        _better(kdns, coredns, higher_wins),
    ]


def _medians(result: dict[str, Any], setup: str, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    servers = result["load_part"][setup]["kinds"][kind]
    return servers["kdns"], servers["coredns"]


def _starts(scale: dict[str, Any], name: str, key: str) -> float:
    return stats.median(start[key] for start in scale["servers"][name]["starts"])


def summary(result: dict[str, Any]) -> list[list[str]]:
    """The rows of the kdns / CoreDNS table."""
    rows = []
    for setup in SETUP_NAMES:
        for kind, what in KINDS.items():
            kdns, core = _medians(result, setup, kind)
            where = f"{what}, {SHORT[setup]}"
            rows.append(_row(f"QPS, {where}", kdns["median"]["qps"], core["median"]["qps"], ",.0f", True))
            rows.append(
                _row(
                    f"CPU us per query, {where}",
                    kdns["median"]["cpu_us_per_query"],
                    core["median"]["cpu_us_per_query"],
                    ".2f",
                    False,
                )
            )
            for pct in ("p50", "p99"):
                rows.append(
                    _row(
                        f"{pct} ms at half the maximum rate, {where}",
                        kdns["half_rate"]["latency"][pct] * 1e3,
                        core["half_rate"]["latency"][pct] * 1e3,
                        ".3f",
                        False,
                    )
                )
    scale = result["scale"]
    big = _cluster(scale["cluster"])
    kdns_s, core_s = scale["servers"]["kdns"], scale["servers"]["coredns"]
    rows += [
        _row(f"Start to `/ready` 200, s ({big})", _starts(scale, "kdns", "ready_s"),
             _starts(scale, "coredns", "ready_s"), ".2f", False),
        _row("VmRSS 1 s after ready, MB", _starts(scale, "kdns", "VmRSS") / 1024,
             _starts(scale, "coredns", "VmRSS") / 1024, ".0f", False),
        _row("VmHWM (peak RSS) by then, MB", _starts(scale, "kdns", "VmHWM") / 1024,
             _starts(scale, "coredns", "VmHWM") / 1024, ".0f", False),
        _row("VmRSS after the watch updates, MB", kdns_s["after_updates"]["VmRSS"] / 1024,
             core_s["after_updates"]["VmRSS"] / 1024, ".0f", False),
    ]  # fmt: skip
    verified = scale.get("verified")
    if verified:
        kdns_v, core_v = verified["servers"]["kdns"], verified["servers"]["coredns"]
        pods = f"{verified['load']['pods']:,} Pods"
        rows += [
            _row(f"Start to `/ready` 200 with `pods verified`, s (the same and {pods})",
                 kdns_v["ready_s"], core_v["ready_s"], ".2f", False),
            _row("VmRSS 1 s after ready with `pods verified`, MB",
                 kdns_v["VmRSS"] / 1024, core_v["VmRSS"] / 1024, ".0f", False),
            _row("VmHWM (peak RSS) by then with `pods verified`, MB",
                 kdns_v["VmHWM"] / 1024, core_v["VmHWM"] / 1024, ".0f", False),
        ]  # fmt: skip
    for pct in ("p50", "p99"):
        rows.append(
            _row(
                f"Watch event to answer, {pct} ms",
                kdns_s["latency"]["latency_ms"][pct],
                core_s["latency"]["latency_ms"][pct],
                ".1f",
                False,
            )
        )
    return rows


def _cluster(c: dict[str, Any]) -> str:
    return f"{c['services']:,} Services, {c['endpoints']:,} endpoints"


def _load_rows(result: dict[str, Any], setup: str) -> list[list[str]]:
    rows = []
    for kind, what in KINDS.items():
        for data in _medians(result, setup, kind):
            m = data["median"]
            rows.append([
                what, _name(data), f"`{data['load']}`", f"{m['qps']:,.0f}", f"{m['avg_latency'] * 1e3:.3f}",
                f"{data['lost_total']:,} of {data['sent_total']:,}",
                f"{m['cpu_us_per_query']:.2f}", f"{m['system_share']:.0%}", f"{m['server_busy']:.0%}",
                f"{m['client_busy']:.0%}", f"{m['other_busy']:.2f}",
                _upstream(data), f"{data['rss_kib'] / 1024:.0f}",
            ])  # fmt: skip
    return rows


def _upstream(data: dict[str, Any]) -> str:
    """Queries sent upstream per answer; "n/a" for runs that counted them under a name the server does
    not export (CoreDNS, before ``bench.versus`` read its proxy's histogram)."""
    if data["label"] == "coredns" and "forward_metric" not in data["runs"][0]:
        return "n/a"
    return f"{stats.median_of(data['runs'], 'upstream_per_query'):.4f}"


def _name(data: dict[str, Any]) -> str:
    return "kdns" if data["label"] == "kdns" else "CoreDNS"


def _ratio_rows(result: dict[str, Any], setup: str) -> list[list[str]]:
    rows = []
    for kind, what in KINDS.items():
        kdns, core = _medians(result, setup, kind)
        repeats = stats.per_repeat(kdns["runs"], core["runs"], "qps")
        rows.append([
            what, f"{stats.ratio(kdns['median']['qps'], core['median']['qps']):.2f}", span(repeats),
            f"{stats.ratio(core['median']['cpu_us_per_query'], kdns['median']['cpu_us_per_query']):.2f}",
        ])  # fmt: skip
    return rows


def _half_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for setup in SETUP_NAMES:
        for kind, what in KINDS.items():
            for data in _medians(result, setup, kind):
                half, lat = data["half_rate"], data["half_rate"]["latency"]
                rows.append([
                    f"{what}, {SHORT[setup]}", _name(data),
                    f"`{half['load']}`", f"{half['qps']:,.0f}", f"{half['lost']:,} of {half['sent']:,}",
                    *(f"{lat[p] * 1e3:.3f}" for p in ("p50", "p90", "p99", "p999", "max")),
                    f"{half['cpu_us_per_query']:.2f}", f"{half['other_busy']:.2f}",
                ])  # fmt: skip
    return rows


def _scale_rows(scale: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, label in (("kdns", "kdns"), ("coredns", "CoreDNS")):
        data = scale["servers"][name]
        starts = [s["ready_s"] for s in data["starts"]]
        lat = data["latency"]
        rows.append([
            label, f"{stats.median(starts):.2f}", span(starts),
            f"{stats.median(s['cpu_s'] for s in data['starts']):.2f}",
            f"{_starts(scale, name, 'VmRSS') / 1024:.0f}", f"{_starts(scale, name, 'VmHWM') / 1024:.0f}",
            f"{data['after_updates']['VmRSS'] / 1024:.0f}",
            f"{lat['latency_ms']['p50']:.1f}", f"{lat['latency_ms']['p99']:.1f}",
            f"{lat['latency_ms']['max']:.1f}", f"{lat['missed']} of {lat['updates']}",
        ])  # fmt: skip
    return rows


def _wins(rows: list[list[str]]) -> str:
    won = [row[0] for row in rows if row[-1] == "**CoreDNS**"]
    if not won:
        return "CoreDNS does better on none of these figures in this run."
    return "CoreDNS does better on: " + "; ".join(won) + "."


def _busy_note(result: dict[str, Any]) -> list[str]:
    busy = []
    for setup in SETUP_NAMES:
        for kind, what in KINDS.items():
            for data in _medians(result, setup, kind):
                share = data["median"]["client_busy"]
                if setup == "one_cpu" and share >= 0.9:
                    busy.append(f"{data['label']} {what} {share:.0%}")
    other = max(
        _medians(result, setup, kind)[i]["median"]["other_busy"]
        for setup in SETUP_NAMES
        for kind in KINDS
        for i in (0, 1)
    )
    lines = []
    if other >= QUIET:
        lines.append(
            f"- The machine was not quiet: other processes used up to {other:.2f} CPU seconds per second "
            'during the load runs (the "Other CPU load" column; another test suite ran beside this '
            "benchmark). Absolute figures are lower and noisier than on a quiet machine; compare the two "
            "servers within the run."
        )
    if not busy:
        return lines
    return [
        *lines,
        f"- dnsperf's CPU was near full during some one-CPU runs ({', '.join(busy)}): there the QPS may be "
        "bounded by the client as well; CPU per query is the fairer figure.",
    ]


def _verified_rows(verified: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, label in (("kdns", "kdns"), ("coredns", "CoreDNS")):
        data = verified["servers"][name]
        rows.append([
            label, f"{data['ready_s']:.2f}", f"{data['cpu_s']:.2f}", f"{data['VmRSS'] / 1024:.0f}",
            f"{data['VmHWM'] / 1024:.0f}",
        ])  # fmt: skip
    return rows


def _verified(scale: dict[str, Any]) -> list[str]:
    """The ``pods verified`` table, or why there is none."""
    verified = scale.get("verified")
    if not verified:
        return ["`pods verified` was not measured in this run (`--no-pods-verified`).", ""]
    load = verified["load"]
    return [
        f"With `pods verified` both servers follow the cluster's {load['pods']:,} Pods as well (each "
        "created bound to its node, then given its addresses and a Ready condition through the status "
        f"subresource, as a kubelet reports them: written once, {load['load_s'] / 60:.0f} minutes the "
        "first time, and kept in etcd). Each server started once, on one CPU:",
        "",
        *table(VERIFIED_HEADER, _verified_rows(verified)),
        "",
    ]


def render(result: dict[str, Any]) -> str:
    tools, load, part, scale = result["versions"], result["load"], result["load_part"], result["scale"]
    rows = summary(result)
    header = [
        "Queries", "Server", "dnsperf load", "QPS", "Avg latency (ms)", "Lost", "CPU us/query",
        "of which system", "Server CPU busy", "dnsperf CPU busy", "Other CPU load",
        "Sent upstream per answer", "RSS MB",
    ]  # fmt: skip
    ratio_header = ["Queries", "QPS, kdns / CoreDNS", "Same, per repeat", "CPU us/query, CoreDNS / kdns"]
    one, both = part["one_cpu"], part["all_cpus"]
    lines = [
        report.COREDNS_HEADING,
        "",
        "kdns and CoreDNS run the same Corefile, kubeadm's (`tests/corefiles/kubeadm.Corefile`) moved to "
        "127.0.0.1 (`tests/support/coredns.py`: `bind`, the probes and metrics on loopback ports, `forward` "
        "to Knot DNS on 127.0.0.1 instead of /etc/resolv.conf), and both follow one real kube-apiserver "
        "(etcd and kube-apiserver built from the Go module proxy, no controller manager, the generated "
        "cluster written through the API once and kept in etcd). Every figure is stated as kdns / CoreDNS. "
        "This section is written by `python -m bench.versus`.",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {host.describe(result['machine'])}",
        f"- kdns: commit {host.commit(tools)}, Python {tools['python']}, {tools['event_loop']}; "
        f"{tools['coredns']} (tests/coredns/go.mod); Knot DNS {tools['knot']}; dnsperf {tools['dnsperf']}",
        "- The Corefile: `errors`, `health` (lameduck 5 s), `ready`, `kubernetes cluster.local in-addr.arpa "
        "ip6.arpa` (`pods insecure`, `ttl 30`), `prometheus`, `forward` (`max_concurrent 1000`), `cache 30` "
        "with `disable success cluster.local` and `disable denial cluster.local`, `loop`, `reload`, "
        "`loadbalance`. So CoreDNS caches only forwarded answers and works out every cluster answer anew; "
        "kdns's own answer cache (packed responses, each dropped when its name's records change; not a TTL "
        "cache) answers repeated cluster questions whatever the Corefile says, and `loadbalance` rotates "
        "the addresses of each answer in both",
        f"- Load: the cluster of `bench.run` ({_cluster(part['cluster'])}, {part['cluster']['namespaces']} "
        f"namespaces) and its mix, {part['queries']:,} queries (70% A/AAAA on Service names, 10% SRV, 20% "
        f"search-path NXDOMAIN); forwarded names: {part['queries']:,} queries over {load['names']} names "
        "in `example.com` and `example.org`, A and AAAA, served by Knot (TTL 3600, so `cache 30` keeps "
        "each for 30 s). One pass over each file first, then "
        f"`dnsperf -c {load['clients']} -q {load['outstanding']} -l {load['seconds']:g}` "
        f"{times(load['repeats'])} against each server in turn; medians",
        f"- {one['label']}: both pinned to CPU {one['server_cpus']} (loaded one after the other), dnsperf on "
        f"CPU {one['client_cpus']} with kube-apiserver, etcd, Knot and this script",
        f"- {both['label']}: both servers and dnsperf on CPUs {both['server_cpus'][0]} and "
        f"{both['server_cpus'][1]}. With two CPUs dnsperf shares them with the server it loads, so this "
        "measures what each server makes of the CPU dnsperf leaves, not a machine with a core per worker",
        "- CPU us/query: the server's user+system CPU time (/proc) over a run divided by the answers; "
        "\"Sent upstream per answer\" from kdns's `coredns_forward_requests_total` and CoreDNS's "
        '`coredns_proxy_request_duration_seconds_count{proxy_name="forward"}`; other CPU load: '
        "CPU seconds per second all other processes used of the two CPUs (other work on the machine, such "
        "as a test suite, shifts the figures: compare the servers within one run)",
        f"- Scale: {_cluster(scale['cluster'])} in {scale['cluster']['namespaces']} namespaces (the "
        "cluster of `bench.real_api`), each server on one CPU as above, alone; started "
        f"{times(scale['starts'])} each, in turn: spawn to the first 200 from `/ready` (polled every 10 ms; "
        "both say ready once the `kubernetes` plugin's lists are in), memory (/proc/PID/status, MiB) 1 s "
        f"later; on the last start, {scale['updates']} changes of one headless endpoint's address through "
        f"the API (`{scale['timed_name']}`, {scale['gap_s']:g} s apart), each timed until a UDP answer has "
        "the new address",
        "",
        "### kdns / CoreDNS",
        "",
        *table(["Figure", "kdns", "CoreDNS", "kdns / CoreDNS", "Better"], rows, "lrrrl"),
        "",
        _wins(rows),
        "",
        f"### Load, {SHORT['one_cpu']}",
        "",
        *table(header, _load_rows(result, "one_cpu"), "llr"),
        "",
        *table(ratio_header, _ratio_rows(result, "one_cpu")),
        "",
        f"### Load, {SHORT['all_cpus']}",
        "",
        *table(header, _load_rows(result, "all_cpus"), "llr"),
        "",
        *table(ratio_header, _ratio_rows(result, "all_cpus")),
        "",
        "### Latency at half the maximum rate",
        "",
        "Each server at half its own median QPS above (`dnsperf -Q`, with `-v`), so the two answer "
        "different rates:",
        "",
        *table(HALF_HEADER, _half_rows(result), "lllr"),
        "",
        f"### Following {_cluster(scale['cluster'])}",
        "",
        *table(SCALE_HEADER, _scale_rows(scale)),
        "",
        *_verified(scale),
        *_busy_note(result),
        "- Cluster names sent upstream by kdns: the mix asks ExternalName Services whose targets lie "
        "outside the cluster; kdns follows such a CNAME through its upstream (and caches the target's "
        "records for up to 30 s), CoreDNS answers the CNAME alone.",
        "- kdns's RSS under `--workers 2` adds up the supervisor and both workers (each worker holds its "
        "own copy of the zone); CoreDNS's memory is its measured VmRSS, not its sizing guide's estimate.",
        "",
        HOW_TO_RUN.format(minutes=max(1.0, result["took_s"] / 60)),
    ]
    return "\n".join(lines).rstrip() + "\n"
