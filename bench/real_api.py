"""``python -m bench.real_api``: kdns following a real kube-apiserver with 10,000 Services and about
100,000 endpoints, beside the same cluster served by the fake, in one run.

etcd and kube-apiserver are the ones the test suite builds (tests/support/control_plane.py, no
controller manager: the generated EndpointSlices are the cluster's). The cluster is written through the
API once and kept in etcd's data directory between runs (~/.cache/kdns-cluster/). For each of the two
API servers, kdns (``--pods insecure``, pinned to CPU 1) measures: time to ready and memory, watch
event to answer (an EndpointSlice's address changed, p50/p99), and the longest gap in answers while
every reflector relists after 410 Gone. Results go to the "Through a real kube-apiserver" part of
bench/README.md (``--quick``: 1,000 Services, bench/out/ only).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config

from bench import cluster, report
from bench.informer import (
    Check,
    FakeOutage,
    Targets,
    change_latency,
    fqdn,
    measure_sync,
    pick_targets,
    rcode_of,
    relist,
)
from bench.lib import harness, host, options
from bench.lib.harness import say
from bench.lib.kdns import Kdns
from bench.lib.processes import CLIENT_CPU
from bench.real_api_report import WRITERS, render
from tests.kube_fake import KubeFake
from tests.support.control_plane import ControlPlane, binaries, control_plane

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "real-api"
# The generated cluster's addresses (bench/cluster.py) in the API server's service ranges.
SERVICE_RANGES = f"{cluster.SERVICE_NET},{cluster.SERVICE_NET6}"
NXDOMAIN = 3
OK, CONFLICT, INVALID = 200, 409, 422  # 422: a Service's address is taken (by itself)
ETCD_PREFIX = {"Service": "services/specs", "EndpointSlice": "endpointslices"}  # kube-apiserver's keys
# The real API server as it serves the initial state: (what kdns gets, extra kube-apiserver flags).
REAL_MODES = {
    "real": ("watch list", ()),
    "real-list": ("paged LIST", ("--feature-gates=WatchList=false",)),
}
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
PODS_LOADED = "pods.json"  # in a data directory: how loading its Pods went


# -- the cluster as the API server takes it ---------------------------------------------------------------
def api_objects(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The generated cluster without its Pods (kdns's default ``pods insecure`` does not follow them),
    each dual-stack Service asking for both families as the API server requires."""
    objects = []
    for item in items:
        if item["kind"] == "Pod":
            continue
        spec = item.get("spec", {})
        if len(spec.get("clusterIPs", ())) == 2:
            spec["ipFamilyPolicy"] = "RequireDualStack"
        objects.append(item)
    return objects


def client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
    )
    configuration.connection_pool_maxsize = WRITERS
    return kubernetes.client.ApiClient(configuration)


PLURALS = {
    "Namespace": "namespaces",
    "Service": "services",
    "EndpointSlice": "endpointslices",
    "ServiceAccount": "serviceaccounts",
    "Pod": "pods",
}


def _collection(item: dict[str, Any]) -> str:
    group = "/api/v1" if item["apiVersion"] == "v1" else f"/apis/{item['apiVersion']}"
    namespace = item["metadata"].get("namespace")
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"{group}{where}/{PLURALS[item['kind']]}"


def _exists(api: kubernetes.client.ApiClient, item: dict[str, Any]) -> bool:
    url = f"{api.configuration.host}{_collection(item)}/{item['metadata']['name']}"
    reply = api.call_api("GET", url, JSON)
    reply.read()
    return reply.status == OK


def _create(api: kubernetes.client.ApiClient, item: dict[str, Any]) -> bool:
    """``item`` created through the API; False when an earlier, interrupted load made it."""
    reply = api.call_api("POST", api.configuration.host + _collection(item), JSON, body=item)
    body = reply.read()
    if reply.status in (CONFLICT, INVALID) and _exists(api, item):
        return False
    if reply.status >= 300:
        where = f"{_collection(item)}/{item['metadata']['name']}"
        raise RuntimeError(f"creating {where}: {reply.status} {body[:300]!r}")
    return True


def load(kubeconfig: Path, objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Create ``objects`` through the API (namespaces first), ``WRITERS`` at a time; those the API
    server made itself (``default/kubernetes``, the system namespaces) are left as they are."""
    api = client(kubeconfig)
    created = existing = 0
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        for kinds in (("Namespace",), ("Service", "EndpointSlice")):
            batch = [item for item in objects if item["kind"] in kinds]
            for made in pool.map(lambda item: _create(api, item), batch):
                created, existing = created + made, existing + (not made)
    api.close()
    return {"created": created, "existing": existing, "load_s": time.perf_counter() - started}


def pod_objects(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The generated cluster's Pods as the API server takes them (bound to their node, one container;
    their status is set apart, as a kubelet reports it) and each namespace's ``default``
    ServiceAccount, which the API server wants before it admits a pod (no controller manager runs
    here to make it)."""
    accounts = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}
        for ns in sorted({item["metadata"]["namespace"] for item in items if item["kind"] == "Pod"})
    ]
    pods = []
    for item in items:
        if item["kind"] == "Pod":
            spec = {
                "nodeName": cluster.node_of(item["status"]["podIP"]),
                "containers": [{"name": "app", "image": "registry.invalid/app"}],
            }
            pods.append(item | {"spec": spec})
    return accounts, pods


def generated_pods(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item["kind"] == "Pod"]


def load_pods(kubeconfig: Path, items: list[dict[str, Any]]) -> dict[str, Any]:
    """``pod_objects`` through the API, ``WRITERS`` at a time: each Pod created, then given its
    ``status`` (Running, Ready, its addresses) through the status subresource."""
    accounts, pods = pod_objects(items)
    api = client(kubeconfig)
    patch = {"Content-Type": "application/merge-patch+json", "Accept": "application/json"}

    def run(pod: dict[str, Any]) -> bool:
        made = _create(api, pod)
        ready = [{"type": "Ready", "status": "True"}]
        url = f"{api.configuration.host}{_collection(pod)}/{pod['metadata']['name']}/status"
        reply = api.call_api("PATCH", url, patch, body={"status": pod["status"] | {"conditions": ready}})
        body = reply.read()
        if reply.status >= 300:
            raise RuntimeError(f"setting the status of {url}: {reply.status} {body[:300]!r}")
        return made

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda item: _create(api, item), accounts))
        created = sum(pool.map(run, pods))
    api.close()
    return {"pods": len(pods), "created": created, "load_s": time.perf_counter() - started}


# -- the API servers -----------------------------------------------------------------------------------
def data_directory(services: int, endpoints_per_service: int | None, seed: int) -> Path:
    """Where etcd keeps a loaded cluster: one directory per build and ``cluster.generate`` arguments
    (``endpoints_per_service`` None: its default, 2-5 at random)."""
    built = binaries()
    endpoints = "" if endpoints_per_service is None else f"x{endpoints_per_service}"
    return built.parent / f"bench-{built.name}-{services}{endpoints}-seed{seed}"


@contextmanager
def loaded(
    directory: Path,
    objects: list[dict[str, Any]],
    apiserver_args: Sequence[str] = (),
    *,
    pods: list[dict[str, Any]] | None = None,
) -> Iterator[ControlPlane]:
    """etcd and kube-apiserver (no controller manager) on ``directory``'s data, the generated
    cluster's service ranges and ``apiserver_args``; ``objects`` are written through the API the first
    time (``directory``/loaded.json records that load), and so are ``pods``, the generated Pods, when
    given (``load_pods``; pods.json records it)."""
    args = [f"--service-cluster-ip-range={SERVICE_RANGES}", *apiserver_args]
    with control_plane(directory, controller_manager=False, apiserver_args=args) as plane:
        done = directory / "loaded.json"
        if not done.exists():
            say(f"-- loading the cluster into the real API server ({directory})")
            done.write_text(json.dumps(load(plane.kubeconfig, objects)))
        done = directory / PODS_LOADED
        if pods is not None and not done.exists():
            say(f"-- loading {len(pods):,} Pods into the real API server ({directory})")
            done.write_text(json.dumps(load_pods(plane.kubeconfig, pods)))
        yield plane


def _key(item: dict[str, Any]) -> tuple[str, str]:
    meta = item["metadata"]
    return item["kind"], f"{meta.get('namespace')}/{meta['name']}"


def _keys(targets: Targets) -> set[tuple[str, str]]:
    return set(deleted(targets)[0])


def deleted(targets: Targets) -> tuple[list[tuple[str, str]], list[Check]]:
    """What both outages delete, as (kind, "namespace/name"): an ExternalName Service and a headless
    Service's EndpointSlice; and the checks that kdns has forgotten them (NXDOMAIN)."""
    service, gone = targets.dropped["metadata"], targets.grown["metadata"]
    member = targets.grown["endpoints"][0]["hostname"]
    owner = gone["labels"]["kubernetes.io/service-name"]
    checks: list[Check] = [
        ("Service deleted", fqdn(targets.dropped), lambda r: rcode_of(r) == NXDOMAIN),
        (
            "EndpointSlice deleted",
            f"{member}.{owner}.{gone['namespace']}.svc.cluster.local",
            lambda r: rcode_of(r) == NXDOMAIN,
        ),
    ]
    objects = [
        ("Service", f"{service['namespace']}/{service['name']}"),
        ("EndpointSlice", f"{gone['namespace']}/{gone['name']}"),
    ]
    return objects, checks


@dataclass
class RealOutage:
    """kube-apiserver stopped, objects deleted in etcd behind its back and etcd's history compacted:
    the restarted API server's watch cache starts past kdns's resourceVersion, so each watch gets 410."""

    plane: ControlPlane
    targets: Targets
    started_in: float = 0.0  # seconds the API server took to be ready again

    def begin(self) -> list[Check]:
        self.plane.stop_apiserver(grace=1)  # a crash, not a drain: open watches break now
        objects, checks = deleted(self.targets)
        for kind, where in objects:
            self.plane.delete_from_etcd(f"/registry/{ETCD_PREFIX[kind]}/{where}")
        self.plane.compact_etcd(self.plane.etcd_revision())
        return checks

    def end(self) -> None:
        started = time.monotonic()
        self.plane.start_apiserver()
        self.started_in = time.monotonic() - started

    def list_times(self, since: float) -> dict[str, list[float]]:
        return {}  # the API server keeps no such record


@dataclass
class FakeDeletions(FakeOutage):
    """The same deletions on the fake, stopped and compacted as ``FakeOutage`` does."""

    started_in: float = 0.0

    def begin(self) -> list[Check]:
        self.fake.stop()
        objects, checks = deleted(self.targets)
        for kind, where in objects:
            namespace, name = where.split("/")
            self.fake.delete(kind, namespace, name)
        self.fake.compact()
        return checks

    def end(self) -> None:
        started = time.monotonic()
        self.fake.start()
        self.started_in = time.monotonic() - started


# -- the measurements, the same for both -----------------------------------------------------------------
def headless_member(items: list[dict[str, Any]], skip: int) -> dict[str, Any]:
    """The ``skip``-th headless Service's EndpointSlice whose first endpoint has a hostname."""
    slices = [
        item
        for item in items
        if item["kind"] == "EndpointSlice"
        and item["endpoints"]
        and item["endpoints"][0].get("hostname")
        and item["metadata"]["namespace"] not in ("default", "kube-system")
    ]
    return slices[skip]


def member_name(slice_: dict[str, Any]) -> str:
    meta = slice_["metadata"]
    service = meta["labels"]["kubernetes.io/service-name"]
    return f"{slice_['endpoints'][0]['hostname']}.{service}.{meta['namespace']}.svc.cluster.local"


def mover(api: kubernetes.client.ApiClient, slice_: dict[str, Any]) -> Callable[[str], None]:
    """What gives ``slice_``'s first endpoint an address through the API (a PATCH)."""
    slices, meta = kubernetes.client.DiscoveryV1Api(api), slice_["metadata"]

    def change(address: str) -> None:
        body = {"endpoints": with_address(slice_, address)}
        slices.patch_namespaced_endpoint_slice(meta["name"], meta["namespace"], body, _preload_content=False)

    return change


def with_address(slice_: dict[str, Any], address: str) -> list[dict[str, Any]]:
    first, *rest = slice_["endpoints"]
    return [{**first, "addresses": [address]}, *rest]


@dataclass
class Side:
    """One API server as the measurements use it."""

    label: str
    kubeconfig: Path
    change: Callable[[str], None]  # gives the timed endpoint an address
    outage: RealOutage | FakeDeletions


def follow(side: Side, name: str, targets: Targets, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One kdns following ``side``'s API server: sync, event to answer (``name``), relist."""
    label, kubeconfig, change = side.label, side.kubeconfig, side.change
    server: Kdns | None = None
    result: dict[str, Any] = {}
    try:
        say(f"-- {label}: initial sync")
        server, result["sync"] = measure_sync(kubeconfig, out / f"kdns-{label}.log", [], args.timeout)
        sync = result["sync"]
        say(f"ready after {sync['wall_to_ready_s']:.2f} s, VmRSS {sync['rss_kib'] / 1024:.0f} MB")
        say(f"-- {label}: event to answer, {args.updates} EndpointSlice updates")
        result["latency"] = change_latency(server.port, name, change, args.updates, args.gap)
        lat = result["latency"]["latency_ms"]
        say(f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms")
        say(f"-- {label}: serving during a full relist")
        result["relist"] = relist(side.outage, server, targets.steady, args.baseline, out / label)
        result["relist"]["api_start_s"] = side.outage.started_in
        rel = result["relist"]
        say(f"converged {rel['converged_s']} s after the restart, longest gap {rel['longest_gap_ms']:.1f} ms")
        result["problems"] = server.problems()
    finally:
        if server is not None:
            server.stop()
    return result


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    machine = host.machine()  # before pinning: nproc counts the CPUs this process may use
    os.sched_setaffinity(0, {CLIENT_CPU})
    sys.setswitchinterval(0.0005)  # the fake's writer threads must not wait on the pollers for 5 ms
    snapshot = cluster.generate(
        args.services, seed=args.seed, endpoints_per_service=args.endpoints_per_service
    )
    objects = api_objects(snapshot["items"])
    del snapshot
    targets = pick_targets(objects)
    timed = headless_member(objects, 3)
    result: dict[str, Any] = {
        "date": host.date(),
        "machine": machine,
        "versions": host.versions(),
        "binaries": binaries().name,
        "quick": args.quick,
        "cluster": summary(objects) | {"endpoints_per_service": args.endpoints_per_service},
    }
    for label in ("fake", *REAL_MODES):
        (out / label).mkdir(parents=True, exist_ok=True)
    directory = data_directory(args.services, args.endpoints_per_service, args.seed)
    restored = [item for item in objects if _key(item) in _keys(targets)]  # what each relist deletes
    for label, (_, flags) in REAL_MODES.items():
        with ExitStack() as stack:
            plane = stack.enter_context(loaded(directory, objects, flags))
            load(plane.kubeconfig, restored)  # what an earlier relist deleted
            api = client(plane.kubeconfig)
            stack.callback(api.close)
            real = Side(label, plane.kubeconfig, mover(api, timed), RealOutage(plane, targets))
            result[label] = follow(real, member_name(timed), targets, args, out)
    result["load"] = json.loads((directory / "loaded.json").read_text())
    fake = KubeFake(bookmark_interval=60.0)
    try:
        fake.start()
        started = time.perf_counter()
        fake.load(objects)
        result["fake_load_s"] = time.perf_counter() - started
        current = fake.get("EndpointSlice", timed["metadata"]["namespace"], timed["metadata"]["name"])
        if current is None:
            raise RuntimeError(f"{member_name(timed)} is not in the fake")

        def change_fake(address: str) -> None:
            current["endpoints"] = with_address(timed, address)
            current["metadata"].pop("resourceVersion", None)
            fake.update(current)

        kubeconfig = fake.write_kubeconfig(out / "kubeconfig")
        result["fake"] = follow(
            Side("fake", kubeconfig, change_fake, FakeDeletions(fake, targets)),
            member_name(timed),
            targets,
            args,
            out,
        )
    finally:
        fake.stop()
    return result


def summary(objects: list[dict[str, Any]]) -> dict[str, int]:
    def count(kind: str) -> int:
        return sum(1 for item in objects if item["kind"] == kind)

    return {
        "namespaces": count("Namespace"),
        "services": count("Service"),
        "endpointslices": count("EndpointSlice"),
        "endpoints": sum(len(item["endpoints"]) for item in objects if item["kind"] == "EndpointSlice"),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    quick = "1,000 Services, 30 updates; writes bench/out/ only"
    parser = options.Parser("bench.real_api", __doc__, quick=quick)
    parser.following(updates="EndpointSlice updates", gap=0.05)
    return parser.parse(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = harness.run_exclusively(OUT, int(1800 + 3 * args.timeout), lambda: benchmark(args, OUT))
    if result is None:
        return 1
    readme = harness.readme_for(args.quick)
    report.write_section(readme, report.REAL_API_HEADING, render(result))
    say(f"wrote {readme} and {OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
