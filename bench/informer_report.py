"""The "Following the Kubernetes API" section of bench/README.md, from ``bench.informer``'s results."""

from __future__ import annotations

import textwrap
from typing import Any

from bench.lib import host, stats
from bench.lib.profiling import function_table, share_table
from bench.lib.tables import table
from bench.report import INFORMER_HEADING

HOW_TO_RUN = """\
### How to run

```sh
.venv/bin/python -m bench.informer            # full run, under two minutes; rewrites this section
.venv/bin/python -m bench.informer --quick    # 1,000 Services; writes bench/out/informer/ only
.venv/bin/python -m bench.informer --trace-gc # also log kdns's garbage collections of 5 ms or more;
                                              # writes bench/out/informer/ only
```

Raw data go to `bench/out/informer/`: `results.json` (every latency sample, the relist timeline in
0.1 s bins, the fake's list request times), the kdns logs, `relist-replies.f64` (float64 triples
per reply during the relist: sent, received on `time.monotonic()`, 0 for the expected answer), and
`pyspy-relist.txt`, py-spy's raw stacks of the profiled relist.
"""
WIDTH = 104


def _para(text: str) -> list[str]:
    """A paragraph wrapped at ``WIDTH`` columns."""
    return textwrap.wrap(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def _item(text: str) -> list[str]:
    """A list item wrapped at ``WIDTH`` columns."""
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent="- ",
        subsequent_indent="  ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def _mb(kib: float) -> str:
    return f"{kib / 1024:,.0f}"


def _s(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:.2f}"


def _header(result: dict[str, Any]) -> list[str]:
    tools, c = result["versions"], result["cluster"]
    return [
        INFORMER_HEADING,
        "",
        *_para(
            "kdns follows a generated cluster through the Kubernetes API: a `KubeFake` "
            "([tests/kube_fake.py](../tests/kube_fake.py)) in the benchmark process serves it over plain "
            "HTTP on 127.0.0.1, and `kdns serve --kubeconfig` follows it with the official client. This "
            "section is written by `python -m bench.informer`; `python -m bench.run` keeps it when it "
            "rewrites the rest of this file."
        ),
        "",
        f"- Date: {result['date']}",
        f"- Machine: {host.describe(result['machine'])}",
        f"- kdns: commit {host.commit(tools)}, Python {tools['python']}, "
        f"kubernetes client {tools['kubernetes_client']}",
        *_item(
            f"Cluster: {c['services']:,} Services ({c['cluster_ip']:,} ClusterIP with "
            f"{c['endpoints_per_service']} endpoints each, {c['headless']:,} headless with 2-5, "
            f"{c['external']:,} ExternalName) in {c['namespaces']:,} namespaces; {c['endpoint_slices']:,} "
            f"EndpointSlices holding {c['endpoints']:,} endpoints (one in ten ClusterIP Services is "
            f"dual-stack, with a second IPv6 slice); {c['pods']:,} Pods; {c['objects']:,} objects, loaded "
            f"into the fake with `KubeFake.load` in {c['load_s']:.1f} s"
        ),
        *_item(
            "Setup: the fake and every client of the benchmark on CPU 0; `kdns serve --kubeconfig FILE "
            "--port 0 --startup-timeout 600` alone on CPU 1 (the long startup timeout makes the ready line "
            "wait for the sync). kdns lists in pages of 500; the fake sends bookmarks every second. The "
            "benchmark process runs with `sys.setswitchinterval(0.0005)` so the fake's HTTP threads are "
            "not held up by a polling client"
        ),
    ]


def _sync(result: dict[str, Any]) -> list[str]:
    c, guide = result["cluster"], result["coredns_guide_mb"]
    header = [
        "kdns", "Follows", "Synced in (kdns's log)", 'Wall to "synced"', 'Wall to "ready:"', "kdns CPU s",
        "VmRSS MB", "VmHWM MB", "VmRSS / CoreDNS guide",
    ]  # fmt: skip
    rows = []
    for label, key in (("default (`--pods insecure`)", "sync"), ("`--pods verified`", "sync_pods")):
        s = result.get(key)
        if s is None:
            continue
        follows = f"{s['services']:,} Services, {s['endpoints']:,} endpoints, {s['namespaces']} namespaces"
        follows += f", {s['pods']:,} Pods" if s["pods"] else " (Pods not watched)"
        rows.append([
            label, follows, f"{s['synced_logged_s']:.2f} s", f"{s['wall_to_synced_s']:.2f} s",
            f"{s['wall_to_ready_s']:.2f} s", f"{s['kdns_cpu_s_at_ready']:.2f}", _mb(s["rss_kib"]),
            _mb(s["hwm_kib"]), f"{s['rss_kib'] / 1024 / guide:.2f}",
        ])  # fmt: skip
    s = result["sync"]
    return [
        "### Initial sync and memory",
        "",
        *table(header, rows, "llr"),
        "",
        *_item(
            'Synced in: what kdns logs ("synced with the Kubernetes API in X s"), from its informer\'s start '
            "to the last collection listed and applied. Wall times run from spawning the process, so they "
            f"include the interpreter's start and imports ({_s(s['start_to_following_s'])} s before kdns "
            'logged "following the Kubernetes API"). kdns CPU: user+system seconds of the process at the '
            "ready line."
        ),
        *_item(
            "The `--pods verified` kdns runs after the relist below, so it follows the cluster with that "
            "step's changes (one Service fewer, one endpoint more)."
        ),
        *_item(
            "CoreDNS's memory guide for its `kubernetes` plugin: (pods + services) / 1000 + 54 MB = "
            f"({c['pods']:,} + {c['services']:,}) / 1000 + 54 = **{guide:.0f} MB** for this cluster. VmRSS "
            "and VmHWM (/proc/PID/status) 1 s after the ready line, in MiB."
        ),
        *_item(
            "The fake's side of the first sync cost the benchmark process "
            f"{s['bench_cpu_s_during_sync']:.2f} CPU seconds (on CPU 0, beside kdns on CPU 1)."
        ),
        *(_item(f"Garbage collection up to the ready line ({_gc(s['gc'])}).") if "gc" in s else []),
    ]


def _gc(gc: dict[str, Any]) -> str:
    return (
        f"`--trace-gc`: {gc['collections_over_5ms']} collections of 5 ms or more, {gc['total_ms']:,.0f} "
        f"ms in all, the longest {gc['longest_ms']:,.0f} ms; {gc['full_collections']} full (generation "
        f"2), the longest {gc['longest_full_ms']:,.0f} ms"
    )


def _latency(result: dict[str, Any]) -> list[str]:
    lat = result["latency"]
    ms, call, polls = lat["latency_ms"], lat["update_call_ms"], lat["polls"]
    header = [
        "Updates", "Answered within 5 s", "p50 ms", "p90 ms", "p99 ms", "max ms", "min ms",
        "Queries per update (p50)",
    ]  # fmt: skip
    row = [
        lat["updates"], lat["answered"], f"{ms['p50']:.2f}", f"{ms['p90']:.2f}", f"{ms['p99']:.2f}",
        f"{ms['max']:.2f}", f"{ms['min']:.2f}", f"{polls['p50']:.0f}",
    ]  # fmt: skip
    return [
        "### Event to answer",
        "",
        *_para(
            f"{lat['updates']} times, {lat['gap_s'] * 1000:.0f} ms apart, one ClusterIP Service's clusterIP "
            "was changed with `KubeFake.update`, and a blocking UDP client asked for its A record back to "
            "back until the answer held the new address. Times run from just before the update call, so "
            f"they include the fake's own store (the call: p50 {call['p50']:.2f} ms, max {call['max']:.2f} "
            "ms) and its HTTP write of the watch event, the client's read and parse on kdns's reflector "
            "thread, and the apply on kdns's event loop."
        ),
        "",
        *table(header, [row], "r"),
    ]


def _list_span(times: list[float]) -> str:
    if not times:
        return "not listed"
    return f"+{times[0]:.2f} to +{times[-1]:.2f} s ({len(times)} page{'s' if len(times) != 1 else ''})"


def _relist(result: dict[str, Any]) -> list[str]:
    r = result["relist"]
    names = " and ".join(f"`{name}`" for name, _ in r["steady_names"])
    converged = ", ".join(f"{what} +{at:.2f} s" for what, at in r["converged_each_s"].items())
    log_lines = [
        f"  - +{event['at_s']:.2f} s: `{event['line'].split(': ', 1)[-1]}`"
        for event in r["log"]
        if "expired" in event["line"] or "available" in event["line"]
    ][:12]
    lists = "; ".join(f"{kind} {_list_span(times)}" for kind, times in r["list_times_s"].items())
    measures = [
        [f"Answers/s before the outage ({result['relist_baseline_s']:g} s)",
         f"{r['answers_before_per_s']:,.0f}"],
        ["Answers/s from the restart to convergence", f"{r['answers_during_per_s']:,.0f}"],
        [f"Answers/s while listing and applying (+{r['active_from_s']:.2f} s to convergence)",
         f"{r['answers_active_per_s']:,.0f}"],
        ["Longest gap between answers, restart to convergence",
         f"{r['longest_gap_ms']:,.1f} ms (at +{r['longest_gap_at_s']:.2f} s)"],
        ["Longest single query round trip in that time",
         f"{r['longest_rtt_ms']:,.1f} ms (at +{r['longest_rtt_at_s']:.2f} s)"],
        ["Replies slower than 10 ms, restart to convergence", f"{r['replies_over_10ms']:,}"],
        ["Wrong answers / timeouts (0.5 s), whole run",
         f"{r['wrong']} / {r['timeouts']} of {r['replies']:,}"],
        ["Restart to converged", f"{_s(r['converged_s'])} s"],
        ["Outage (stop, three writes, compact)", f"{r['outage_s']:.2f} s"],
        ["kdns CPU from the outage to convergence", f"{r['kdns_cpu_s']:.2f} s"],
        ["VmRSS / VmHWM after the relist", f"{_mb(r['rss_kib_after'])} / {_mb(r['hwm_kib_after'])} MB"],
    ]  # fmt: skip
    return [
        "### Serving during a full relist",
        "",
        *_para(
            f"A child process on CPU 0 asked {names} in turn, as fast as one blocking UDP socket could, "
            "checking every answer. Meanwhile the fake was stopped, three objects were changed (a Service's "
            "address, an endpoint added to a headless Service's slice, an ExternalName Service deleted), its "
            "history was compacted and it was started again: every reflector's next watch got 410 Gone and "
            "listed everything again. Times are from the restart; the relist has converged when all three "
            "changes are answered (polled every 10 ms)."
        ),
        "",
        *table(["Measure", "Value"], measures),
        "",
        *_item(f"Converged: {converged or 'not within 120 s'}."),
        *(
            _item(f"Garbage collection from the restart to convergence ({_gc(r['gc'])}).")
            if "gc" in r
            else []
        ),
        *_item(f"The fake's list requests: {lists}."),
        "- kdns's log:",
        *(log_lines or ["  - (nothing about the outage)"]),
    ]


def _relist_profile(result: dict[str, Any]) -> list[str]:
    p = result.get("relist_profile")
    if p is None:
        return []
    lines = ["### Where a relist's time goes", ""]
    applied = ", ".join(
        f"{kind}s {done['objects']:,} objects, {done['changed']} changed, applied on the loop in "
        f"{done['apply_s']:.2f} s"
        for kind, done in p["applied"].items()
    )
    overhead = ", ".join(f"{tool} {cpu:.2f} s" for tool, cpu in p.get("profiler_cpu_s", {}).items())
    lines += _para(
        "After the relist above, kdns was made to relist everything once more (one Service changed while "
        "the fake was down, history compacted, the fake started again) while py-spy and perf recorded it, "
        "from CPU 0, from just before the restart until kdns had logged each collection relisted: "
        f"{p['restart_to_relisted_s']:.2f} s, of which kdns used {p['kdns_cpu_s']:.2f} CPU seconds (the "
        "rest is the reflectors' backoff after a second outage in a row, and waiting on the fake). kdns's "
        f"log: {applied}. The profilers used {overhead or 'no'} CPU seconds on CPU 0."
    )
    spy = p["pyspy"]
    if "error" in spy:
        lines += ["", f"No py-spy profile: {spy['error']}."]
    else:
        lines += [
            "",
            *_para(
                f"py-spy, `record --nonblocking --gil --rate 250`: {spy['samples']:,} samples, each a stack "
                "of the thread holding the GIL, so threads waiting on a socket or for the GIL are left out "
                "and the shares are shares of the Python work (raw stacks in "
                f"`bench/out/informer/{spy['raw']}`). By thread:"
            ),
            "",
            *share_table("Thread", spy["roles"], code=False),
            "",
            "By function, most own time first (own: the function's code and the C code it calls, such as "
            "the `_json` scanner under `raw_decode`; inclusive: with the Python functions it calls):",
            "",
            *function_table(spy["functions"]),
            "",
            "By inclusive time (thread entry points left out):",
            "",
            *function_table(spy["inclusive"]),
        ]
    perf = p["perf"]
    if "error" in perf:
        lines += ["", f"No perf profile: {perf['error']}."]
    else:
        lines += [
            "",
            *_para(
                "perf, `record -F 999` over the same time, self time of kdns's native code grouped by what "
                "it does. Garbage collection is CPython's collector (`gc_collect_main` and the traversals "
                "it drives); the JSON scanner's own code is small beside the dicts, strings and numbers it "
                "builds, which count as allocation and dict operations, so JSON decoding is the py-spy "
                "figure for `raw_decode` above:"
            ),
            "",
            *share_table("Native code", perf["groups"], code=False),
            "",
            "and the symbols with the most self time:",
            "",
            *share_table("Symbol (shared object)", perf["symbols"]),
        ]
    return lines


def _deserialisation(result: dict[str, Any]) -> list[str]:
    d = result["deserialisation"]
    header = [
        "Collection", "Objects", "Pages", "Typed models s", "Raw JSON s", "Bytes only s", "Typed / raw",
        "Retained MB typed / raw", "Peak MB typed / raw",
    ]  # fmt: skip
    rows = []
    repeats = subset = 0
    for kind, row in d.items():
        typed, raw, http = (stats.median_of(row[m], "seconds") for m in ("typed", "json", "http"))
        repeats, first = len(row["typed"]), row["typed"][0]
        tm, jm = row["typed_memory"], row["json_memory"]
        subset = tm["pages"]
        rows.append([
            kind, f"{first['objects']:,}", first["pages"], f"{typed:.2f}", f"{raw:.2f}", f"{http:.2f}",
            f"{typed / raw:.1f}x", f"{tm['retained_kib'] / 1024:.1f} / {jm['retained_kib'] / 1024:.1f}",
            f"{tm['peak_kib'] / 1024:.1f} / {jm['peak_kib'] / 1024:.1f}",
        ])  # fmt: skip
    return [
        "### Typed models against raw JSON",
        "",
        *_para(
            "In the benchmark process, the official client paged through each collection 500 at a time, "
            "e.g. `kubernetes.client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces(limit=500, "
            "_continue=...)`: with its typed models, and with `_preload_content=False` and `json.loads` as "
            'kdns\'s reflectors read it. "Bytes only" reads the body and nothing else: the request, the fake '
            f"serving it (in the same process) and HTTP. Seconds are medians of {repeats} passes. Memory: "
            f"tracemalloc over the first {subset} pages, kept in a list as an informer keeps its objects; "
            "retained is what the kept pages hold, peak the highest while reading them."
        ),
        "",
        *table(header, rows),
    ]


def _findings(result: dict[str, Any]) -> list[str]:
    lines = ["### Warnings and errors in kdns's logs", ""]
    for label, found in result.get("log_findings", {}).items():
        if not found:
            lines.append(f"- {label}: none")
            continue
        lines.append(f"- {label}: {len(found)} line{'s' if len(found) != 1 else ''}")
        lines += [f"  - `{line[:200]}`" for line in found[:10]]
    return lines


def _snapshot(result: dict[str, Any]) -> list[str]:
    snap = result.get("snapshot")
    if snap is None:
        return []
    b, guide = snap["breakdown"], result["coredns_guide_mb"]
    per, counts = b["bytes_per"], b["counts"]
    areas = ", ".join(f"{area} {mb:.1f} MB" for area, mb in b["traced_mb"].items())
    rss = snap["rss_kib"]
    return [
        "### From a snapshot file, and where the bytes go",
        "",
        f"The same cluster written as one JSON `List` ({snap['snapshot_mb']:.0f} MB) and served with "
        f"`kdns serve --snapshot`: ready {snap['ready_s']:.2f} s after spawning, VmRSS {_mb(rss)} MB, "
        f"VmHWM {_mb(snap['hwm_kib'])} MB ({rss / 1024 / guide:.2f} of CoreDNS's guide). The file is "
        "decoded one list item at a time, so its dicts never fill the heap together.",
        "",
        *_item(
            f"Python allocations held once the zone is built (tracemalloc, `python -m bench.memory`): "
            f"{areas}; the rest of the resident memory is the interpreter, the libraries kdns imports "
            "and the allocator's free space."
        ),
        *_item(
            f"Per object: {per['service_and_its_endpoints_in_state']:,.0f} bytes of cluster state per "
            f"Service with its slices ({per['endpoint_in_state']:,.0f} per endpoint over "
            f"{counts['endpoints']:,} endpoints), {per['name_in_index']:,.0f} bytes of zone index per name "
            f"({counts['names']:,} names: Services, endpoints, SRV and PTR names and the empty "
            "non-terminals above them). Answers are packed on the first query, so the answer cache adds "
            "about 750 bytes per question asked, up to 100,000 questions."
        ),
    ]


def render(result: dict[str, Any]) -> str:
    lines = [
        *_header(result),
        "",
        *_sync(result),
        "",
        *_snapshot(result),
        "",
        *_latency(result),
        "",
        *_relist(result),
        "",
        *_relist_profile(result),
        "",
        *_deserialisation(result),
        "",
        *_findings(result),
        "",
        HOW_TO_RUN,
    ]
    return "\n".join(lines).rstrip() + "\n"
