"""The fake API server, exercised through the official ``kubernetes`` client over real HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3

from tests import kube_fake
from tests.kube_fake import KubeFake, Selector
from tests.support.objects import endpoint_slice, namespace, service

kube_api = kube_fake.kube_api  # the fixture, as conftest.py may also provide it

WATCH_TIMEOUT = (2, 2)  # (connect, read) for every watch request, so a broken stream fails fast


@pytest.fixture
def api(kube_api: KubeFake, tmp_path: Path) -> Iterator[kubernetes.client.ApiClient]:
    kube_api.bookmark_interval = 0.1
    config = kube_api.write_kubeconfig(tmp_path / "kubeconfig")
    client = kubernetes.config.new_client_from_config(config_file=str(config), context="fake")
    yield client
    client.close()


@pytest.fixture
def core(api: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api)


def body(resp: urllib3.HTTPResponse) -> dict[str, Any]:
    return json.loads(resp.data)


def names(doc: dict[str, Any]) -> list[str]:
    return [f"{i['metadata'].get('namespace', '')}/{i['metadata']['name']}" for i in doc["items"]]


def events(resp: urllib3.HTTPResponse) -> Iterator[dict[str, Any]]:
    """Watch events from a ``_preload_content=False`` response, one JSON document per line."""
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)


def hang_up(resp: urllib3.HTTPResponse) -> None:
    """Abandon a half-read stream: close the connection (release_conn alone leaves the watch open)."""
    resp.close()
    resp.release_conn()


def take(stream: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return [next(stream) for _ in range(n)]


def summary(event: dict[str, Any]) -> tuple[str, str, str]:
    meta = event["object"]["metadata"]
    return event["type"], meta.get("name", ""), meta["resourceVersion"]


def labelled(name: str, ns: str = "default", **labels: str) -> dict[str, Any]:
    obj = service(name, ns)
    obj["metadata"]["labels"] = labels
    return obj


# -- control API ----------------------------------------------------------------------------------------
def test_writes_bump_one_global_resource_version_and_never_mutate_callers_dicts() -> None:
    fake = KubeFake()
    original = service("web", "shop")
    snapshot = json.dumps(original, sort_keys=True)
    start = fake.resource_version
    created = fake.create(original)
    assert json.dumps(original, sort_keys=True) == snapshot
    assert created["kind"] == "Service" and created["apiVersion"] == "v1"
    assert created["metadata"]["resourceVersion"] == str(start + 1)
    assert created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
    fake.create(namespace("shop"))
    assert fake.resource_version == start + 2
    with pytest.raises(ValueError, match="already exists"):
        fake.create(original)
    with pytest.raises(ValueError, match="modified"):
        fake.update(created | {"metadata": created["metadata"] | {"resourceVersion": "1"}})
    updated = fake.update(created | {"spec": {"clusterIP": "10.0.0.9"}})
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert fake.apply(service("other", "shop"))["metadata"]["resourceVersion"] == str(start + 4)
    got = fake.get("Service", "shop", "web")
    got["spec"]["clusterIP"] = "mutated"
    assert fake.get("services", "shop", "web")["spec"]["clusterIP"] == "10.0.0.9"
    assert [o["metadata"]["name"] for o in fake.objects("Service")] == ["other", "web"]
    gone = fake.delete("Service", "shop", "web")
    assert gone["metadata"]["resourceVersion"] == str(start + 5)
    assert fake.get("Service", "shop", "web") is None
    with pytest.raises(KeyError):
        fake.delete("Service", "shop", "web")
    with pytest.raises(KeyError):
        fake.update(service("missing"))


def test_label_selector_parsing() -> None:
    labels = {"app": "web", "tier": "front"}
    assert Selector("app=web,tier").matches(labels)
    assert Selector("app==web, !canary").matches(labels)
    assert Selector("app!=db,env!=prod").matches(labels)
    assert Selector("tier in (front, back),env notin (prod)").matches(labels)
    assert not Selector("app in (db)").matches(labels)
    assert not Selector("!app").matches(labels)
    assert not Selector("missing").matches(labels)
    with pytest.raises(ValueError):
        Selector("app=web,,")
    with pytest.raises(ValueError):
        Selector("app=(web)")


# -- HTTP: list -----------------------------------------------------------------------------------------
def test_version_404_and_kubeconfig_context(kube_api: KubeFake, api: kubernetes.client.ApiClient) -> None:
    version = kubernetes.client.VersionApi(api).get_code()
    assert (version.major, version.minor, version.git_version) == ("1", "31", "v1.31.0")
    assert api.configuration.host == kube_api.url
    with pytest.raises(kubernetes.client.ApiException) as error:
        kubernetes.client.CoreV1Api(api).read_namespaced_service("nope", "default", _preload_content=False)
    assert error.value.status == 404
    assert json.loads(error.value.body)["reason"] == "NotFound"
    raw = api.rest_client.pool_manager.request("GET", kube_api.url + "/api/v1/configmaps")
    assert raw.status == 404 and json.loads(raw.data)["kind"] == "Status"
    assert ("GET", "/api/v1/configmaps", {}) in kube_api.requests


def test_paginated_list_is_pinned_to_the_first_page(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    for i in range(5):
        kube_api.create(service(f"s{i}", "b" if i % 2 else "a"))
    first = body(core.list_service_for_all_namespaces(limit=2, _preload_content=False))
    rv = first["metadata"]["resourceVersion"]
    assert first["kind"] == "ServiceList" and first["apiVersion"] == "v1"
    assert names(first) == ["a/s0", "a/s2"]
    assert first["metadata"]["remainingItemCount"] == 3
    assert "kind" not in first["items"][0] and "apiVersion" not in first["items"][0]

    kube_api.delete("Service", "b", "s1")  # changes after the first page do not show in later pages
    kube_api.create(service("s9", "b"))
    kube_api.apply(service("s3", "b", ip="10.0.0.3"))

    token = first["metadata"]["continue"]
    second = body(core.list_service_for_all_namespaces(limit=2, _continue=token, _preload_content=False))
    third = body(
        core.list_service_for_all_namespaces(
            limit=2, _continue=second["metadata"]["continue"], _preload_content=False
        )
    )
    assert names(second) + names(third) == ["a/s4", "b/s1", "b/s3"]
    assert second["items"][1]["spec"]["clusterIP"] == "10.96.1.1"
    assert second["metadata"]["resourceVersion"] == third["metadata"]["resourceVersion"] == rv
    assert "continue" not in third["metadata"]

    fresh = body(core.list_service_for_all_namespaces(_preload_content=False))
    assert names(fresh) == ["a/s0", "a/s2", "a/s4", "b/s3", "b/s9"]
    assert int(fresh["metadata"]["resourceVersion"]) == kube_api.resource_version

    in_b = body(core.list_namespaced_service("b", limit=1, _preload_content=False))
    assert names(in_b) == ["b/s3"]
    typed = core.list_namespaced_service("b", limit=1, _continue=in_b["metadata"]["continue"])
    assert [s.metadata.name for s in typed.items] == ["s9"]
    assert typed.metadata._continue is None


def test_list_by_label_and_resource_version_zero_ignores_limit(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    kube_api.load([labelled("a", app="web"), labelled("b", app="db"), labelled("c", app="web", canary="1")])
    web = body(
        core.list_service_for_all_namespaces(label_selector="app=web", limit=1, _preload_content=False)
    )
    assert names(web) == ["default/a"]
    assert "remainingItemCount" not in web["metadata"]  # unknown with a selector, as on the real server
    rest = core.list_service_for_all_namespaces(
        label_selector="app=web", limit=1, _continue=web["metadata"]["continue"], _preload_content=False
    )
    assert names(body(rest)) == ["default/c"]
    stable = core.list_service_for_all_namespaces(label_selector="!canary", _preload_content=False)
    assert names(body(stable)) == ["default/a", "default/b"]
    everything = body(
        core.list_service_for_all_namespaces(limit=1, resource_version="0", _preload_content=False)
    )
    assert len(everything["items"]) == 3 and "continue" not in everything["metadata"]
    with pytest.raises(kubernetes.client.ApiException) as error:
        core.list_service_for_all_namespaces(label_selector="a=(", _preload_content=False)
    assert error.value.status == 400


def test_expired_continue_token_is_410(kube_api: KubeFake, core: kubernetes.client.CoreV1Api) -> None:
    kube_api.load(service(f"s{i}") for i in range(3))
    first = body(core.list_service_for_all_namespaces(limit=1, _preload_content=False))
    kube_api.create(service("late"))
    kube_api.compact()
    with pytest.raises(kubernetes.client.ApiException) as error:
        core.list_service_for_all_namespaces(
            limit=1, _continue=first["metadata"]["continue"], _preload_content=False
        )
    assert error.value.status == 410
    status = json.loads(error.value.body)
    assert (status["kind"], status["status"], status["reason"], status["code"]) == (
        "Status",
        "Failure",
        "Expired",
        410,
    )
    with pytest.raises(kubernetes.client.ApiException) as error:
        core.list_service_for_all_namespaces(limit=1, _continue="garbage!", _preload_content=False)
    assert error.value.status == 400


# -- HTTP: watch ----------------------------------------------------------------------------------------
def test_watch_replays_from_a_resource_version_then_streams_live(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    kube_api.create(service("a"))
    since = kube_api.resource_version
    kube_api.create(service("b"))
    kube_api.create(namespace("default"))  # another kind: not on this watch
    kube_api.apply(service("a", ip="10.0.0.1"))
    resp = core.list_service_for_all_namespaces(
        watch=True,
        resource_version=str(since),
        timeout_seconds=2,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    assert resp.status == 200 and resp.headers["Transfer-Encoding"] == "chunked"
    stream = events(resp)
    replay = take(stream, 2)
    assert [summary(e) for e in replay] == [("ADDED", "b", str(since + 1)), ("MODIFIED", "a", str(since + 3))]
    assert replay[0]["object"]["kind"] == "Service" and replay[0]["object"]["apiVersion"] == "v1"

    kube_api.delete("Service", "default", "b")
    kube_api.create(service("c", "other"))
    live = take(stream, 2)
    assert [summary(e) for e in live] == [("DELETED", "b", str(since + 4)), ("ADDED", "c", str(since + 5))]
    hang_up(resp)

    scoped = core.list_namespaced_service(
        "other", watch=True, resource_version=str(since), timeout_seconds=5, _preload_content=False
    )
    assert summary(next(events(scoped))) == ("ADDED", "c", str(since + 5))  # not a/b from "default"
    hang_up(scoped)


def test_watch_from_zero_starts_with_synthetic_added_events(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    kube_api.load([service("a"), service("b")])
    kube_api.compact()
    resp = core.list_service_for_all_namespaces(
        watch=True,
        resource_version="0",
        timeout_seconds=1,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    stream = events(resp)
    assert [e["type"] for e in take(stream, 2)] == ["ADDED", "ADDED"]
    kube_api.create(service("c"))
    assert summary(next(stream))[:2] == ("ADDED", "c")
    hang_up(resp)


@pytest.mark.slow
def test_bookmarks_and_timeout_seconds_end_the_stream_cleanly(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    kube_api.create(service("a"))
    rv = kube_api.resource_version
    plain = core.list_service_for_all_namespaces(
        watch=True, resource_version=str(rv), timeout_seconds=1, _preload_content=False
    )
    started = time.monotonic()
    resp = core.list_service_for_all_namespaces(
        watch=True,
        resource_version=str(rv),
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    seen = list(events(resp))  # ends after timeoutSeconds with the final zero-length chunk, no error
    assert 0.9 < time.monotonic() - started < 1.8
    assert len(seen) >= 5 and {e["type"] for e in seen} == {"BOOKMARK"}
    assert seen[0]["object"] == {  # an empty Service, as the server's bookmarks are
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(rv)},
        "spec": {},
        "status": {"loadBalancer": {}},
    }
    assert list(events(plain)) == []  # no bookmarks unless asked for
    assert kube_api.watch_count("Service") == 2


def test_too_old_resource_version_is_an_error_event_then_end(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    kube_api.create(service("a"))
    old = kube_api.resource_version
    kube_api.create(service("b"))
    kube_api.compact()
    resp = core.list_service_for_all_namespaces(
        watch=True,
        resource_version=str(old),
        timeout_seconds=5,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    assert resp.status == 200
    (event,) = list(events(resp))
    assert event["type"] == "ERROR"
    assert event["object"] == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too old resource version: {old} ({old + 1})",
        "reason": "Expired",
        "code": 410,
    }
    # The official watch helper turns it into ApiException(410) (no retry once timeout_seconds is set).
    watcher = kubernetes.watch.Watch()
    with pytest.raises(kubernetes.client.ApiException) as error:
        list(
            watcher.stream(core.list_service_for_all_namespaces, resource_version=str(old), timeout_seconds=1)
        )
    assert error.value.status == 410


def test_official_watch_helper_gets_typed_objects_and_bookmarks(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    start = kube_api.resource_version
    kube_api.create(namespace("shop"))
    watcher = kubernetes.watch.Watch()
    seen = []
    for event in watcher.stream(
        core.list_namespace, resource_version=str(start), allow_watch_bookmarks=True, timeout_seconds=1
    ):
        seen.append(event["type"])
        if event["type"] == "ADDED":
            assert isinstance(event["object"], kubernetes.client.V1Namespace)
            assert event["object"].metadata.name == "shop"
            kube_api.create(service("unrelated"))  # bumps the global resourceVersion the bookmark reports
        else:
            watcher.stop()
    assert seen == ["ADDED", "BOOKMARK"]
    assert watcher.resource_version == str(kube_api.resource_version)


def test_close_watches_ends_streams_cleanly_and_the_connection_is_reused(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    rv = kube_api.resource_version
    resp = core.list_service_for_all_namespaces(
        watch=True,
        resource_version=str(rv),
        timeout_seconds=30,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    threading.Timer(0.2, kube_api.close_watches).start()
    started = time.monotonic()
    assert list(events(resp)) == []
    assert time.monotonic() - started < 1.5
    resp.release_conn()
    assert body(core.list_service_for_all_namespaces(_preload_content=False))["items"] == []


def test_a_watch_the_client_abandons_ends_on_the_server(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    resp = core.list_service_for_all_namespaces(
        watch=True, resource_version=str(kube_api.resource_version), _preload_content=False
    )
    deadline = time.monotonic() + 2
    while kube_api.open_watches != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kube_api.open_watches == 1
    hang_up(resp)
    while kube_api.open_watches and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kube_api.open_watches == 0


def test_hung_watch_sends_nothing_until_released(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    rv = kube_api.resource_version
    kube_api.hang_watches(True)
    kube_api.create(service("a"))
    resp = core.list_service_for_all_namespaces(
        watch=True,
        resource_version=str(rv),
        allow_watch_bookmarks=True,
        timeout_seconds=5,
        _preload_content=False,
        _request_timeout=(1, 0.4),
    )
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        next(events(resp))
    hang_up(resp)

    resp = core.list_service_for_all_namespaces(
        watch=True,
        resource_version=str(rv),
        timeout_seconds=5,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    kube_api.compact()  # an open watch keeps its backlog, as the watch cache's per-watcher buffer does
    threading.Timer(0.3, kube_api.hang_watches, args=(False,)).start()
    assert summary(next(events(resp)))[:2] == ("ADDED", "a")
    hang_up(resp)


def test_label_selector_watch_adds_and_deletes_on_transitions(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    rv = kube_api.resource_version
    kube_api.create(labelled("x", app="db"))  # never matched: not sent
    kube_api.create(labelled("y", app="db"))  # starts matching: ADDED
    kube_api.update(labelled("y", app="web"))
    kube_api.update(labelled("y", app="web", v="2"))  # still matching: MODIFIED
    kube_api.update(labelled("y", app="db"))  # stops matching: DELETED with the old content
    kube_api.create(labelled("z", app="web"))
    kube_api.delete("Service", "default", "z")
    kube_api.delete("Service", "default", "x")
    kube_api.create(labelled("last", app="web"))  # a sentinel: nothing else comes before it
    resp = core.list_service_for_all_namespaces(
        watch=True,
        label_selector="app=web",
        resource_version=str(rv),
        timeout_seconds=5,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    seen = take(events(resp), 6)
    hang_up(resp)
    assert [summary(e) for e in seen] == [
        ("ADDED", "y", str(rv + 3)),
        ("MODIFIED", "y", str(rv + 4)),
        ("DELETED", "y", str(rv + 5)),
        ("ADDED", "z", str(rv + 6)),
        ("DELETED", "z", str(rv + 7)),
        ("ADDED", "last", str(rv + 9)),
    ]
    assert seen[2]["object"]["metadata"]["labels"] == {"app": "web", "v": "2"}


# -- HTTP: failures and outages -------------------------------------------------------------------------
def test_fail_429_with_retry_after(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api, tmp_path: Path
) -> None:
    # urllib3's default Retry(3) silently retries a 429/503 carrying Retry-After, sleeping that long.
    kube_api.fail(429, 1, retry_after=0)
    assert core.list_service_for_all_namespaces(_preload_content=False).status == 200
    assert kube_api.list_count("Service") == 2

    config = kubernetes.client.Configuration()
    config.retries = False  # what a client doing its own backoff sets
    client = kubernetes.config.new_client_from_config(
        str(kube_api.write_kubeconfig(tmp_path / "kubeconfig")), "fake", client_configuration=config
    )
    core = kubernetes.client.CoreV1Api(client)
    kube_api.reset_requests()
    kube_api.fail(429, 2, retry_after=3, kind="Service", verb="list")
    for _ in range(2):
        with pytest.raises(kubernetes.client.ApiException) as error:
            core.list_service_for_all_namespaces(_preload_content=False)
        assert error.value.status == 429 and error.value.headers["Retry-After"] == "3"
        status = json.loads(error.value.body)
        assert (status["reason"], status["details"]) == ("TooManyRequests", {"retryAfterSeconds": 3})
    assert core.list_service_for_all_namespaces(_preload_content=False).status == 200
    assert kube_api.list_count("Service") == 3
    assert kube_api.statuses("Service") == {429: 2, 200: 1}
    times = kube_api.request_times("Service")
    assert len(times) == 3 and times == sorted(times)

    kube_api.fail(503, 1, verb="watch")
    assert core.list_namespace(_preload_content=False).status == 200  # not a watch: unaffected
    with pytest.raises(kubernetes.client.ApiException) as error:
        core.list_namespace(watch=True, timeout_seconds=1, _preload_content=False)
    assert error.value.status == 503
    client.close()


def test_stop_and_start_on_the_same_port(kube_api: KubeFake, core: kubernetes.client.CoreV1Api) -> None:
    kube_api.create(service("a"))
    port = kube_api.port
    resp = core.list_service_for_all_namespaces(
        watch=True,
        resource_version=str(kube_api.resource_version),
        timeout_seconds=30,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    threading.Timer(0.2, kube_api.stop).start()
    with pytest.raises(urllib3.exceptions.ProtocolError):  # the stream breaks mid-response
        list(events(resp))
    hang_up(resp)
    time.sleep(0.1)
    assert not kube_api.running
    with pytest.raises(urllib3.exceptions.MaxRetryError):  # connection refused: urllib3's, not ApiException
        core.list_service_for_all_namespaces(_preload_content=False, _request_timeout=(0.5, 0.5))

    kube_api.start()
    assert kube_api.port == port
    assert names(body(core.list_service_for_all_namespaces(_preload_content=False))) == ["default/a"]


def test_reset_connections_cuts_lists_and_watches_mid_response(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    kube_api.load(service(f"s{i}") for i in range(20))
    watch = core.list_service_for_all_namespaces(
        watch=True,
        resource_version=str(kube_api.resource_version),
        timeout_seconds=30,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    kube_api.list_delay = 5.0
    slow = core.list_service_for_all_namespaces(_preload_content=False, _request_timeout=(2, 10))
    assert slow.status == 200  # headers and half the page arrived; the rest is 5 s away
    started = time.monotonic()
    threading.Timer(0.2, kube_api.reset_connections).start()
    with pytest.raises(urllib3.exceptions.ProtocolError, match="Connection reset by peer"):
        slow.read()
    with pytest.raises(urllib3.exceptions.ProtocolError, match="Connection reset by peer"):
        list(events(watch))
    assert time.monotonic() - started < 2  # cut at once, not after the delay or a read timeout
    hang_up(slow)
    hang_up(watch)

    kube_api.list_delay = 0.0  # the server itself keeps serving
    assert len(body(core.list_service_for_all_namespaces(_preload_content=False))["items"]) == 20
    assert kube_api.list_count("Service") == 2 and kube_api.watch_count("Service") == 1


def test_slow_list_pages_and_a_compaction_meanwhile_expire_the_continue_token(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    kube_api.load(service(f"s{i}") for i in range(3))
    listed_at = kube_api.resource_version
    kube_api.list_delay = 0.5
    pages: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: pages.append(
            body(core.list_service_for_all_namespaces(limit=2, _preload_content=False))
        )
    )
    started = time.monotonic()
    reader.start()
    deadline = time.monotonic() + 5
    while kube_api.list_count("Service") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    kube_api.create(service("late"))  # while the first page is on its way
    kube_api.compact()
    reader.join(5)
    assert time.monotonic() - started >= 0.5
    assert pages[0]["metadata"]["resourceVersion"] == str(listed_at)  # read before the wait
    assert names(pages[0]) == ["default/s0", "default/s1"]
    with pytest.raises(kubernetes.client.ApiException) as error:
        core.list_service_for_all_namespaces(
            limit=2, _continue=pages[0]["metadata"]["continue"], _preload_content=False
        )
    assert (error.value.status, json.loads(error.value.body)["reason"]) == (410, "Expired")


def test_expire_watches_is_a_410_storm_lists_still_work(
    kube_api: KubeFake, core: kubernetes.client.CoreV1Api
) -> None:
    kube_api.create(service("a"))
    kube_api.expire_watches(True)
    for _ in range(2):  # even from the version a list just returned
        rv = body(core.list_service_for_all_namespaces(_preload_content=False))["metadata"]["resourceVersion"]
        resp = core.list_service_for_all_namespaces(
            watch=True,
            resource_version=rv,
            timeout_seconds=5,
            _preload_content=False,
            _request_timeout=WATCH_TIMEOUT,
        )
        (event,) = list(events(resp))
        assert (event["type"], event["object"]["code"], event["object"]["reason"]) == (
            "ERROR",
            410,
            "Expired",
        )
    kube_api.expire_watches(False)
    resp = core.list_service_for_all_namespaces(
        watch=True,
        resource_version=rv,
        timeout_seconds=5,
        _preload_content=False,
        _request_timeout=WATCH_TIMEOUT,
    )
    kube_api.create(service("b"))
    assert summary(next(events(resp)))[:2] == ("ADDED", "b")
    hang_up(resp)


def test_bearer_token_is_checked_when_configured(tmp_path: Path) -> None:
    with KubeFake(token="s3cret") as fake:
        config = fake.write_kubeconfig(tmp_path / "kubeconfig")
        client = kubernetes.config.new_client_from_config(config_file=str(config), context="fake")
        assert kubernetes.client.CoreV1Api(client).list_namespace(_preload_content=False).status == 200
        raw = client.rest_client.pool_manager.request("GET", fake.url + "/api/v1/namespaces")
        assert raw.status == 401 and json.loads(raw.data)["reason"] == "Unauthorized"
        for header, status in (("bearer s3cret", 200), ("BEARER s3cret", 200), ("Bearer wrong", 401)):
            raw = client.rest_client.pool_manager.request(
                "GET", fake.url + "/api/v1/namespaces", headers={"Authorization": header}
            )
            assert raw.status == status, header  # the scheme in any case, as the API server takes it
        client.close()


# -- endpoint slices and bulk loading -------------------------------------------------------------------
def test_endpoint_slices_through_the_discovery_api(
    kube_api: KubeFake, api: kubernetes.client.ApiClient
) -> None:
    discovery = kubernetes.client.DiscoveryV1Api(api)
    rv = kube_api.resource_version
    kube_api.load(
        endpoint_slice(f"web-{i}", "web", "shop", addresses=[f"10.1.0.{i}"], ports=[("http", 80, "TCP")])
        for i in range(3)
    )
    page = body(discovery.list_endpoint_slice_for_all_namespaces(limit=2, _preload_content=False))
    assert page["kind"] == "EndpointSliceList" and page["apiVersion"] == "discovery.k8s.io/v1"
    assert names(page) == ["shop/web-0", "shop/web-1"]
    typed = discovery.list_namespaced_endpoint_slice(
        "shop", label_selector="kubernetes.io/service-name=web", limit=5
    )
    assert [s.endpoints[0].addresses for s in typed.items] == [["10.1.0.0"], ["10.1.0.1"], ["10.1.0.2"]]
    resp = discovery.list_endpoint_slice_for_all_namespaces(
        watch=True, resource_version=str(rv), timeout_seconds=5, _preload_content=False
    )
    seen = take(events(resp), 3)
    hang_up(resp)
    assert [e["type"] for e in seen] == ["ADDED"] * 3
    assert seen[0]["object"]["kind"] == "EndpointSlice"
    assert seen[0]["object"]["apiVersion"] == "discovery.k8s.io/v1"


@pytest.mark.slow
def test_bulk_load_and_500_item_pages_are_fast(kube_api: KubeFake, api: kubernetes.client.ApiClient) -> None:
    started = time.monotonic()
    kube_api.load(service(f"svc-{i:05d}", f"ns-{i % 50}", ports=[("http", 80, "TCP")]) for i in range(10_000))
    kube_api.load(
        endpoint_slice(
            f"svc-{i:05d}-1",
            f"svc-{i:05d}",
            f"ns-{i % 50}",
            addresses=[f"10.{i // 250}.{i % 250}.{k}" for k in range(7)],
            ports=[("http", 80, "TCP")],
        )
        for i in range(10_000)
    )
    loaded = time.monotonic()
    discovery = kubernetes.client.DiscoveryV1Api(api)
    total, token, pages = 0, None, 0
    while True:
        doc = body(
            discovery.list_endpoint_slice_for_all_namespaces(
                limit=500, _continue=token, _preload_content=False
            )
        )
        total += len(doc["items"])
        pages += 1
        token = doc["metadata"].get("continue")
        if not token:
            break
    listed = time.monotonic()
    assert (total, pages) == (10_000, 20)
    assert loaded - started < 5 and listed - loaded < 5
