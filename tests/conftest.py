from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.kube_fake import kube_api  # noqa: F401  (the fake API server fixture)
from tests.support.control_plane import ControlPlane, control_plane
from tests.support.objects import big_namespace
from tests.support.process import Server, running


@pytest.fixture(scope="session")
def example_server() -> Iterator[Server]:
    """``kdns serve`` on the embedded example cluster, shared by the read-only end-to-end tests."""
    with running() as server:
        yield server


@pytest.fixture(scope="session")
def big_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A snapshot of ``big_namespace``: a headless Service of 200 endpoints and one whose SRV additions
    overflow."""
    path = tmp_path_factory.mktemp("snapshots") / "big.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": big_namespace()}))
    return path


@pytest.fixture(scope="session")
def big_server(big_cluster) -> Iterator[Server]:
    with running("--snapshot", str(big_cluster), "--tcp-idle-timeout", "1") as server:
        yield server


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A real control plane (etcd, kube-apiserver, kube-controller-manager) on 127.0.0.1, started once,
    for the first test that asks for it, and stopped when the session ends."""
    with control_plane(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane
