"""``python -m bench.informer``: kdns following a large cluster through the Kubernetes API.

A ``KubeFake`` (tests/kube_fake.py) in this process, pinned to CPU 0, serves a generated cluster of
10,000 Services and about 100,000 endpoints; ``kdns serve --kubeconfig`` runs pinned to CPU 1. One run
measures the initial sync (time and memory, beside CoreDNS's memory guide), the latency from a Service
update to the new answer, serving while every reflector relists after a 410, a profile of another such
relist (py-spy and perf), and the official client's typed models against raw JSON. Raw data go to
bench/out/informer/; the figures to the "Following the Kubernetes API" section of bench/README.md
(``--quick``: a 1,000-Service cluster, bench/out/informer/README.md only).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import re
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import dns.message
import dns.rcode

from bench import cluster, informer_report, report
from bench.lib import harness, host, kdns, options, profiling, stats
from bench.lib.harness import say
from bench.lib.kdns import Kdns, logged_at
from bench.lib.processes import CLIENT_CPU, SERVER_CPU
from bench.lib.servers import HOST
from tests.kube_fake import KubeFake

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out" / "informer"
PAGE = 500  # the page size kdns's reflectors and the client comparison use
COREDNS_BASE_MB, COREDNS_PER_1000 = 54.0, 1.0  # CoreDNS: (pods + services) / 1000 + 54 MB
_SYNCED = re.compile(r"synced with the Kubernetes API in ([\d.]+) s: (\d+) services, (\d+) endpoints")
_READY = re.compile(
    r"ready: listening on 127\.0\.0\.1 port (\d+).*?(\d+) pods, (\d+) namespaces, (\d+) names"
)
_OK, _WRONG = 0.0, 1.0
_GC = re.compile(r" GC gc: generation (\d) took ([\d.]+) ms")


# -- kdns following the fake ------------------------------------------------------------------------------
def gc_pauses(lines: list[str], start: float | None = None, end: float | None = None) -> dict[str, Any]:
    """The collections a ``trace_gc`` log holds (optionally between two monotonic times)."""
    pauses = []
    for line in lines:
        match, at = _GC.search(line), logged_at(line)
        if match is None or at is None:
            continue
        if (start is None or at >= start) and (end is None or at <= end):
            pauses.append((int(match[1]), float(match[2])))
    full = [ms for generation, ms in pauses if generation == 2]
    return {
        "collections_over_5ms": len(pauses),
        "total_ms": sum(ms for _, ms in pauses),
        "longest_ms": max((ms for _, ms in pauses), default=0.0),
        "full_collections": len(full),
        "longest_full_ms": max(full, default=0.0),
    }


def measure_sync(
    kubeconfig: Path, log: Path, extra: Sequence[str], timeout: float, *, trace_gc: bool = False
) -> tuple[Kdns, dict[str, Any]]:
    """``kdns serve --kubeconfig`` until its ready line; the sync's timings, CPU and memory."""
    cpu_before = time.process_time()
    server = kdns.start(
        kubeconfig=kubeconfig, log=log, cpus=SERVER_CPU, timeout=timeout, trace_gc=trace_gc,
        extra=["--startup-timeout", "600", *extra],
    )  # fmt: skip
    try:
        [(synced, synced_seen)] = server.tail.wait_for(_SYNCED, server, timeout)
        [(ready, ready_seen)] = server.tail.wait_for(_READY, server, timeout)
        cpu_at_ready = server.cpu_seconds()
        fake_cpu = time.process_time() - cpu_before
        following = server.tail.matching("following the Kubernetes API")
        at = logged_at(following[0]) if following else None
        time.sleep(1.0)  # let allocations settle before reading memory
        memory = server.memory_kib()
    except BaseException:
        server.stop()
        raise
    gc = {"gc": gc_pauses(server.tail.lines)} if trace_gc else {}
    return server, gc | {
        "args": list(extra),
        "synced_logged_s": float(synced[1]),
        "services": int(synced[2]),
        "endpoints": int(synced[3]),
        "pods": int(ready[2]),
        "namespaces": int(ready[3]),
        "names": int(ready[4]),
        "wall_to_synced_s": synced_seen - server.started,
        "wall_to_ready_s": ready_seen - server.started,
        "start_to_following_s": None if at is None else at - server.started,
        "kdns_cpu_s_at_ready": cpu_at_ready,
        "bench_cpu_s_during_sync": fake_cpu,
        "rss_kib": memory.get("VmRSS", 0),
        "hwm_kib": memory.get("VmHWM", 0),
        "threads_moved": server.pin(SERVER_CPU),
    }


def from_snapshot(snapshot: Path, out: Path) -> dict[str, Any]:
    """``kdns serve --snapshot`` of the same cluster: time to the ready line and memory; then the bytes
    held by area and per object (``bench.memory``, in a fresh interpreter)."""
    server = kdns.start(snapshot=snapshot, log=out / "kdns-snapshot.log", cpus=SERVER_CPU, timeout=300)
    try:
        ready = time.monotonic() - server.started
        time.sleep(1.0)  # let allocations settle before reading memory
        memory = server.memory_kib()
    finally:
        server.stop()
    command = [sys.executable, "-m", "bench.memory", "--snapshot", str(snapshot)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True, cwd=BENCH.parent)
    return {
        "snapshot_mb": snapshot.stat().st_size / 2**20,
        "ready_s": ready,
        "rss_kib": memory.get("VmRSS", 0),
        "hwm_kib": memory.get("VmHWM", 0),
        "breakdown": json.loads(done.stdout),
    }


# -- DNS over a blocking UDP socket ---------------------------------------------------------------------
class Asker:
    """Raw A queries without EDNS from one connected, blocking UDP socket; replies matched by ID."""

    def __init__(self, port: int, timeout: float = 0.5) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((HOST, port))
        self.sock.settimeout(timeout)
        self._id = 0
        self._templates: dict[tuple[str, str], bytes] = {}

    def close(self) -> None:
        self.sock.close()

    def ask(self, name: str, qtype: str = "A") -> bytes | None:
        """The reply, or None after the timeout."""
        template = self._templates.get((name, qtype))
        if template is None:
            template = self._templates[name, qtype] = dns.message.make_query(name, qtype).to_wire()
        self._id = (self._id + 1) & 0xFFFF
        self.sock.send(struct.pack("!H", self._id) + template[2:])
        deadline = time.monotonic() + (self.sock.gettimeout() or 0.5)
        while True:
            try:
                reply = self.sock.recv(4096)
            except TimeoutError:
                return None
            if len(reply) >= 12 and struct.unpack_from("!H", reply)[0] == self._id:
                return reply
            if time.monotonic() > deadline:  # only stale replies: give up on this one
                return None


def single_a(reply: bytes | None, packed: bytes) -> bool:
    """NOERROR with exactly one answer record, an A of ``packed`` (no EDNS: it ends the message)."""
    return (
        reply is not None
        and reply[3] & 0x0F == 0
        and struct.unpack_from("!H", reply, 6)[0] == 1
        and struct.unpack_from("!HH", reply, 8) == (0, 0)
        and reply[-4:] == packed
    )


def rcode_of(reply: bytes | None) -> int | None:
    return None if reply is None else reply[3] & 0x0F


def describe(reply: bytes | None) -> str:
    if reply is None:
        return "timeout"
    try:
        message = dns.message.from_wire(reply)
    except Exception as exc:  # a reply dnspython cannot parse is itself the finding
        return f"unparseable ({exc})"
    answers = "; ".join(rdata.to_text() for rrset in message.answer for rdata in rrset)
    return f"{dns.rcode.to_text(message.rcode())} [{answers}]"


# -- the cluster and the names the steps use ------------------------------------------------------------
@dataclass
class Targets:
    """Objects of the generated cluster that the steps change or ask about."""

    latency: dict[str, Any]  # a single-stack ClusterIP Service updated by the latency step
    steady: list[tuple[str, str]]  # (name, address) asked during the relist, never changed
    moved: dict[str, Any]  # a ClusterIP Service given a new address during the outage
    grown: dict[str, Any]  # a headless Service's EndpointSlice given one more endpoint during the outage
    dropped: dict[str, Any]  # an ExternalName Service deleted during the outage
    extra: list[tuple[str, str]] = field(default_factory=list)


def fqdn(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['name']}.{meta['namespace']}.svc.cluster.local"


def pick_targets(items: list[dict[str, Any]]) -> Targets:
    services = [
        i
        for i in items
        if i["kind"] == "Service" and i["metadata"]["namespace"] not in ("default", "kube-system")
    ]
    single = [s for s in services if s["spec"].get("clusterIPs", [None]) == [s["spec"].get("clusterIP")]]
    single = [s for s in single if s["spec"].get("clusterIP") not in (None, "None")]
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    external = [s for s in services if s["spec"].get("type") == "ExternalName"]
    slices: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        if item["kind"] == "EndpointSlice":
            meta = item["metadata"]
            slices.setdefault((meta["namespace"], meta["labels"]["kubernetes.io/service-name"]), item)
    steady_slice = slices[headless[1]["metadata"]["namespace"], headless[1]["metadata"]["name"]]
    member = steady_slice["endpoints"][0]
    member_name = f"{member['hostname']}.{fqdn(headless[1])}"
    grown = slices[headless[0]["metadata"]["namespace"], headless[0]["metadata"]["name"]]
    return Targets(
        latency=single[0],
        steady=[(fqdn(single[1]), single[1]["spec"]["clusterIP"]), (member_name, member["addresses"][0])],
        moved=single[2],
        grown=grown,
        dropped=external[0],
    )


# -- step 3: event to answer ----------------------------------------------------------------------------
def event_latency(
    fake: KubeFake, port: int, service: dict[str, Any], updates: int, gap: float
) -> dict[str, Any]:
    """Update the Service's clusterIP ``updates`` times; time each until a UDP answer has the new IP."""
    meta = service["metadata"]
    current = fake.get("Service", meta["namespace"], meta["name"])
    if current is None:
        raise RuntimeError(f"{fqdn(service)} is not in the fake")

    def change(address: str) -> None:
        current["spec"]["clusterIP"], current["spec"]["clusterIPs"] = address, [address]
        current["metadata"].pop("resourceVersion", None)
        fake.update(current)

    return change_latency(port, fqdn(service), change, updates, gap)


def change_latency(
    port: int, name: str, change: Callable[[str], None], updates: int, gap: float
) -> dict[str, Any]:
    """``updates`` times, ``change`` gives ``name`` a new address; each timed from just before the
    call until a UDP answer for ``name`` is that address alone."""
    asker = Asker(port)
    samples: list[dict[str, Any]] = []
    try:
        for i in range(updates):
            address = f"10.110.{i // 250}.{i % 250 + 1}"
            packed = socket.inet_aton(address)
            started = time.perf_counter()
            change(address)
            written = time.perf_counter()
            deadline, polls, seen, reply = started + 5.0, 0, None, None
            while time.perf_counter() < deadline:
                reply = asker.ask(name)
                polls += 1
                if single_a(reply, packed):
                    seen = time.perf_counter()
                    break
            samples.append({
                "address": address,
                "update_call_ms": (written - started) * 1000,
                "latency_ms": None if seen is None else (seen - started) * 1000,
                "polls": polls,
                "last_reply": None if seen is not None else describe(reply),
            })  # fmt: skip
            time.sleep(gap)
    finally:
        asker.close()
    answered = [s["latency_ms"] for s in samples if s["latency_ms"] is not None]
    return {
        "name": name,
        "updates": updates,
        "gap_s": gap,
        "answered": len(answered),
        "missed": updates - len(answered),
        "latency_ms": stats.distribution(answered),
        "update_call_ms": stats.distribution(s["update_call_ms"] for s in samples),
        "polls": stats.distribution(float(s["polls"]) for s in samples),
        "samples": samples,
    }


# -- step 4: serving during a relist --------------------------------------------------------------------
def query_loop(
    port: int, names: list[tuple[str, str]], seconds: float, path: str, events: tuple[Any, Any]
) -> None:
    """Ask ``names`` in turn as fast as one blocking socket can, until the ``stop`` event or ``seconds``.

    Runs in a child process; sets the ``ready`` event after its first reply. Writes float64 triples
    (sent, received, status) per reply to ``path``, status 0 for the expected answer and 1 for any
    other; timeouts and wrong answers go to ``path``.json."""
    os.sched_setaffinity(0, {CLIENT_CPU})
    asker = Asker(port, timeout=0.5)
    expected = [(name, socket.inet_aton(address)) for name, address in names]
    data = array("d")
    timeouts: list[float] = []
    wrong: list[tuple[float, str, str]] = []
    ready, stop = events
    end = time.monotonic() + seconds
    i = 0
    try:
        while len(data) < 3 * 4_000_000:
            if i % 256 == 0 and (stop.is_set() or time.monotonic() > end):
                break
            name, packed = expected[i % len(expected)]
            i += 1
            sent = time.monotonic()
            reply = asker.ask(name)
            received = time.monotonic()
            if reply is None:
                timeouts.append(sent)
                continue
            ok = single_a(reply, packed)
            data.extend((sent, received, _OK if ok else _WRONG))
            if i == 1:
                ready.set()
            if not ok and len(wrong) < 50:
                wrong.append((received, name, describe(reply)))
    finally:
        asker.close()
        with open(path, "wb") as out:
            data.tofile(out)
        Path(path + ".json").write_text(json.dumps({"timeouts": timeouts, "wrong": wrong}))


def changed_during_outage(
    fake: KubeFake, targets: Targets
) -> list[tuple[str, str, Callable[[bytes | None], bool]]]:
    """Three writes while the fake is down; (what, name, test of the converged answer) for each."""
    moved = fake.get("Service", targets.moved["metadata"]["namespace"], targets.moved["metadata"]["name"])
    grown_meta = targets.grown["metadata"]
    grown = fake.get("EndpointSlice", grown_meta["namespace"], grown_meta["name"])
    dropped = targets.dropped["metadata"]
    assert moved is not None and grown is not None
    moved["spec"]["clusterIP"], moved["spec"]["clusterIPs"] = "10.111.0.1", ["10.111.0.1"]
    moved["metadata"].pop("resourceVersion", None)
    fake.update(moved)
    service = grown["metadata"]["labels"]["kubernetes.io/service-name"]
    hostname = f"{service}-new"
    grown["endpoints"].append({
        "addresses": ["10.247.255.1"], "conditions": {"ready": True}, "hostname": hostname,
    })  # fmt: skip
    grown["metadata"].pop("resourceVersion", None)
    fake.update(grown)
    fake.delete("Service", dropped["namespace"], dropped["name"])
    return [
        (
            "Service address changed",
            fqdn(targets.moved),
            lambda r: single_a(r, socket.inet_aton("10.111.0.1")),
        ),
        (
            "endpoint added to a slice",
            f"{hostname}.{service}.{grown_meta['namespace']}.svc.cluster.local",
            lambda r: single_a(r, socket.inet_aton("10.247.255.1")),
        ),
        ("Service deleted", fqdn(targets.dropped), lambda r: rcode_of(r) == 3),
    ]


def longest_gap(times: list[float], start: float, end: float) -> tuple[float, float]:
    """The longest time without a reply in [start, end], and when it began."""
    inside = [t for t in times if start <= t <= end]
    edges = [start, *inside, end]
    gap, at = 0.0, start
    for a, b in itertools.pairwise(edges):
        if b - a > gap:
            gap, at = b - a, a
    return gap, at


Check = tuple[str, str, Callable[[bytes | None], bool]]  # (what changed, name asked, converged answer?)


class Outage(Protocol):
    """An API server taken down and brought back so that every reflector's next watch gets 410 Gone."""

    def begin(self) -> list[Check]:
        """Stop the API, change objects behind kdns's back, compact the history; what to check."""
        ...

    def end(self) -> None:
        """Start the API again."""
        ...

    def list_times(self, since: float) -> dict[str, list[float]]:
        """The monotonic times of the API's list requests since ``since``, by collection (empty when
        the API server does not say)."""
        ...


@dataclass
class FakeOutage:
    """The fake stopped, three objects changed and its history compacted (``changed_during_outage``)."""

    fake: KubeFake
    targets: Targets

    def begin(self) -> list[Check]:
        self.fake.stop()
        checks = changed_during_outage(self.fake, self.targets)
        self.fake.compact()
        return checks

    def end(self) -> None:
        self.fake.start()

    def list_times(self, since: float) -> dict[str, list[float]]:
        return {
            kind: [t for t in self.fake.request_times(kind, "list") if t >= since]
            for kind in ("namespaces", "services", "endpointslices")
        }


def relist(
    outage: Outage, server: Kdns, steady: list[tuple[str, str]], before: float, out: Path
) -> dict[str, Any]:
    """Force every reflector to relist (410) while a child process asks ``steady`` names; measure
    gaps and convergence."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    path = out / "relist-replies.f64"
    child = context.Process(
        target=query_loop,
        args=(server.port, steady, before + 120.0, str(path), (ready, stop)),
        daemon=True,
    )
    asker = Asker(server.port, timeout=0.2)
    server.tail.poll()
    log_mark = len(server.tail.lines)
    try:
        child.start()
        if not ready.wait(30.0):
            raise RuntimeError("the query child got no answer from kdns within 30 s")
        time.sleep(before)
        cpu_before = server.cpu_seconds()
        t_stop = time.monotonic()
        checks = outage.begin()
        t_start = time.monotonic()
        outage.end()
        converged: dict[str, float] = {}
        deadline = t_start + 120.0
        while len(converged) < len(checks) and time.monotonic() < deadline:
            for what, name, test in checks:
                if what not in converged and test(asker.ask(name)):
                    converged[what] = time.monotonic()
            time.sleep(0.01)
        t_converged = max(converged.values()) if len(converged) == len(checks) else None
        kdns_cpu = server.cpu_seconds() - cpu_before
        time.sleep(1.0)
        stop.set()
        child.join(30)
    finally:
        asker.close()
        if child.is_alive():
            child.terminate()
            child.join(5)
    raw = array("d")
    with path.open("rb") as stream:
        raw.frombytes(stream.read())
    extra = json.loads(Path(str(path) + ".json").read_text())
    sent, received, status = raw[0::3], raw[1::3], raw[2::3]
    end = t_converged if t_converged is not None else time.monotonic()
    ok_times = [r for r, s in zip(received, status, strict=True) if s == _OK]
    base_from = t_stop - before
    base = [t for t in ok_times if base_from <= t < t_stop]
    during = [t for t in ok_times if t_start <= t <= end]
    gap, gap_at = longest_gap(ok_times, t_start, end)
    gap_all, gap_all_at = longest_gap(ok_times, t_stop, end)
    rtts = [(r - s, r) for s, r in zip(sent, received, strict=True) if t_start <= r <= end]
    worst_rtt = max(rtts, default=(float("nan"), 0.0))
    list_times = outage.list_times(t_start)
    active_from = min((times[0] for times in list_times.values() if times), default=t_start)
    active = [t for t in ok_times if active_from <= t <= end]
    memory = server.memory_kib()
    server.tail.poll()
    lines = server.tail.lines[log_mark:]
    events = []
    for line in lines:
        at = logged_at(line)
        if at is not None and any(k in line for k in ("expired", "unavailable", "available again", "watch ")):
            events.append({"at_s": at - t_start, "line": line})
    return {
        "steady_names": steady,
        "outage_s": t_start - t_stop,
        "converged_s": None if t_converged is None else t_converged - t_start,
        "converged_each_s": {what: at - t_start for what, at in converged.items()},
        "changes": [(what, name) for what, name, _ in checks],
        "lists": {kind: len(times) for kind, times in list_times.items()},
        "list_times_s": {kind: [t - t_start for t in times] for kind, times in list_times.items()},
        "active_from_s": active_from - t_start,
        "answers_active_per_s": len(active) / (end - active_from) if end > active_from else float("nan"),
        "answers_before_per_s": len(base) / before,
        "answers_during_per_s": len(during) / (end - t_start) if end > t_start else float("nan"),
        "longest_gap_ms": gap * 1000,
        "longest_gap_at_s": gap_at - t_start,
        "longest_gap_from_outage_ms": gap_all * 1000,
        "longest_gap_from_outage_at_s": gap_all_at - t_start,
        "longest_rtt_ms": worst_rtt[0] * 1000,
        "longest_rtt_at_s": worst_rtt[1] - t_start,
        "slowest_replies": [(rtt * 1000, at - t_start) for rtt, at in sorted(rtts)[-10:]],
        "replies_over_10ms": sum(1 for rtt, _ in rtts if rtt > 0.010),
        "replies": len(status),
        "wrong": sum(1 for s in status if s != _OK),
        "wrong_samples": [(at - t_start, name, text) for at, name, text in extra["wrong"]],
        "timeouts": len(extra["timeouts"]),
        "timeout_at_s": [t - t_start for t in extra["timeouts"][:20]],
        "kdns_cpu_s": kdns_cpu,
        "rss_kib_after": memory.get("VmRSS", 0),
        "hwm_kib_after": memory.get("VmHWM", 0),
        "log": events,
        "timeline": timeline(ok_times, t_stop - before, end + 1.0, t_start),
    } | ({"gc": gc_pauses(lines, t_start, end)} if server.trace_gc else {})


RELISTED = re.compile(r"relisted (\w+?)s: (\d+) objects, (\d+) changed, applied in ([\d.]+) s")


def profiled_relist(
    fake: KubeFake, server: Kdns, targets: Targets, out: Path, timeout: float
) -> dict[str, Any]:
    """Another full relist (one Service write, then history compacted, as in ``relist``), recorded by
    py-spy and perf from the fake's restart until kdns has logged every collection relisted."""
    kinds = {"Namespace", "Service", "EndpointSlice"}
    meta = targets.latency["metadata"]
    service = fake.get("Service", meta["namespace"], meta["name"])
    if service is None:
        raise RuntimeError(f"{fqdn(targets.latency)} is not in the fake")
    server.tail.poll()
    mark = len(server.tail.lines)
    fake.stop()
    service["spec"]["clusterIP"], service["spec"]["clusterIPs"] = "10.111.0.2", ["10.111.0.2"]
    service["metadata"].pop("resourceVersion", None)
    fake.update(service)
    fake.compact()
    recording = profiling.start_recording(server.pid, out, "relist", CLIENT_CPU)
    applied: dict[str, dict[str, float]] = {}
    try:
        time.sleep(0.5)  # py-spy and perf attach
        cpu_before, started = server.cpu_seconds(), time.monotonic()
        fake.start()
        deadline = started + timeout
        while not kinds <= applied.keys() and time.monotonic() < deadline:
            server.tail.poll()
            for line in server.tail.lines[mark:]:
                if (match := RELISTED.search(line)) is not None:
                    applied[match[1]] = {
                        "objects": int(match[2]),
                        "changed": int(match[3]),
                        "apply_s": float(match[4]),
                    }
            server.check_alive()
            time.sleep(0.01)
        seconds, kdns_cpu = time.monotonic() - started, server.cpu_seconds() - cpu_before
    finally:
        profile = profiling.stop_recording(recording)
    if not kinds <= applied.keys():
        profile["error"] = f"kdns relisted only {sorted(applied)} within {timeout:.0f} s"
    return profile | {"restart_to_relisted_s": seconds, "kdns_cpu_s": kdns_cpu, "applied": applied}


def timeline(
    times: list[float], start: float, end: float, zero: float, step: float = 0.1
) -> list[tuple[float, int]]:
    """Replies per ``step`` seconds from ``start`` to ``end``, bins labelled relative to ``zero``."""
    bins = int((end - start) / step) + 1
    counts = [0] * bins
    for t in times:
        if start <= t < end:
            counts[int((t - start) / step)] += 1
    return [(round(start + i * step - zero, 3), n) for i, n in enumerate(counts)]


# -- step 5: typed models against raw JSON --------------------------------------------------------------
@dataclass(frozen=True)
class Listing:
    kind: str
    api: str  # CoreV1Api or DiscoveryV1Api
    method: str


LISTINGS = (
    Listing("endpointslices", "DiscoveryV1Api", "list_endpoint_slice_for_all_namespaces"),
    Listing("services", "CoreV1Api", "list_service_for_all_namespaces"),
    Listing("pods", "CoreV1Api", "list_pod_for_all_namespaces"),
)


def _pages(call: Callable[..., Any], mode: str, limit_pages: int | None) -> Iterator[Any]:
    """Every page of a paginated list: typed models, parsed JSON, or raw bytes (``http``)."""
    token: str | None = None
    for _ in range(limit_pages or 100_000):
        params: dict[str, Any] = {"limit": PAGE}
        if token:
            params["_continue"] = token
        if mode == "typed":
            page = call(**params)
            token = page.metadata._continue
            yield page
        else:
            response = call(_preload_content=False, **params)
            try:
                body = response.data
            finally:
                response.release_conn()
            if mode == "json":
                page = json.loads(body)
                token = page["metadata"].get("continue")
                yield page
            else:  # the metadata comes before the items: read only that much
                head = body[: body.index(b',"items":[')] + b"}"
                token = json.loads(head)["metadata"].get("continue")
                yield body
        if not token:
            return


def _count(mode: str, page: Any) -> int:
    if mode == "typed":
        return len(page.items)
    return len(page["items"]) if mode == "json" else 0


def deserialisation(kubeconfig: Path, repeats: int, subset_pages: int) -> dict[str, Any]:
    """Page through each listing with typed models, with raw JSON and as bytes only; timing and memory."""
    import kubernetes.client  # noqa: PLC0415 (only this step needs the client in this process)
    import kubernetes.config  # noqa: PLC0415

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration, persist_config=False
    )
    configuration.retries = False
    client = kubernetes.client.ApiClient(configuration)
    results: dict[str, Any] = {}
    for listing in LISTINGS:
        call = getattr(getattr(kubernetes.client, listing.api)(client), listing.method)
        row: dict[str, Any] = {"call": f"{listing.api}.{listing.method}(limit={PAGE}, _continue=...)"}
        for mode in ("http", "json", "typed") * repeats:
            started, cpu = time.perf_counter(), time.process_time()
            objects = pages = 0
            for page in _pages(call, mode, None):
                objects += _count(mode, page)
                pages += 1
            row.setdefault(mode, []).append({
                "seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu,
                "pages": pages, "objects": objects,
            })  # fmt: skip
        for mode in ("json", "typed"):
            tracemalloc.start()
            kept = list(_pages(call, mode, subset_pages))
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            row[f"{mode}_memory"] = {
                "pages": len(kept),
                "objects": sum(_count(mode, page) for page in kept),
                "retained_kib": current / 1024,
                "peak_kib": peak / 1024,
            }
            del kept
        results[listing.kind] = row
    return results


# -- the run ---------------------------------------------------------------------------------------------
def coredns_guide_mb(pods: int, services: int) -> float:
    return (pods + services) / 1000 * COREDNS_PER_1000 + COREDNS_BASE_MB


def stop_kdns(server: Kdns | None) -> None:
    if server is not None:
        server.stop()


def benchmark(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "date": host.date(),
        "machine": host.machine(),  # before pinning: nproc counts the CPUs this process may use
        "versions": host.versions(),
        "quick": args.quick,
        "relist_baseline_s": args.baseline,
    }
    sys.setswitchinterval(0.0005)  # the fake's writer threads must not wait on the pollers for 5 ms
    os.sched_setaffinity(0, {CLIENT_CPU})
    snapshot = cluster.generate(
        args.services, seed=args.seed, endpoints_per_service=args.endpoints_per_service
    )
    items = snapshot["items"]
    result["cluster"] = cluster.summary(snapshot) | {"endpoints_per_service": args.endpoints_per_service}
    targets = pick_targets(items)
    fake = KubeFake(bookmark_interval=1.0)
    server: Kdns | None = None
    try:
        fake.start()
        started = time.perf_counter()
        fake.load(items)
        result["cluster"]["load_s"] = time.perf_counter() - started
        snapshot_path = out / "cluster.json"
        cluster.write(snapshot, snapshot_path)
        del snapshot, items
        kubeconfig = fake.write_kubeconfig(out / "kubeconfig")
        step("1-2. initial sync (kdns serve, default --pods insecure)")
        server, sync = measure_sync(kubeconfig, out / "kdns.log", [], args.timeout, trace_gc=args.trace_gc)
        result["sync"] = sync
        say(f"synced in {sync['synced_logged_s']:.2f} s, ready after {sync['wall_to_ready_s']:.2f} s, "
            f"VmRSS {sync['rss_kib'] / 1024:.0f} MB")  # fmt: skip
        step(f"3. event to answer: {args.updates} Service updates")
        result["latency"] = event_latency(fake, server.port, targets.latency, args.updates, args.gap)
        lat = result["latency"]["latency_ms"]
        say(f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms")
        step("4. serving during a full relist")
        result["relist"] = relist(FakeOutage(fake, targets), server, targets.steady, args.baseline, out)
        rel = result["relist"]
        say(f"converged {rel['converged_s']} s after the restart, longest gap {rel['longest_gap_ms']:.1f} ms")
        step("4b. profile of another full relist (py-spy and perf)")
        result["relist_profile"] = profiled_relist(fake, server, targets, out, 120.0)
        prof = result["relist_profile"]
        say(f"relisted in {prof['restart_to_relisted_s']:.2f} s, kdns CPU {prof['kdns_cpu_s']:.2f} s, "
            f"{prof.get('pyspy', {}).get('samples', 0)} py-spy samples")  # fmt: skip
        result["log_findings"] = {"default": server.problems()}
        stop_kdns(server)
        server = None
        step("2b. initial sync with --pods verified (Pods watched too)")
        server, result["sync_pods"] = measure_sync(
            kubeconfig, out / "kdns-pods.log", ["--pods", "verified"], args.timeout, trace_gc=args.trace_gc
        )
        result["log_findings"]["pods_verified"] = server.problems()
        say(f"synced in {result['sync_pods']['synced_logged_s']:.2f} s, "
            f"VmRSS {result['sync_pods']['rss_kib'] / 1024:.0f} MB")  # fmt: skip
        stop_kdns(server)
        server = None
        step("2c. the same cluster from a snapshot file, and where the bytes go")
        result["snapshot"] = from_snapshot(snapshot_path, out)
        snap = result["snapshot"]
        say(f"ready in {snap['ready_s']:.2f} s, VmRSS {snap['rss_kib'] / 1024:.0f} MB")
        step("5. typed models against raw JSON")
        result["deserialisation"] = deserialisation(kubeconfig, args.repeats, args.subset_pages)
    finally:
        stop_kdns(server)
        fake.stop()
    pods, services = result["cluster"]["pods"], result["cluster"]["services"]
    result["coredns_guide_mb"] = coredns_guide_mb(pods, services)
    return result


def step(text: str) -> None:
    say(f"-- {text}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = options.Parser(
        "bench.informer", __doc__, quick="1,000 Services, 30 updates; writes bench/out/ only"
    )
    parser.following(updates="Service updates", gap=0.02)
    parser.quick_default("--repeats", full=3, quick=1, help="passes per client mode", kind=int)
    parser.add_argument("--subset-pages", type=int, default=4, help="pages traced for memory (default: 4)")
    parser.add_argument(
        "--trace-gc",
        action="store_true",
        help="log kdns's garbage collections of 5 ms or more (a diagnosis; writes bench/out/ only)",
    )
    return parser.parse(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = harness.run_exclusively(OUT, int(900 + 3 * args.timeout), lambda: benchmark(args, OUT))
    if result is None:
        return 1
    readme = harness.readme_for(args.quick or args.trace_gc)
    report.write_section(readme, report.INFORMER_HEADING, informer_report.render(result))
    say(f"wrote {readme} and {OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
