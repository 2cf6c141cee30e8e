"""``python -m bench.sizing``: kdns's memory following a real kube-apiserver, at ready and at its peak
during a full relist, from an empty cluster to 10,000 Services, about 100,000 endpoints and 93,000
Pods; and the formula deploy/README.md sizes kdns with.

etcd and kube-apiserver are the test suite's (tests/support/control_plane.py), the clusters those of
``bench.real_api`` and ``bench.versus``, Pods included (written once, kept in etcd). For each cluster
kdns runs with ``--pods insecure`` (which follows no Pods) and ``--pods verified``, pinned to one CPU:
VmRSS and VmHWM once ready, then kube-apiserver is restarted, so every watch resumes past the restarted
watch cache, gets 410 Gone and relists, and VmHWM is read again once each resource has relisted. The
formula comes from the peaks: the empty cluster gives the base, the two clusters without Pods the
cost of a Service and of an endpoint, and the Pods the cost of a Pod; the smaller cluster with its
Pods checks it. Results go to the "Memory for sizing" part of bench/README.md (``--quick``: the
smaller cluster only, bench/out/ only).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import cluster, real_api, report
from bench.informer import RELISTED, measure_sync
from bench.lib import harness, host, options
from bench.lib.harness import say
from bench.lib.tables import table
from tests.support.control_plane import ControlPlane, control_plane

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "sizing"
MIB = 1024  # KiB
MODES = ("insecure", "verified")
# (label, Services, endpoints per ClusterIP Service: None for 2-5 at random)
CLUSTERS = (("1,000 Services", 1000, None), ("10,000 Services", 10_000, 11))
HEADROOM = 1.25  # the limit deploy/ recommends over the formula's peak


def relist_peak(plane: ControlPlane, server: Any, resources: set[str], timeout: float) -> dict[str, Any]:
    """Restart kube-apiserver under ``server`` and wait until each of ``resources`` has relisted; its
    memory then."""
    mark = len(server.tail.lines)
    started = time.monotonic()
    plane.stop_apiserver(grace=1)  # a crash, not a drain: every watch breaks at once
    plane.start_apiserver()
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while not resources <= seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"kdns did not relist {sorted(resources - seen)} within {timeout:.0f} s")
        server.tail.poll()
        server.check_alive()
        seen |= {m[1] for line in server.tail.lines[mark:] if (m := RELISTED.search(line))}
        time.sleep(0.05)
    took = time.monotonic() - started
    time.sleep(1.0)  # as at ready
    memory = server.memory_kib()
    return {"relisted_s": took, "rss_kib": memory.get("VmRSS", 0), "hwm_kib": memory.get("VmHWM", 0)}


def measure(plane: ControlPlane, label: str, mode: str, out: Path, timeout: float) -> dict[str, Any]:
    log = out / f"kdns-{label.split(maxsplit=1)[0].replace(',', '')}-{mode}.log"
    server, sync = measure_sync(plane.kubeconfig, log, ["--pods", mode], timeout)
    try:
        resources = {"Service", "EndpointSlice", "Namespace"} | ({"Pod"} if mode == "verified" else set())
        peak = relist_peak(plane, server, resources, timeout)
    finally:
        server.stop()
    ready = f"ready {sync['wall_to_ready_s']:.1f} s, VmRSS {sync['rss_kib'] / MIB:.0f} MiB"
    say(f"{label}, pods {mode}: {ready}; after a relist VmHWM {peak['hwm_kib'] / MIB:.0f} MiB")
    return {
        "ready_s": sync["wall_to_ready_s"],
        "services": sync["services"],
        "endpoints": sync["endpoints"],
        "pods": sync["pods"],
        "ready_rss_kib": sync["rss_kib"],
        "ready_hwm_kib": sync["hwm_kib"],
        **{f"relist_{key}": value for key, value in peak.items()},
    }


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"date": host.date(), "machine": host.machine(), "versions": host.versions()}
    with (
        tempfile.TemporaryDirectory(prefix="kdns-sizing-") as empty,
        control_plane(Path(empty), controller_manager=False) as plane,
    ):
        result["empty"] = {"insecure": measure(plane, "empty", "insecure", out, args.timeout)}
    result["clusters"] = {}
    for label, services, per_service in CLUSTERS[:1] if args.quick else CLUSTERS:
        generated = cluster.generate(services, seed=args.seed, endpoints_per_service=per_service)
        objects = real_api.api_objects(generated["items"])
        pods = real_api.generated_pods(generated["items"])
        del generated
        directory = real_api.data_directory(services, per_service, args.seed)
        with real_api.loaded(directory, objects, pods=pods) as plane:
            result["clusters"][label] = {
                mode: measure(plane, label, mode, out, args.timeout) for mode in MODES
            }
    if not args.quick:
        result["formula"] = formula(result)
    return result


def formula(result: dict[str, Any]) -> dict[str, float]:
    """MiB at the relist peak = base + per Service x Services + per endpoint x endpoints (+ per Pod x Pods
    with ``pods verified``): the base from the empty cluster, the Service and endpoint costs from the two
    clusters without Pods (two equations), the Pod cost from the larger cluster's Pods."""
    peak = _peak
    base = peak(result["empty"]["insecure"])
    small, large = (result["clusters"][label] for label, _, _ in CLUSTERS)
    s1, e1, y1 = small["insecure"]["services"], small["insecure"]["endpoints"], peak(small["insecure"]) - base
    s2, e2, y2 = large["insecure"]["services"], large["insecure"]["endpoints"], peak(large["insecure"]) - base
    det = s1 * e2 - s2 * e1
    per_service, per_endpoint = (y1 * e2 - y2 * e1) / det, (s1 * y2 - s2 * y1) / det
    per_pod = (peak(large["verified"]) - peak(large["insecure"])) / large["verified"]["pods"]
    check = small["verified"]
    predicted = (
        base + per_service * check["services"] + per_endpoint * check["endpoints"] + per_pod * check["pods"]
    )
    return {
        "base_mib": base,
        "per_service_kib": per_service * MIB,
        "per_endpoint_kib": per_endpoint * MIB,
        "per_pod_kib": per_pod * MIB,
        "check_predicted_mib": predicted,
        "check_measured_mib": peak(check),
    }


def _peak(run: dict[str, Any]) -> float:
    """MiB at the highest of ready and the relist."""
    return max(run["ready_hwm_kib"], run["relist_hwm_kib"]) / MIB


def render(result: dict[str, Any]) -> str:
    machine, tools = result["machine"], result["versions"]
    rows = []
    runs = [("Empty cluster", result["empty"]), *result["clusters"].items()]
    for label, by_mode in runs:
        for mode, run in by_mode.items():
            rows.append([
                label, f"`pods {mode}`", f"{run['services']:,}", f"{run['endpoints']:,}", f"{run['pods']:,}",
                f"{run['ready_s']:.1f}", f"{run['ready_rss_kib'] / MIB:.0f}",
                f"{run['relist_relisted_s']:.1f}", f"{run['relist_rss_kib'] / MIB:.0f}", f"{_peak(run):.0f}",
            ])  # fmt: skip
    lines = [
        report.SIZING_HEADING,
        "",
        f"Written by `python -m bench.sizing` on {result['date']} ({machine['cpu']}, "
        f"{machine['nproc']} CPUs; kdns {tools['kdns_commit']}, Python {tools['python']}). kdns follows "
        "a real kube-apiserver (etcd and kube-apiserver from the Go module proxy, no controller manager; "
        "the generated clusters of `bench.real_api` and `bench.versus` with their Pods, each Running "
        "and Ready through the status subresource), one process pinned to one CPU. Memory is read from "
        "/proc/PID/status 1 s after the ready line; then kube-apiserver is restarted, every watch "
        "resumes past the restarted watch cache, gets 410 Gone and relists, and memory is read again 1 s "
        "after the last resource relisted. "
        "The peak is VmHWM, the most kdns held at any moment.",
        "",
        *table(
            [
                "Cluster",
                "Mode",
                "Services",
                "Endpoints",
                "Pods followed",
                "Ready (s)",
                "VmRSS at ready (MiB)",
                "Relist (s)",
                "VmRSS after relist (MiB)",
                "Peak VmHWM (MiB)",
            ],
            rows,
        ),
        "",
    ]
    if "formula" in result:
        f = result["formula"]
        lines += [
            "From the peaks (the empty cluster for the base, the two clusters without Pods for a Service and "
            "an endpoint, the larger cluster's Pods for a Pod):",
            "",
            f"- peak MiB = {f['base_mib']:.0f} + {f['per_service_kib']:.2f} KiB x Services + "
            f"{f['per_endpoint_kib']:.2f} KiB x endpoints (+ {f['per_pod_kib']:.2f} KiB x Pods with "
            "`pods verified`)",
            f"- checked on the smaller cluster with `pods verified`: {f['check_predicted_mib']:.0f} MiB "
            f"predicted, {f['check_measured_mib']:.0f} MiB measured",
            f"- deploy/README.md rounds these up and sets the limit {HEADROOM:.2f}x the peak",
            "",
        ]
    lines += [
        "```sh",
        ".venv/bin/python -m bench.sizing           # full run; rewrites this section",
        ".venv/bin/python -m bench.sizing --quick   # the 1,000-Service cluster only; bench/out/ only",
        "```",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.Parser(
        "bench.sizing", __doc__, quick="the 1,000-Service cluster only; writes bench/out/ only"
    )
    parser.add_argument("--seed", type=int, default=1, help="the generated clusters' seed (default: 1)")
    parser.add_argument("--timeout", type=float, default=600.0, help="longest wait for a sync or relist")
    return parser.parse(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = harness.run_exclusively(OUT, 7200, lambda: benchmark(args, OUT))
    if result is None:
        return 1
    readme = harness.readme_for(args.quick)
    report.write_section(readme, report.SIZING_HEADING, render(result))
    say(f"wrote {readme} and {OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
