"""API server chaos: ``kdns serve`` follows the fake API server through connection resets, a 410 storm,
500/503s and 429s with Retry-After, slow lists with expiring continue tokens and silent watches, while
the cluster keeps changing. After each scenario the zone kdns serves must equal, name by name over
real DNS, what ``kdns dump --snapshot`` makes of the API's own objects; the requests the API received
must stay within what the documented backoff allows; /ready and /metrics must tell the truth
throughout."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from kdns.cluster.model import ClusterObject, Event
from kdns.sources.kube import SERVICES, Connection
from kdns.sources.reflector import ApiHealth, Reflector, WatchSettings
from tests.kube_fake import KubeFake
from tests.support.client import ask
from tests.support.metrics import endpoint, get, metric, scrape
from tests.support.objects import endpoint_slice, namespace, service
from tests.support.polling import eventually
from tests.support.process import Server, run_kdns, running

pytestmark = pytest.mark.slow  # each scenario runs kdns against a misbehaving API for seconds

KINDS = ("Namespace", "Service", "EndpointSlice")
NAMESPACES = ("shop", "data")
SERVICES_PER_NAMESPACE = 6
ENDPOINT_POOL = 6  # addresses per Service the churn picks from
FORWARD_TYPES = ("A", "AAAA", "SRV", "CNAME")
MARKER = "marker.shop.svc.cluster.local."
BACKOFF_FIRST, BACKOFF_CAP = 0.8, 30.0  # the documented backoff: 0.8 s doubling to 30 s, jitter adds


# -- the cluster, changing ------------------------------------------------------------------------------
def _service_body(rng: random.Random, ns: int, i: int) -> dict:
    name, ns_name = f"svc-{i}", NAMESPACES[ns]
    ports = [("http", 80 + i, "TCP")] + ([("dns", 53, "UDP")] if rng.random() < 0.5 else [])
    match rng.choice(("cluster", "cluster", "headless", "dual", "external")):
        case "cluster":
            return service(name, ns_name, ip=f"10.96.{ns}.{10 + i}", ports=ports)
        case "headless":
            return service(name, ns_name, ip="None", ports=ports)
        case "dual":
            return service(name, ns_name, ip=[f"10.96.{ns}.{10 + i}", f"fd00::{ns}:{10 + i}"], ports=ports)
    target = f"svc-{(i + 1) % SERVICES_PER_NAMESPACE}.{ns_name}.svc.cluster.local"
    return service(name, ns_name, ip=None, type="ExternalName", externalName=target)


def _slice_body(rng: random.Random, ns: int, i: int, part: str) -> dict:
    picked = rng.sample(range(1, ENDPOINT_POOL + 1), rng.randint(0, 3))
    addresses = []
    for n in picked:
        endpoint: dict = {"addresses": [f"10.{ns + 1}.{i}.{n}"], "conditions": {"ready": rng.random() < 0.8}}
        if rng.random() < 0.3:
            endpoint["hostname"] = f"host-{n}"
        addresses.append(endpoint)
    ports = [("http", 8000 + i, "TCP")] + ([("dns", 53, "UDP")] if rng.random() < 0.5 else [])
    return endpoint_slice(f"svc-{i}-{part}", f"svc-{i}", NAMESPACES[ns], addresses=addresses, ports=ports)


class Churn:
    """Creates, updates and deletes Services and EndpointSlices (and one Namespace) on the fake, at
    random from a small fixed universe, on a thread of its own until stopped."""

    def __init__(self, api: KubeFake, seed: int, interval: float = 0.03) -> None:
        self.api, self.rng, self.interval = api, random.Random(seed), interval
        self.changes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def populate(self) -> None:
        for name in NAMESPACES:
            self.api.create(namespace(name))
        for ns in range(len(NAMESPACES)):
            for i in range(SERVICES_PER_NAMESPACE):
                self.api.create(_service_body(self.rng, ns, i))
                self.api.create(_slice_body(self.rng, ns, i, "a"))

    def step(self) -> None:
        """One random change."""
        rng, api = self.rng, self.api
        if rng.random() < 0.03:
            present = api.get("Namespace", None, "extra") is not None
            api.delete("Namespace", None, "extra") if present else api.create(namespace("extra"))
            self.changes["Namespace"] += 1
            return
        ns, i = rng.randrange(len(NAMESPACES)), rng.randrange(SERVICES_PER_NAMESPACE)
        kind = rng.choice(("Service", "EndpointSlice", "EndpointSlice"))
        name = f"svc-{i}" if kind == "Service" else f"svc-{i}-{rng.choice('ab')}"
        body = _service_body(rng, ns, i) if kind == "Service" else _slice_body(rng, ns, i, name[-1])
        if api.get(kind, NAMESPACES[ns], name) is not None and rng.random() < 0.3:
            api.delete(kind, NAMESPACES[ns], name)
        else:
            api.apply(body)
        self.changes[kind] += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def total(self) -> int:
        return sum(self.changes.values())


def candidate_names() -> set[str]:
    """Every name the churn's universe can ever produce, to catch one that should be gone."""
    names = {"extra.svc.cluster.local."}
    for ns, ns_name in enumerate(NAMESPACES):
        for i in range(SERVICES_PER_NAMESPACE):
            svc = f"svc-{i}.{ns_name}.svc.cluster.local."
            names |= {svc, f"_http._tcp.{svc}", f"_dns._udp.{svc}", f"{10 + i}.{ns}.96.10.in-addr.arpa."}
            for n in range(1, ENDPOINT_POOL + 1):
                names |= {
                    f"10-{ns + 1}-{i}-{n}.{svc}",
                    f"host-{n}.{svc}",
                    f"{n}.{i}.{ns + 1}.10.in-addr.arpa.",
                }
    return names


# -- the API's truth, and what kdns serves ----------------------------------------------------------------
@dataclass
class Zone:
    """A zone as ``kdns dump`` prints it: the answers by (name, type), and how many names it holds."""

    answers: dict[tuple[str, str], frozenset[str]]
    names: int


def _rdata(rtype: str, text: str) -> str:
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), text).to_text()


def truth(api: KubeFake, directory: Path) -> Zone:
    """``kdns dump --snapshot`` of the API's objects as they are now."""
    items = [obj for kind in KINDS for obj in api.objects(kind)]
    snapshot = directory / f"truth-{time.monotonic_ns()}.json"
    snapshot.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    result = run_kdns("dump", "--snapshot", str(snapshot))
    assert result.returncode == 0, result.stderr
    answers: dict[tuple[str, str], set[str]] = {}
    names = 0
    for line in result.stdout.splitlines():
        if match := re.match(r"; kdns zone: .*, (\d+) names", line):
            names = int(match[1])
        if not line or line.startswith((";", "$")):
            continue
        name, _ttl, _class, rtype, text = line.split(None, 4)
        if rtype != "SOA":  # its serial is the build's
            answers.setdefault((name.lower(), rtype), set()).add(_rdata(rtype, text))
    return Zone({key: frozenset(values) for key, values in answers.items()}, names)


def served(port: int, name: str, rtype: str) -> frozenset[str]:
    """The RRset of exactly (name, type) in kdns's answer, over real DNS."""
    reply = ask(port, name, rtype, fallback=True, timeout=2)
    wanted = dns.rdatatype.from_text(rtype)
    return frozenset(
        rdata.to_text()
        for rrset in reply.answer
        if rrset.name.to_text().lower() == name and rrset.rdtype == wanted
        for rdata in rrset
    )


def mismatches(server: Server, expected: Zone, metrics_url: str) -> list[str]:
    """How the served zone differs from ``expected`` (empty: exactly equal)."""
    types: dict[str, set[str]] = {}
    for name, rtype in expected.answers:
        types.setdefault(name, set()).add(rtype)
    for name in candidate_names():  # every type that could linger there
        types.setdefault(name, set()).update(("PTR",) if name.endswith(".arpa.") else FORWARD_TYPES)
    wrong = []
    for name, rtypes in sorted(types.items()):
        for rtype in sorted(rtypes):
            want = expected.answers.get((name, rtype), frozenset())
            got = served(server.port, name, rtype)
            if got != want:
                wrong.append(f"{name} {rtype}: served {sorted(got)}, the API says {sorted(want)}")
    names_served = scrape(metrics_url).get(("kdns_zone_names", ()), -1)
    if names_served != expected.names:
        wrong.append(f"the zone holds {names_served} names, the API's objects make {expected.names}")
    return wrong


def converge(server: Server, api: KubeFake, directory: Path, probe: Probe, timeout: float = 30) -> float:
    """Wait until the served zone is exactly the API's truth; return how long that took."""
    started = time.monotonic()
    expected = truth(api, directory)
    assert len(expected.answers) > 20  # a cluster with something in it
    last: list[str] = []

    def exact() -> bool:
        last[:] = mismatches(server, expected, probe.metrics_url)
        return not last

    try:
        eventually(exact, timeout=timeout, interval=0.2)
    except AssertionError:
        raise AssertionError("the zone did not converge:\n" + "\n".join(last[:20])) from None
    return time.monotonic() - started


# -- probes ---------------------------------------------------------------------------------------------
@dataclass
class Probe:
    """Polls /ready and /metrics on a thread, keeping what they said and when."""

    ready_url: str
    metrics_url: str
    ready: list[tuple[float, int]] = field(default_factory=list)
    metrics: list[tuple[float, dict]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.ready.append((time.monotonic(), get(self.ready_url)[0]))
            self.metrics.append((time.monotonic(), scrape(self.metrics_url)))

    def between(self, start: float, end: float) -> Iterator[dict]:
        return (m for t, m in self.metrics if start <= t <= end)

    def ready_between(self, start: float, end: float) -> set[int]:
        return {status for t, status in self.ready if start <= t <= end}


@contextmanager
def following(api: KubeFake, tmp_path: Path, *args: str) -> Iterator[tuple[Server, Probe]]:
    """``kdns serve`` following ``api`` with /ready and /metrics, and a probe polling them."""
    kubeconfig = str(api.write_kubeconfig(tmp_path / "kubeconfig"))
    with running(
        "--kubeconfig",
        kubeconfig,
        "--no-forward",
        "--ready",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--watch-idle-timeout",
        "1",
        *args,
    ) as server:
        probe = Probe(endpoint(server, "ready") + "/ready", endpoint(server, "metrics") + "/metrics")
        thread = threading.Thread(target=probe._run, name="probe", daemon=True)
        thread.start()
        try:
            yield server, probe
        finally:
            probe._stop.set()
            thread.join(5)


# -- backoff arithmetic -------------------------------------------------------------------------------------
def most_attempts(seconds: float, *, at_once: int = 1, floor: float = 0.0) -> int:
    """The most requests the documented backoff allows in ``seconds``: ``at_once`` without waiting, then
    waits of at least 0.8 s doubling to 30 s (jitter only lengthens them), never below ``floor``
    (a Retry-After)."""
    attempts, spent, wait = at_once, 0.0, BACKOFF_FIRST
    while spent + max(wait, floor) <= seconds:
        spent += max(wait, floor)
        attempts += 1
        wait = min(wait * 2, BACKOFF_CAP)
    return attempts


def in_window(times: list[float], start: float, end: float) -> list[float]:
    return [t for t in times if start <= t <= end]


def requests_agree(api: KubeFake, metrics: dict, *, resets: bool = False) -> None:
    """kdns's request counters say what the API server saw: the same count for every status. With
    ``resets``, a response the server began may have died on the way: kdns counts it as ``<error>``."""
    for kind in KINDS:
        for verb in ("list", "watch"):
            seen = api.statuses(kind, verb)
            ours = Counter(
                {
                    labels["code"]: int(value)
                    for (name, pairs), value in metrics.items()
                    if name == "kdns_kubernetes_requests_total"
                    and (labels := dict(pairs))["kind"] == kind
                    and labels["verb"] == verb
                }
            )
            lost = ours.pop("<error>", 0)
            expected = Counter({str(code): count for code, count in seen.items()})
            if not resets:
                assert +ours == expected, (kind, verb)
                continue
            assert all(ours[code] <= count for code, count in expected.items()), (kind, verb)
            assert ours.keys() <= expected.keys() and expected.total() - ours.total() <= lost, (kind, verb)


@pytest.fixture
def api() -> Iterator[KubeFake]:
    with KubeFake(bookmark_interval=0.1) as fake:
        yield fake


# -- the scenarios ---------------------------------------------------------------------------------------
def relists_on_their_way(api: KubeFake) -> None:
    """Reset every connection while watches are 410 Gone: each kind relists; return once every relist
    has begun (its first half sent, the rest 0.3 s away)."""
    listed = {kind: api.statuses(kind)[200] for kind in KINDS}
    api.expire_watches(True)
    api.reset_connections()
    eventually(lambda: all(api.statuses(k)[200] > n for k, n in listed.items()), timeout=5)
    api.expire_watches(False)
    time.sleep(0.1)


def test_connection_resets_every_half_second_lose_nothing(api, tmp_path):
    """A load balancer resetting every connection twice a second for 5 s, once right after a compaction
    and again while the relists it causes are on their way (cut mid-body): every stream that worked
    resumes at once (no backoff), so each change is served within a second even during the resets;
    nothing is lost, and it is no outage."""
    api.list_delay = 0.3
    churn = Churn(api, seed=1)
    churn.populate()
    with following(api, tmp_path) as (server, probe):
        start, lags = time.monotonic(), []
        with churn:
            for resets in range(1, 11):
                time.sleep(0.4)
                if resets == 5:
                    relists_on_their_way(api)  # which this reset cuts mid-body
                api.reset_connections()
                address = f"10.96.9.{resets}"
                api.apply(service("marker", "shop", ip=address))
                changed = time.monotonic()
                eventually(
                    lambda a=address: served(server.port, MARKER, "A") == {a}, timeout=10, interval=0.01
                )
                lags.append(time.monotonic() - changed)
        end = time.monotonic()
        api.list_delay = 0.0
        took = converge(server, api, tmp_path, probe)
        metrics = scrape(probe.metrics_url)
        assert max(lags) < 1.0, lags
        for kind in KINDS:
            dropped = metric(metrics, "kdns_kubernetes_watch_ends_total", kind=kind, reason="dropped")
            assert dropped >= resets - 1
            assert len(in_window(api.request_times(kind), start, end)) >= 2  # relisted after the 410
            # each reset costs a resumed watch, or a relist and its watch, and a relist cut short
            requests = in_window(api.request_times(kind, "watch") + api.request_times(kind), start, end)
            assert len(requests) <= 3 * resets + 3, (kind, len(requests), resets)
        assert server.logged("request broke (ProtocolError")  # the relists cut mid-body
        requests_agree(api, metrics, resets=True)
        assert probe.ready_between(start, time.monotonic()) == {200}
        assert all(metric(m, "kdns_kubernetes_api_up") == 1 for m in probe.between(start, end))
        assert not server.logged("Kubernetes API unavailable")
    assert churn.total > 100
    print(f"resets: {resets + 1}, changes: {dict(churn.changes)}, lag at most {max(lags):.2f} s, ", end="")
    print(f"converged in {took:.2f} s")


def test_a_410_storm_relists_with_backoff(api, tmp_path):
    """Every watch answered ``410 Gone`` for 4 s: kdns relists, at once the first time and then with
    backoff, never more often; the zone catches up with every change made meanwhile."""
    churn = Churn(api, seed=2)
    churn.populate()
    with following(api, tmp_path) as (server, probe):
        before = scrape(probe.metrics_url)
        api.expire_watches(True)
        api.close_watches()  # an API server restart: the watches resume from their versions, into the storm
        start = time.monotonic()
        with churn:
            time.sleep(4)
            api.expire_watches(False)
        end = time.monotonic()
        took = converge(server, api, tmp_path, probe)
        metrics = scrape(probe.metrics_url)
        counted = {}
        for kind in KINDS:
            lists = len(in_window(api.request_times(kind), start, end))
            watches = len(in_window(api.request_times(kind, "watch"), start, end))
            assert 2 <= lists <= most_attempts(end - start), (kind, lists)
            counted[kind] = f"{lists} lists, {watches} watches (bound {most_attempts(end - start)} lists)"
            assert watches <= lists + 1, (kind, watches, lists)
            expired = metric(metrics, "kdns_kubernetes_watch_ends_total", kind=kind, reason="expired")
            assert expired >= 2
            relists = metric(metrics, "kdns_kubernetes_lists_total", kind=kind)
            assert relists - metric(before, "kdns_kubernetes_lists_total", kind=kind) >= lists - 1
        requests_agree(api, metrics)
        assert probe.ready_between(start, time.monotonic()) == {200}
        assert all(metric(m, "kdns_kubernetes_api_up") == 1 for m in probe.between(start, end))
        assert not server.logged("Kubernetes API unavailable")
    assert churn.total > 80
    print(f"{end - start:.1f} s storm: {counted}; changes: {dict(churn.changes)}, converged in {took:.2f} s")


def test_server_errors_and_429s_back_off_and_honour_retry_after(api, tmp_path):
    """For 4 s Services get 500, EndpointSlices 429 with Retry-After: 2 and Namespaces 503 with
    Retry-After: 1, after every connection was reset: each reflector waits at least its backoff or the
    Retry-After between attempts; kdns stays ready on its last good zone while /metrics says the API is
    down and counts the failures; then it converges."""
    churn = Churn(api, seed=3)
    churn.populate()
    floors = {"Service": 0.0, "EndpointSlice": 2.0, "Namespace": 1.0}
    with following(api, tmp_path) as (server, probe):
        start = time.monotonic()
        api.fail(500, 10**6, kind="Service")
        api.fail(429, 10**6, retry_after=2, kind="EndpointSlice")
        api.fail(503, 10**6, retry_after=1, kind="Namespace")
        api.reset_connections()
        with churn:
            time.sleep(4)
            api.clear_failures()
        end = time.monotonic()
        took = converge(server, api, tmp_path, probe)
        metrics = scrape(probe.metrics_url)
        counted = {}
        for kind, floor in floors.items():
            times = in_window(api.request_times(kind, "watch"), start, end)
            assert 2 <= len(times) <= most_attempts(end - start, floor=floor), (kind, len(times))
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert min(gaps) >= max(BACKOFF_FIRST, floor) - 0.05, (kind, gaps)  # no hot loop
            bound = most_attempts(end - start, floor=floor)
            counted[kind] = f"{len(times)} requests (bound {bound}), gaps >= {min(gaps):.2f} s"
        assert metric(metrics, "kdns_kubernetes_requests_total", kind="Service", code="500") >= 2
        assert metric(metrics, "kdns_kubernetes_requests_total", kind="EndpointSlice", code="429") >= 2
        requests_agree(api, metrics)
        during = list(probe.between(start + 0.5, end))
        assert during and all(metric(m, "kdns_kubernetes_api_up") == 0 for m in during)
        assert all(metric(m, "kdns_kubernetes_synced") == 1 for m in during)
        assert metric(metrics, "kdns_kubernetes_api_up") == 1
        assert probe.ready_between(start, time.monotonic()) == {200}  # the last good zone, as CoreDNS
        assert len(server.logged("Kubernetes API unavailable")) == 1
        assert len(server.logged("Kubernetes API available again")) == 1
    assert churn.total > 80
    print(f"{end - start:.1f} s outage: {counted}; changes: {dict(churn.changes)}, converged in {took:.2f} s")


def test_slow_lists_and_an_expired_continue_token_before_the_first_sync(api, tmp_path):
    """Lists of two slow pages, and a compaction while the first page is on its way: the continue
    token expires (410) and kdns lists again in one page, as client-go does. Until that list is in
    the zone /ready says 503 and kdns_kubernetes_synced 0; the moment /ready says 200, every Service
    answers."""
    api.create(namespace("bulk"))
    api.load(service(f"bulk-{i:03d}", "bulk", ip=f"10.97.{i // 250}.{i % 250 + 1}") for i in range(520))
    churn = Churn(api, seed=4)
    churn.populate()
    api.list_delay = 0.6
    with following(api, tmp_path, "--startup-timeout", "0.2") as (server, probe):
        assert server.logged("starting unsynced after 0.2 s")
        start = time.monotonic()
        eventually(lambda: api.statuses("Service")[200] >= 1, timeout=5, interval=0.01)  # page 1 read
        api.create(service("late", "bulk", ip="10.97.9.9"))
        api.compact()  # the first page, already read, now holds a token to history that is gone
        with churn:
            status = eventually(lambda: get(probe.ready_url)[0] == 200 or None, timeout=20, interval=0.02)
            for name in ("late", "bulk-000", "bulk-519"):  # synced means all of it
                assert served(server.port, f"{name}.bulk.svc.cluster.local.", "A")
        assert status
        synced_after = time.monotonic() - start
        api.list_delay = 0.0
        took = converge(server, api, tmp_path, probe)
        service_lists = [
            r.query for r in api.requests if r.path == "/api/v1/services" and "watch" not in r.query
        ]
        assert any("continue" in q for q in service_lists)  # the second page was asked for ...
        assert api.statuses("Service")[410] == 1  # ... and had expired
        assert "limit" not in service_lists[-1] and "continue" not in service_lists[-1]  # then one page
        assert server.logged("services: the list's continue token expired; listing again in one page")
        unsynced = [s for t, s in probe.ready if s == 503]
        assert unsynced and probe.ready[0][1] == 503
        first_ready = next(t for t, s in probe.ready if s == 200)
        assert all(s == 200 for t, s in probe.ready if t >= first_ready)
        synced = [(t, metric(m, "kdns_kubernetes_synced")) for t, m in probe.metrics]
        assert synced[0][1] == 0 and synced[-1][1] == 1
        assert not server.logged("Kubernetes API unavailable")  # an expired token is no outage
        requests_agree(api, scrape(probe.metrics_url))
    print(f"ready {synced_after:.2f} s after the first page; changes: {dict(churn.changes)}, ", end="")
    print(f"converged in {took:.2f} s")


def test_silent_watches_are_restarted_and_caught_up(api, tmp_path):
    """Watches that go silent (no event, no bookmark) for 3 s while the cluster changes: each is
    restarted after --watch-idle-timeout (1 s), no faster; kdns_kubernetes_last_sync_timestamp_seconds
    stops moving, so the staleness shows; when the API speaks again the zone catches up."""
    churn = Churn(api, seed=5)
    churn.populate()
    with following(api, tmp_path) as (server, probe):
        api.hang_watches(True)
        start = time.monotonic()
        with churn:
            time.sleep(3)
            stale, stale_at = scrape(probe.metrics_url), time.time()
            api.hang_watches(False)
        end = time.monotonic()
        took = converge(server, api, tmp_path, probe)
        metrics = scrape(probe.metrics_url)
        now, counted = time.time(), {}
        for kind in KINDS:
            watches = in_window(api.request_times(kind, "watch"), start, end)
            assert 2 <= len(watches) <= (end - start) / 1.0 + 1, (kind, len(watches))
            counted[kind] = f"{len(watches)} watches (bound {(end - start) / 1.0 + 1:.1f})"
            assert metric(metrics, "kdns_kubernetes_watch_ends_total", kind=kind, reason="silent") >= 2
            assert stale_at - metric(stale, "kdns_kubernetes_last_sync_timestamp_seconds", kind=kind) > 2
            assert now - metric(metrics, "kdns_kubernetes_last_sync_timestamp_seconds", kind=kind) < 1.0
            assert metric(metrics, "kdns_kubernetes_watch_open", kind=kind) == 1
        assert server.logged("services: watch went silent")
        assert probe.ready_between(start, time.monotonic()) == {200}
        assert not server.logged("Kubernetes API unavailable")
    assert churn.total > 60
    print(f"{end - start:.1f} s silent: {counted}; changes: {dict(churn.changes)}, converged in {took:.2f} s")


# -- the reflector alone: regressions found by the scenarios ---------------------------------------------
class Recorder:
    """A sink that keeps what a reflector hands over."""

    def __init__(self) -> None:
        self.replaced: list[tuple[str, list[ClusterObject]]] = []
        self.events: list[Event] = []

    def replace(self, kind: str, objects: list[ClusterObject]) -> None:
        self.replaced.append((kind, objects))

    def event(self, event: Event) -> None:
        self.events.append(event)


@contextmanager
def reflecting(reflector: Reflector) -> Iterator[Reflector]:
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), name="reflector", daemon=True)
    thread.start()
    try:
        yield reflector
    finally:
        stop.set()
        thread.join(10)


def test_an_expired_continue_token_lists_again_in_one_page(api, tmp_path):
    """A compaction between two pages expires the continue token: the reflector lists again without
    pages (client-go's pager does the same); no outage, no backoff."""
    api.load(service(f"s{i}", ip=f"10.96.5.{i + 1}") for i in range(5))
    client = Connection(kubeconfig=api.write_kubeconfig(tmp_path / "kubeconfig")).client()

    def compacting_after_the_first_page(client):
        method = SERVICES.method(client)

        def call(**params):
            response = method(**params)
            if "limit" in params and "_continue" not in params:
                api.create(service("late", ip="10.96.5.99"))
                api.compact()
            return response

        return call

    health, sink = ApiHealth(), Recorder()
    reflector = Reflector(
        client,
        dataclasses.replace(SERVICES, method=compacting_after_the_first_page),
        sink,
        health=health,
        settings=WatchSettings(page_size=2),
    )
    assert reflector.list_once() == str(api.resource_version)
    assert sorted(obj.name for obj in sink.replaced[0][1]) == ["late", "s0", "s1", "s2", "s3", "s4"]
    assert reflector.requests == {("list", "200"): 2, ("list", "410"): 1}
    assert "limit" not in api.requests[-1].query and not health.down
    client.close()


def test_a_watch_that_worked_resumes_at_once_after_every_drop(api, tmp_path):
    """Streams that carried bookmarks and then broke, four times in two seconds: each resumes at once
    from its version (client-go backs off only a watch that ends as soon as it begins)."""
    client = Connection(kubeconfig=api.write_kubeconfig(tmp_path / "kubeconfig")).client()
    reflector = Reflector(client, SERVICES, Recorder(), health=ApiHealth())
    with reflecting(reflector):
        eventually(lambda: api.open_watches == 1, timeout=5)
        for n in range(4):
            time.sleep(0.3)  # bookmarks every 0.1 s: the stream works
            dropped = time.monotonic()
            api.reset_connections()
            eventually(lambda n=n: api.watch_count("Service") == n + 2, timeout=5, interval=0.01)
            assert api.request_times("Service", "watch")[-1] - dropped < 0.5
    assert reflector.watch_ends["dropped"] == 4 and api.list_count("Service") == 1
    assert {r.query.get("resourceVersion", "") for r in api.requests if r.query.get("watch")} != {""}
    client.close()


def test_a_410_status_on_a_watch_relists_without_an_outage(api, tmp_path, caplog):
    """410 Gone as an HTTP status (not an ERROR event) is an expired version too: relist at once, no
    outage logged."""
    client = Connection(kubeconfig=api.write_kubeconfig(tmp_path / "kubeconfig")).client()
    api.fail(410, 1, kind="Service", verb="watch")
    health = ApiHealth()
    reflector = Reflector(client, SERVICES, Recorder(), health=health)
    with caplog.at_level(logging.INFO, logger="kdns.sources.reflector"), reflecting(reflector):
        eventually(lambda: api.open_watches == 1, timeout=5)
        assert api.list_count("Service") == 2
        times = api.request_times("Service")
        assert times[1] - times[0] < 0.5  # at once, not after a backoff
    assert reflector.watch_ends["expired"] == 1 and reflector.requests[("watch", "410")] == 1
    assert not any("unavailable" in r.getMessage() for r in caplog.records)
    client.close()
