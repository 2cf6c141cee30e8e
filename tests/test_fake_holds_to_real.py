"""The fake API server held to a real one: one list/watch conversation, over raw HTTP, played against
``tests/kube_fake.py`` and against a real kube-apiserver, must get answers of the same shape: status
codes, list metadata and pagination, event types, bookmarks, and the Status objects of refusals and of
expired versions. Messages are compared where kdns shows them to a person (the reasons it logs).

The real API server keeps Services out of its watch cache (``--watch-cache-sizes=services#0``), so a
compaction of etcd expires their versions and continue tokens at once, as ``KubeFake.compact`` does;
EndpointSlices go through the watch cache, as every kind does by default. Both servers run with and
without the watch list (the WatchList feature gate; the fake's ``watch_list``)."""

from __future__ import annotations

import itertools
import json
import ssl
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.kube_fake import KubeFake
from tests.support.control_plane import control_plane
from tests.support.objects import endpoint_slice, namespace, service

pytestmark = pytest.mark.slow

NS = "conv"
SERVICES = f"/api/v1/namespaces/{NS}/services"
SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"
WATCH_LIST = {"watch": "true", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
READ_TIMEOUT = 15.0  # no watch here stays silent this long: it ends (timeoutSeconds) or sends


@dataclass
class Side:
    """One API server as the conversation sees it: raw HTTP reads, and how to write and compact."""

    url: str
    context: ssl.SSLContext | None
    create: Callable[[dict], dict]
    delete: Callable[[str, str], None]  # (collection path, name)
    compact: Callable[[int], None]  # everything up to this resourceVersion

    def get(self, path: str, **query: str) -> tuple[int, str, Any]:
        """Status, content type and body (JSON when it is JSON) of one GET."""
        try:
            with self._open(path, query) as reply:
                return reply.status, reply.headers.get("Content-Type", ""), _body(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), _body(error.read())

    def watch(self, path: str, until: Callable[[dict], bool] | None = None, **query: str) -> list[dict]:
        """The events of one watch, until ``until`` holds for one (then hang up) or the stream ends."""
        events = []
        with self._open(path, {"watch": "true"} | query) as reply:
            assert reply.status == 200
            assert reply.headers.get("Transfer-Encoding") == "chunked"
            for line in reply:
                if line.strip():
                    events.append(json.loads(line))
                    if until is not None and until(events[-1]):
                        break
        return events

    def _open(self, path: str, query: dict[str, str]) -> Any:
        url = f"{self.url}{path}" + (f"?{urlencode(query)}" if query else "")
        return urllib.request.urlopen(url, timeout=READ_TIMEOUT, context=self.context)


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode()


def _typed(obj: dict, api_version: str) -> dict:
    return {"apiVersion": api_version} | obj


# -- the two sides ----------------------------------------------------------------------------------------
@contextmanager
def fake_side(watch_list: bool) -> Iterator[Side]:
    with KubeFake(bookmark_interval=1.0, watch_list=watch_list) as fake:
        fake.uninstall("ServiceImport")  # as in a cluster without the multicluster CRD

        def delete(path: str, name: str) -> None:
            fake.delete("Service" if path == SERVICES else "EndpointSlice", NS, name)

        yield Side(fake.url, None, fake.apply, delete, fake.compact)


@contextmanager
def real_side(watch_list: bool) -> Iterator[Side]:
    args = ["--watch-cache-sizes=services#0"] + ([] if watch_list else ["--feature-gates=WatchList=false"])
    with (
        tempfile.TemporaryDirectory(prefix="kdns-real-") as directory,
        control_plane(Path(directory), controller_manager=False, apiserver_args=args) as plane,
    ):
        context = ssl.create_default_context(cafile=str(plane.ca_file))
        context.load_cert_chain(str(Path(directory) / "admin.crt"), str(Path(directory) / "admin.key"))

        def send(method: str, path: str, body: dict | None = None) -> dict:
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(
                plane.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10, context=context) as reply:
                return json.loads(reply.read())

        def create(obj: dict) -> dict:
            kind = obj["kind"]
            if kind == "Namespace":
                return send("POST", "/api/v1/namespaces", _typed(obj, "v1"))
            if kind == "Service":
                return send("POST", SERVICES, _typed(obj, "v1"))
            return send("POST", SLICES, _typed(obj, "discovery.k8s.io/v1"))

        def compact(rv: int) -> None:
            body = json.dumps({"revision": str(rv), "physical": True}).encode()
            urllib.request.urlopen(urllib.request.Request(f"{plane.etcd_url}/v3/kv/compaction", data=body))

        yield Side(plane.url, context, create, lambda path, name: send("DELETE", f"{path}/{name}"), compact)


# -- shapes -----------------------------------------------------------------------------------------------
def status_shape(body: Any) -> dict:
    """What a client reads from a Status: everything but the wording of ``message`` (and tokens)."""
    if not isinstance(body, dict):
        return {"text": body}
    details = body.get("details")
    return {
        "keys": sorted(body),
        "kind": body.get("kind"),
        "apiVersion": body.get("apiVersion"),
        "status": body.get("status"),
        "reason": body.get("reason"),
        "code": body.get("code"),
        "metadata": sorted(body.get("metadata") or {}),
        "details": None if details is None else sorted(details),
    }


def invalid_shape(body: dict) -> dict:
    """A ``422 Invalid``: its Status, what it says (kdns logs it) and its causes."""
    details = body["details"]
    return status_shape(body) | {
        "message": body["message"],
        "group": details.get("group"),
        "for": details.get("kind"),
        "causes": details.get("causes"),
    }


def list_shape(reply: tuple[int, str, Any]) -> dict:
    code, content_type, body = reply
    metadata = body["metadata"]
    return {
        "code": code,
        "content_type": content_type,
        "keys": sorted(body),
        "kind": body["kind"],
        "apiVersion": body["apiVersion"],
        "metadata": sorted(metadata),
        "remainingItemCount": metadata.get("remainingItemCount"),
        "items": [item["metadata"]["name"] for item in body["items"]],
        "items_typed": {"kind" in item or "apiVersion" in item for item in body["items"]},
    }


def bookmark_shape(event: dict) -> dict:
    obj = event["object"]
    return {
        "type": event["type"],
        "kind": obj["kind"],
        "apiVersion": obj["apiVersion"],
        "keys": sorted(obj),
        "metadata": sorted(obj["metadata"]),
        "annotations": obj["metadata"].get("annotations"),
        "rest": {k: v for k, v in obj.items() if k not in ("kind", "apiVersion", "metadata")},
    }


def pages(side: Side, path: str, limit: int = 2, **query: str) -> list[tuple[int, str, Any]]:
    """Every page of a list of ``limit`` items a page, following its continue tokens."""
    replies = [side.get(path, limit=str(limit), **query)]
    while token := replies[-1][2]["metadata"].get("continue"):
        replies.append(side.get(path, limit=str(limit), **query, **{"continue": token}))
        assert len(replies) < 10
    return replies


def rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


def is_end(event: dict) -> bool:
    return event["type"] == "BOOKMARK" and bool(event["object"]["metadata"].get("annotations"))


# -- the conversation -------------------------------------------------------------------------------------
def conversation(side: Side, watch_list: bool) -> dict[str, Any]:
    """The same requests, in the same order, to one side; what came back, as shapes."""
    said: dict[str, Any] = {}
    side.create(namespace(NS))
    slices = []
    for i in range(5):
        body = service(f"s{i}", NS, ip=None, ports=[("http", 80, "TCP")])
        body["metadata"]["labels"] = {"app": "web" if i < 3 else "db"}
        side.create(body)
        slices.append(side.create(endpoint_slice(f"s{i}-a", f"s{i}", NS, addresses=[f"10.1.0.{i + 1}"])))

    # pagination: three pages pinned to one resourceVersion; with a selector, no remaining count
    listed = pages(side, SERVICES)
    said["pages"] = [list_shape(reply) for reply in listed]
    versions = {reply[2]["metadata"]["resourceVersion"] for reply in listed}
    said["pages_share_a_version"] = len(versions) == 1
    said["selected_pages"] = [list_shape(reply) for reply in pages(side, SERVICES, labelSelector="app=web")]
    said["cached_pages"] = [list_shape(reply) for reply in pages(side, SLICES)]
    for what, path in (("services", SERVICES), ("slices", SLICES)):  # pages that end with the last item
        said[f"whole_pages_{what}"] = [list_shape(reply) for reply in pages(side, path, limit=5)]
    list_rv = int(versions.pop())

    # the watch list, or its refusal; then it goes on as a watch
    for what, path in (("services", SERVICES), ("slices", SLICES)):
        query = WATCH_LIST | {"allowWatchBookmarks": "true", "timeoutSeconds": "30"}
        if not watch_list:
            code, content_type, body = side.get(path, **query)
            said[f"watch_list_{what}"] = (code, content_type, invalid_shape(body))
            continue
        events = side.watch(path, is_end, **query)
        end = events[-1]
        said[f"watch_list_{what}"] = {
            "types": [e["type"] for e in events],
            "added": [e["object"]["metadata"]["name"] for e in events[:-1]],
            "end": bookmark_shape(end),
            "end_not_older_than_the_list": rv(end["object"]) >= list_rv,
        }
    if watch_list:  # from a version long compacted away: NotOlderThan, so no 410
        events = side.watch(SERVICES, is_end, resourceVersion="1", **WATCH_LIST, allowWatchBookmarks="true")
        said["watch_list_from_an_old_version"] = [e["type"] for e in events]

    # a watch from the list's version sees the changes since, in order, and ends at its timeout
    side.create(service("late", NS, ip=None, ports=[("http", 80, "TCP")]))
    side.delete(SERVICES, "s4")
    events = side.watch(SERVICES, resourceVersion=str(list_rv), timeoutSeconds="2")
    changes = [e for e in events if e["type"] != "BOOKMARK"]
    said["watch"] = [(e["type"], e["object"]["metadata"]["name"], e["object"]["kind"]) for e in changes]
    said["watch_versions_rise"] = all(
        rv(a["object"]) < rv(b["object"]) for a, b in itertools.pairwise(changes)
    )
    # options the server refuses
    for what, query in (
        ("initial_events_without_match", {"watch": "true", "sendInitialEvents": "true"}),
        ("match_without_initial_events", {"watch": "true", "resourceVersionMatch": "NotOlderThan"}),
        ("initial_events_on_a_list", {"sendInitialEvents": "true"}),
    ):
        code, content_type, body = side.get(SERVICES, **query)
        said[what] = (code, content_type, invalid_shape(body))
    for what, path, query in (
        ("bad_selector", SERVICES, {"labelSelector": "a===b"}),
        ("bad_limit", SERVICES, {"limit": "many"}),
        ("bad_watch_version", SERVICES, {"watch": "true", "resourceVersion": "abc"}),
        ("unknown_resource", "/api/v1/nothings", {}),
        ("missing_custom_resource", "/apis/multicluster.x-k8s.io/v1alpha1/serviceimports", {}),
        ("missing_object", f"{SERVICES}/nothing", {}),
    ):
        code, content_type, body = side.get(path, **query)
        said[what] = (code, content_type, status_shape(body))

    # compaction: a continue token and a watch version from before it are 410 Expired
    code, _, first = side.get(SERVICES, limit="1")
    token, old = first["metadata"]["continue"], first["metadata"]["resourceVersion"]
    made = side.create(service("later", NS, ip=None, ports=[("http", 80, "TCP")]))
    side.compact(rv(made))
    code, content_type, body = side.get(SERVICES, limit="1", **{"continue": token})
    said["expired_continue"] = (code, content_type, status_shape(body))
    events = side.watch(SERVICES, resourceVersion=old, allowWatchBookmarks="true", timeoutSeconds="10")
    said["expired_watch"] = [(e["type"], status_shape(e["object"])) for e in events]
    return said


@pytest.mark.parametrize("watch_list", [True, False], ids=["watch-list", "no-watch-list"])
def test_the_fake_answers_a_list_watch_conversation_as_a_real_api_server(watch_list):
    with fake_side(watch_list) as side:
        fake = conversation(side, watch_list)
    with real_side(watch_list) as side:
        real = conversation(side, watch_list)
    assert fake.keys() == real.keys()
    differences = {step: (fake[step], real[step]) for step in real if fake[step] != real[step]}
    assert not differences, "\n".join(
        f"{step}:\n  fake {json.dumps(ours, default=str)}\n  real {json.dumps(theirs, default=str)}"
        for step, (ours, theirs) in differences.items()
    )
    assert real["pages"][0]["remainingItemCount"] == 3  # the conversation saw what it meant to
    assert real["expired_continue"][0] == 410 and real["expired_watch"][0][0] == "ERROR"
