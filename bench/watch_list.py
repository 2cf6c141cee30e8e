"""The initial state by watch list or by paged LIST: time to ready and peak memory of ``kdns serve``
against real kube-apiservers (``tests/support/control_plane.py``), one with the WatchList feature on
(v1.37's default) and one with it off, both holding the same Services.

Usage: ``python -m bench.watch_list [--services 2000] [--runs 3]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from tests.support.control_plane import control_plane
from tests.support.metrics import endpoint, metric, scrape
from tests.support.process import running

NAMESPACES = 20
SYNCED = re.compile(r"synced with the Kubernetes API in ([\d.]+) s")


def populate(kubeconfig: Path, services: int) -> None:
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    for n in range(NAMESPACES):
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=f"ns-{n}")))
    for i in range(services):
        body = client.V1Service(
            metadata=client.V1ObjectMeta(name=f"svc-{i}", labels={"app": f"app-{i % 7}"}),
            spec=client.V1ServiceSpec(
                ports=[
                    client.V1ServicePort(name="http", port=80),
                    client.V1ServicePort(name="grpc", port=9090),
                ],
                selector={"app": f"app-{i % 7}"},
            ),
        )
        api.create_namespaced_service(f"ns-{i % NAMESPACES}", body)


def memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def one_run(kubeconfig: Path) -> dict[str, float]:
    started = time.monotonic()
    with running(
        "--kubeconfig", str(kubeconfig), "--startup-timeout", "600", "--metrics", "127.0.0.1:0"
    ) as server:
        ready = time.monotonic() - started
        time.sleep(1)
        held = memory(server.process.pid)
        metrics = scrape(endpoint(server, "metrics") + "/metrics")
        synced = float(SYNCED.search("\n".join(server.log))[1])
    return {
        "ready_s": ready,
        "synced_s": synced,
        "rss_mib": held["VmRSS"] / 1024,
        "hwm_mib": held["VmHWM"] / 1024,
        "watchlist": metric(
            metrics, "kdns_kubernetes_requests_total", kind="Service", verb="watchlist", code="200"
        ),
        "list": metric(metrics, "kdns_kubernetes_requests_total", kind="Service", verb="list", code="200"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args(argv)
    rows = []
    for label, args in (
        ("watch list (WatchList on)", []),
        ("paged LIST (WatchList off)", ["--feature-gates=WatchList=false"]),
    ):
        with (
            tempfile.TemporaryDirectory(prefix="kdns-bench-") as directory,
            control_plane(Path(directory), controller_manager=False, apiserver_args=args) as plane,
        ):
            loading = time.monotonic()
            populate(plane.kubeconfig, options.services)
            made = time.monotonic() - loading
            print(f"{label}: {options.services} Services made in {made:.1f} s", file=sys.stderr)
            runs = [one_run(plane.kubeconfig) for _ in range(options.runs)]
        for run in runs:
            print(f"  {run}", file=sys.stderr)
        rows.append((label, runs))
    print(
        f"| kdns's initial list ({options.services:,} Services, median of {options.runs}) "
        "| requests for Services | synced in (kdns's log) | wall to ready | VmRSS MiB | VmHWM MiB |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for label, runs in rows:
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        requests = f"{median['watchlist']:.0f} watchlist, {median['list']:.0f} list"
        print(
            f"| {label} | {requests} | {median['synced_s']:.2f} s | {median['ready_s']:.2f} s | "
            f"{median['rss_mib']:.0f} | {median['hwm_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
