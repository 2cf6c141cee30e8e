from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support import Server, endpoint_slice, namespace, running, service

CACHE_MEMBERS = 18  # their SRV answer fits 1232 bytes, their addresses too do not


@pytest.fixture(scope="session")
def example_server() -> Iterator[Server]:
    """``kdns serve`` on the embedded example cluster, shared by the read-only end-to-end tests."""
    with running() as server:
        yield server


@pytest.fixture(scope="session")
def big_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A snapshot with a headless Service of 200 endpoints and one whose SRV additions overflow."""
    members = [
        {
            "addresses": [f"10.9.{i // 250}.{i % 250 + 1}"],
            "hostname": f"member-{i:02d}",
            "conditions": {"ready": True},
        }
        for i in range(CACHE_MEMBERS)
    ]
    objects = [
        namespace("big"),
        service("wide", "big", ip="None", ports=[("http", 80, "TCP")]),
        endpoint_slice(
            "wide-1",
            "wide",
            "big",
            ports=[("http", 80, "TCP")],
            addresses=[f"10.8.{i // 250}.{i % 250 + 1}" for i in range(200)],
        ),
        service("cache", "big", ip="None", ports=[("memcache", 11211, "TCP")]),
        endpoint_slice("cache-1", "cache", "big", addresses=members, ports=[("memcache", 11211, "TCP")]),
    ]
    path = tmp_path_factory.mktemp("snapshots") / "big.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    return path


@pytest.fixture(scope="session")
def big_server(big_cluster) -> Iterator[Server]:
    with running("--snapshot", str(big_cluster), "--tcp-idle-timeout", "1") as server:
        yield server


from tests.kube_fake import kube_api  # noqa: E402, F401  (the fake API server fixture)
