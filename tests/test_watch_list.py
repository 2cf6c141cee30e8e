"""The initial state as a watch list (KEP-3157) where the API server serves it, a paged LIST where it
refuses: the reflector against the fake API server in both modes and through its faults, and
``kdns serve`` against real kube-apiservers with the WatchList feature on (v1.37's default) and off."""

from __future__ import annotations

import itertools
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubernetes import client, config

from kdns.cluster.model import ClusterObject, Event, EventType
from kdns.sources.kube import SERVICE_IMPORTS, SERVICES, Connection
from kdns.sources.reflector import ApiHealth, Reflector, WatchSettings
from tests.kube_fake import KubeFake
from tests.support.client import ask
from tests.support.control_plane import control_plane
from tests.support.metrics import endpoint, metric, scrape
from tests.support.objects import service
from tests.support.polling import eventually
from tests.support.process import running


class Recorder:
    """A sink that keeps what a reflector hands over."""

    def __init__(self) -> None:
        self.replaced: list[list[ClusterObject]] = []
        self.events: list[Event] = []

    def replace(self, kind: str, objects: list[ClusterObject]) -> None:
        self.replaced.append(objects)

    def event(self, event: Event) -> None:
        self.events.append(event)

    def names(self, n: int = -1) -> list[str]:
        return sorted(obj.name for obj in self.replaced[n])


@contextmanager
def reflecting(fake: KubeFake, directory: Path, **options) -> Iterator[tuple[Reflector, Recorder]]:
    """A reflector of Services following ``fake`` on a thread, stopped when the block ends."""
    api = Connection(kubeconfig=fake.write_kubeconfig(directory / "kubeconfig")).client()
    sink = Recorder()
    reflector = Reflector(api, options.pop("resource", SERVICES), sink, health=ApiHealth(), **options)
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), name="reflector", daemon=True)
    thread.start()
    try:
        yield reflector, sink
    finally:
        stop.set()
        thread.join(10)
        api.close()


def populated(fake: KubeFake, count: int = 5) -> KubeFake:
    fake.load(service(f"s{i}", ip=f"10.96.5.{i + 1}") for i in range(count))
    return fake


# -- the reflector against the fake ------------------------------------------------------------------------
def test_the_initial_state_streams_as_one_replacement_then_the_same_watch_goes_on(tmp_path):
    with (
        KubeFake(watch_list=True, bookmark_interval=0.1) as fake,
        reflecting(populated(fake), tmp_path) as (
            reflector,
            sink,
        ),
    ):
        eventually(lambda: sink.replaced, timeout=10)
        fake.create(service("late", ip="10.96.6.1"))
        eventually(lambda: sink.events, timeout=5)
        assert sink.names() == ["s0", "s1", "s2", "s3", "s4"] and len(sink.replaced) == 1
        assert [(e.type, e.object.name) for e in sink.events] == [(EventType.ADDED, "late")]
        assert reflector.requests == {("watchlist", "200"): 1}  # no LIST, and no second request
        assert fake.count("Service", "list") == fake.count("Service", "watch") == 0
        assert reflector.resource_version == str(fake.resource_version)


def test_a_server_that_refuses_the_watch_list_gets_a_paged_list_each_time(tmp_path, caplog):
    """422 Invalid, as a server whose WatchList feature is off: a paged LIST and a watch from its
    version; after a 410 the watch list is asked for again (client-go does the same), said once."""
    with (
        caplog.at_level(logging.DEBUG, logger="kdns.sources.reflector"),
        KubeFake(bookmark_interval=0.1) as fake,
        reflecting(populated(fake), tmp_path, settings=WatchSettings(page_size=2)) as (reflector, sink),
    ):
        eventually(lambda: fake.open_watches == 1, timeout=10)
        assert sink.names() == ["s0", "s1", "s2", "s3", "s4"]
        assert reflector.requests == {("watchlist", "422"): 1, ("list", "200"): 3, ("watch", "200"): 1}
        fake.expire_watches(True)
        fake.close_watches()
        eventually(lambda: len(sink.replaced) == 2, timeout=10)
        fake.expire_watches(False)
        assert reflector.requests[("watchlist", "422")] == 2
    said = [r for r in caplog.records if "no watch list" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO, logging.DEBUG]
    assert "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled" in (
        said[0].getMessage()
    )


def test_objects_deleted_while_nobody_watched_vanish_with_the_next_watch_list(tmp_path):
    with (
        KubeFake(watch_list=True, bookmark_interval=0.1) as fake,
        reflecting(populated(fake), tmp_path) as (
            reflector,
            sink,
        ),
    ):
        eventually(lambda: fake.open_watches == 1, timeout=10)
        fake.stop()
        fake.delete("Service", "default", "s1")
        fake.create(service("new", ip="10.96.6.2"))
        fake.compact()  # the version the reflector holds is gone: 410, then a watch list again
        fake.start()
        eventually(lambda: len(sink.replaced) == 2, timeout=15)
        assert sink.names() == ["new", "s0", "s2", "s3", "s4"]
        assert not sink.events  # the gap came as one replacement, not as events
        assert reflector.requests[("watchlist", "200")] == 2 and reflector.watch_ends["expired"] == 1


def test_a_watch_list_cut_before_its_end_hands_nothing_over_and_starts_again(tmp_path):
    """Reset while the first half of the initial events is out and the rest 0.5 s away: nothing of the
    broken stream reaches the sink; the next watch list, at once, hands over the whole state once."""
    fake = KubeFake(watch_list=True, bookmark_interval=0.1, list_delay=0.5)
    with fake, reflecting(populated(fake, 40), tmp_path) as (reflector, sink):
        eventually(lambda: fake.statuses("Service", "watchlist")[200] == 1, timeout=10, interval=0.01)
        time.sleep(0.2)
        fake.reset_connections()
        cut = time.monotonic()
        eventually(lambda: sink.replaced, timeout=10)
        times = fake.request_times("Service", "watchlist")
        assert len(times) == 2 and times[1] - cut < 0.5  # again at once: one broken request is no outage
        assert len(sink.replaced) == 1 and len(sink.replaced[0]) == 40
        assert reflector.watch_ends["dropped"] == 1 and not reflector.health.down


def test_a_429_on_the_watch_list_waits_its_retry_after(tmp_path):
    with KubeFake(watch_list=True, bookmark_interval=0.1) as fake:
        fake.fail(429, 2, retry_after=1, kind="Service", verb="watchlist")
        with reflecting(populated(fake), tmp_path) as (reflector, sink):
            eventually(lambda: sink.replaced, timeout=15)
            times = fake.request_times("Service", "watchlist")
            assert len(times) == 3
            assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))  # Retry-After: 1
            assert reflector.requests == {("watchlist", "429"): 2, ("watchlist", "200"): 1}
            assert not fake.count("Service", "list")  # a 429 is no refusal: no fallback to LIST


def test_a_custom_resource_is_listed_without_asking_for_a_watch_list(tmp_path):
    """The client's custom objects call cannot send sendInitialEvents: ServiceImports are listed."""
    fake = KubeFake(watch_list=True, bookmark_interval=0.1)
    with fake, reflecting(fake, tmp_path, resource=SERVICE_IMPORTS) as (reflector, sink):
        eventually(lambda: fake.open_watches == 1, timeout=10)
        assert sink.replaced == [[]]
        assert reflector.requests == {("list", "200"): 1, ("watch", "200"): 1}


# -- kdns against real API servers ------------------------------------------------------------------------
SERVICE_COUNT = 30


@pytest.mark.slow
@pytest.mark.parametrize("watch_list", [True, False], ids=["watch-list-on", "watch-list-off"])
def test_kdns_gets_its_state_from_a_real_api_server_with_and_without_watch_list(watch_list):
    """v1.37 serves the watch list by default: kdns streams every kind's state, no LIST sent. With the
    WatchList feature gate off the server refuses it (422) and kdns lists in pages. Either way kdns
    gets ready and answers every Service, and goes on following changes."""
    args = [] if watch_list else ["--feature-gates=WatchList=false"]
    with (
        tempfile.TemporaryDirectory(prefix="kdns-watch-list-") as directory,
        control_plane(Path(directory), controller_manager=False, apiserver_args=args) as plane,
    ):
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(plane.kubeconfig)))
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="many")))
        made = {}
        for i in range(SERVICE_COUNT):
            body = client.V1Service(
                metadata=client.V1ObjectMeta(name=f"svc-{i}"),
                spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
            )
            made[f"svc-{i}"] = api.create_namespaced_service("many", body).spec.cluster_ip
        started = time.monotonic()
        with running("--kubeconfig", str(plane.kubeconfig), "--metrics", "127.0.0.1:0") as server:
            ready = time.monotonic() - started
            for name, ip in made.items():
                reply = ask(server.port, f"{name}.many.svc.cluster.local.")
                assert [item.address for rrset in reply.answer for item in rrset] == [ip]
            late = api.create_namespaced_service(
                "many",
                client.V1Service(
                    metadata=client.V1ObjectMeta(name="late"),
                    spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
                ),
            ).spec.cluster_ip

            def late_answered() -> bool:
                reply = ask(server.port, "late.many.svc.cluster.local.")
                return [item.address for rrset in reply.answer for item in rrset] == [late]

            eventually(late_answered, timeout=15)
            metrics = scrape(endpoint(server, "metrics") + "/metrics")
        for kind in ("Namespace", "Service", "EndpointSlice"):
            streamed = metric(
                metrics, "kdns_kubernetes_requests_total", kind=kind, verb="watchlist", code="200"
            )
            refused = metric(
                metrics, "kdns_kubernetes_requests_total", kind=kind, verb="watchlist", code="422"
            )
            listed = metric(metrics, "kdns_kubernetes_requests_total", kind=kind, verb="list", code="200")
            watched = metric(metrics, "kdns_kubernetes_requests_total", kind=kind, verb="watch")
            if watch_list:
                assert (streamed, refused, listed, watched) == (1, 0, 0, 0), kind
            else:
                assert (streamed, refused, listed, watched) == (0, 1, 1, 1), kind
            assert metric(metrics, "kdns_kubernetes_lists_total", kind=kind) == 1
        assert bool(server.logged("no watch list (HTTP 422")) is not watch_list
    print(f"{'watch list' if watch_list else 'paged LIST'}: ready {ready:.2f} s after start")
