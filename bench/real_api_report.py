"""The "Through a real kube-apiserver" section of bench/README.md, from ``bench.real_api``'s results."""

from __future__ import annotations

from typing import Any

from bench.informer_report import _item, _para
from bench.lib import host
from bench.lib.tables import table
from bench.report import REAL_API_HEADING

WRITERS = 8  # concurrent create requests while loading the cluster (bench.real_api)

HOW_TO_RUN = """\
### How to run

```sh
make tools-cluster                          # etcd and kube-apiserver, built once (tests/cluster/build.sh)
.venv/bin/python -m bench.real_api          # full run; the first loads the cluster into etcd (minutes)
.venv/bin/python -m bench.real_api --quick  # 1,000 Services; writes bench/out/real-api/ only
```

Raw data go to `bench/out/real-api/`: `results.json` (every latency sample, each relist's timeline in
0.1 s bins), kdns's logs and the control plane's logs.
"""
SOURCES = (
    ("real", "real, watch list"),
    ("real-list", "real, paged LIST"),
    ("fake", "fake, paged LIST"),
)


def _ratio(real: float | None, fake: float | None) -> str:
    if real is None or fake is None or not fake:
        return "-"
    return f"{real / fake:.2f}"


def _rows(result: dict[str, Any]) -> list[list[str]]:
    sides = [result[side] for side, _ in SOURCES]

    def row(label: str, get: Any, fmt: str) -> list[str]:
        values = [get(side) for side in sides]
        cells = [fmt.format(v) if v is not None else "-" for v in values]
        return [label, *cells, _ratio(values[0], values[-1])]

    def latency(key: str) -> Any:
        return lambda side: side["latency"]["latency_ms"][key]

    return [
        row("Start to ready (wall) s", lambda s: s["sync"]["wall_to_ready_s"], "{:.2f}"),
        row("Synced in (kdns's log) s", lambda s: s["sync"]["synced_logged_s"], "{:.2f}"),
        row("kdns CPU s at ready", lambda s: s["sync"]["kdns_cpu_s_at_ready"], "{:.2f}"),
        row("VmRSS at ready MB", lambda s: s["sync"]["rss_kib"] / 1024, "{:.0f}"),
        row("VmHWM at ready MB", lambda s: s["sync"]["hwm_kib"] / 1024, "{:.0f}"),
        row("Event to answer p50 ms", latency("p50"), "{:.2f}"),
        row("Event to answer p99 ms", latency("p99"), "{:.2f}"),
        row("Event to answer max ms", latency("max"), "{:.2f}"),
        row("Update request p50 ms", lambda s: s["latency"]["update_call_ms"]["p50"], "{:.2f}"),
        row("Relist: restart to converged s", lambda s: s["relist"]["converged_s"], "{:.2f}"),
        row("Relist: longest gap in answers ms", lambda s: s["relist"]["longest_gap_ms"], "{:.1f}"),
        row(
            "Relist: answers/s, start to converged", lambda s: s["relist"]["answers_during_per_s"], "{:,.0f}"
        ),
        row("Relist: kdns CPU s", lambda s: s["relist"]["kdns_cpu_s"], "{:.2f}"),
        row("Relist: VmHWM after MB", lambda s: s["relist"]["hwm_kib_after"] / 1024, "{:.0f}"),
        row("Relist: wrong answers", lambda s: s["relist"]["wrong"], "{}"),
        row("Relist: timeouts (0.5 s)", lambda s: s["relist"]["timeouts"], "{}"),
    ]


def _findings(result: dict[str, Any]) -> str:
    """What the table says about the two ways of getting the state and about the real API server."""
    stream, paged = result["real"], result["real-list"]
    extra_s = stream["sync"]["synced_logged_s"] - paged["sync"]["synced_logged_s"]
    extra_cpu = stream["sync"]["kdns_cpu_s_at_ready"] - paged["sync"]["kdns_cpu_s_at_ready"]
    update = stream["latency"]["update_call_ms"]["p50"]
    answer = stream["latency"]["latency_ms"]["p50"]
    return (
        f"By watch list kdns synced {extra_s:+.2f} s and {extra_cpu:+.2f} CPU s against paged LIST: each "
        "object arrives as an event of its own (an HTTP chunk and a TLS record each, read and parsed one "
        "by one), where a LIST page brings 500. kdns uses it as client-go does, because it spares the "
        "API server the memory of large lists when every replica gets the state at once. Through the "
        f"real API server, an update's answer came {answer:.1f} ms (p50) after the request began, of "
        f"which the PATCH itself took {update:.1f} ms (the API server's write to etcd); the rest is "
        "the watch event reaching kdns and kdns applying it."
    )


def render(result: dict[str, Any]) -> str:
    c, tools, load = result["cluster"], result["versions"], result["load"]
    lines = [
        REAL_API_HEADING,
        "",
        *_para(
            "kdns following a real kube-apiserver (etcd and kube-apiserver built by the test suite's "
            "tests/cluster/build.sh, no controller manager), side by side with the same cluster served by "
            "the fake. The real API server runs twice on the same etcd data: as v1.37 runs by default, "
            "serving the initial state as a watch list (`sendInitialEvents`, KEP-3157), and with "
            "`--feature-gates=WatchList=false`, as older servers, where kdns lists in pages of 500. The "
            "fake serves no watch list. This section is written by `python -m bench.real_api`."
        ),
        "",
        f"- Date: {result['date']}",
        f"- Machine: {host.describe(result['machine'])}",
        f"- kdns: commit {host.commit(tools)}, Python {tools['python']}, "
        f"kubernetes client {tools['kubernetes_client']}; control plane {result['binaries']}",
        *_item(
            f"Cluster: {c['services']:,} Services in {c['namespaces']:,} namespaces, "
            f"{c['endpointslices']:,} EndpointSlices holding {c['endpoints']:,} endpoints "
            "(bench/cluster.py, seed 1, no Pods: kdns runs with the default `pods insecure`). Written "
            f"through the API by {WRITERS} concurrent clients in {load['load_s']:.0f} s the first time "
            "and kept in etcd's data directory since; the fake "
            f"loads it in {result['fake_load_s']:.1f} s."
        ),
        *_item(
            "Event to answer: an EndpointSlice's first endpoint given a new address (a PATCH through "
            "the API; `KubeFake.update` on the fake), timed from just before the request until a UDP "
            "answer for that endpoint's hostname holds the new address alone."
        ),
        *_item(
            "Relist: while a child process asks two names as fast as one socket can, the API server is "
            "stopped, a Service and an EndpointSlice are deleted behind its back (in etcd for the real one) "
            "and the history is compacted; once started again every watch of kdns gets 410 Gone and kdns "
            "gets the state again. Times run from the start command: the real API server took "
            f"{result['real']['relist']['api_start_s']:.2f} and "
            f"{result['real-list']['relist']['api_start_s']:.2f} s to be ready again, the fake "
            f"{result['fake']['relist']['api_start_s']:.3f} s. Converged: both deleted names answer "
            "NXDOMAIN. The deleted objects are made again before the next run."
        ),
        *_item(
            "Setup: the benchmark process (the fake, the clients) and etcd and kube-apiserver on CPU 0, "
            "kdns alone on CPU 1."
        ),
        "",
        *table(["Measure", *(what for _, what in SOURCES), "real, watch list / fake"], _rows(result)),
        "",
    ]
    lines += [*_para(_findings(result)), ""]
    for side, _ in SOURCES:
        problems = result[side].get("problems") or []
        lines += _item(f"kdns's warnings following the {side} API server: " + (
            "; ".join(f"`{p[:160]}`" for p in problems[:6]) if problems else "none"
        ))  # fmt: skip
    lines += ["", HOW_TO_RUN]
    return "\n".join(lines).rstrip() + "\n"
