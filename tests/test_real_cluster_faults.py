"""API-server faults a real control plane produces, with kdns following it and answering over DNS: a
kube-apiserver restart, a resourceVersion compacted away in etcd while kdns's watch was down (a real
``410 Gone``), and a quiet watch kept current by the API server's bookmarks. Each test disrupts its
own control plane (``tests/support/control_plane.py``)."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import dns.rcode
import pytest
from kubernetes import client, config

from tests.support.client import ask
from tests.support.control_plane import ADMIN_USER, ControlPlane, control_plane
from tests.support.metrics import endpoint, metric, scrape
from tests.support.polling import eventually
from tests.support.process import Server, running
from tests.support.relay import relay

pytestmark = pytest.mark.slow

ZONE = "svc.cluster.local."


def _core(plane: ControlPlane) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(plane.kubeconfig)))


def _service(api: client.CoreV1Api, namespace: str, name: str, cluster_ip: str | None = None) -> str:
    """A ClusterIP Service made through the API; its address (``cluster_ip``, or as the API server
    allocated it)."""
    made = api.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1ServiceSpec(
                cluster_ip=cluster_ip, ports=[client.V1ServicePort(port=80)], selector={"app": name}
            ),
        ),
    )
    return made.spec.cluster_ip


def _addresses(port: int, name: str) -> list[str]:
    reply = ask(port, name)
    return [item.address for rrset in reply.answer for item in rrset]


def _nxdomain(port: int, name: str) -> bool:
    return ask(port, name).rcode() == dns.rcode.NXDOMAIN


def _following(kubeconfig: Path, *args: str) -> AbstractContextManager[Server]:
    """``kdns serve ARGS`` following the API server ``kubeconfig`` reaches, with its metrics on."""
    return running("--kubeconfig", str(kubeconfig), "--metrics", "127.0.0.1:0", *args)


@contextmanager
def _asking(port: int, name: str, *, interval: float = 0.05, limit: float = 300) -> Iterator[list]:
    """Ask ``name`` every ``interval`` seconds on a thread while the block runs (``limit`` seconds at
    most); yields the list of (rcode, addresses) replies it collects, or the error when none came."""
    replies: list = []
    done = threading.Event()

    def keep_asking() -> None:
        deadline = time.monotonic() + limit
        while not done.is_set() and time.monotonic() < deadline:
            try:
                reply = ask(port, name, timeout=2)
                replies.append((reply.rcode(), [item.address for rrset in reply.answer for item in rrset]))
            except Exception as error:  # a missed answer is what the test looks for
                replies.append((None, repr(error)))
            done.wait(interval)

    asker = threading.Thread(target=keep_asking, daemon=True)
    asker.start()
    try:
        yield replies
    finally:
        done.set()
        asker.join(10)


def test_answers_continue_through_an_apiserver_restart_and_follow_what_changed_after_it(tmp_path: Path):
    """kube-apiserver is stopped as a pod is: on SIGTERM it refuses new connections at once and holds
    its watches open, silent, to drain them (for up to its 60 s request timeout); killed 5 s later,
    the watches break. It comes back on the same port with the same etcd; a Service is made and one
    deleted at once. kdns answers from its last good zone throughout, then answers the changes."""
    with control_plane(tmp_path, controller_manager=False) as plane:
        api = _core(plane)
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="restart")))
        kept_ip = _service(api, "restart", "kept")
        doomed_ip = _service(api, "restart", "doomed")
        kept, doomed, fresh = (f"{name}.restart.{ZONE}" for name in ("kept", "doomed", "fresh"))
        with _following(plane.kubeconfig) as server:
            metrics = endpoint(server, "metrics") + "/metrics"
            assert eventually(lambda: _addresses(server.port, doomed), timeout=30) == [doomed_ip]
            with _asking(server.port, kept) as replies:
                plane.stop_apiserver(grace=5)
                eventually(lambda: server.logged("Kubernetes API unavailable"), timeout=30)
                down_until = time.monotonic() + 3
                while time.monotonic() < down_until:  # kdns retries; the last good zone answers
                    assert _addresses(server.port, doomed) == [doomed_ip]
                    time.sleep(0.1)
                plane.start_apiserver()
                fresh_ip = _service(api, "restart", "fresh")
                api.delete_namespaced_service("doomed", "restart")
                assert eventually(lambda: _addresses(server.port, fresh), timeout=60) == [fresh_ip]
                eventually(lambda: _nxdomain(server.port, doomed), timeout=30)
            after = scrape(metrics)
            assert server.logged("Kubernetes API available again")
    assert len(replies) > 50
    assert {(rcode, tuple(addresses)) for rcode, addresses in replies} == {(dns.rcode.NOERROR, (kept_ip,))}
    assert metric(after, "kdns_kubernetes_watch_ends_total", kind="Service") >= 1  # the restart ended it
    assert metric(after, "kdns_kubernetes_api_up") == 1
    assert metric(after, "kdns_kubernetes_watch_open", kind="Service") == 1


def test_a_resource_version_compacted_away_while_kdns_was_not_watching_is_a_real_410(tmp_path: Path):
    """kdns is frozen (SIGSTOP: a process paused, as under a long stall), the front before the API
    server resets its connections, and while it cannot notice, Services are deleted, one is made again
    at another address, others change, and etcd is compacted at its current revision. Resumed, kdns
    watches from its old resourceVersion, gets ``410 Gone``, lists again and answers what is there now.

    Services are watched from etcd (``--watch-cache-sizes=services#0``: no watch cache for them), where
    compaction is what expires a resourceVersion; Namespaces and EndpointSlices keep the watch cache,
    whose history (not etcd's) serves their resumed watches, so they resume without a list."""
    with (
        control_plane(
            tmp_path, controller_manager=False, apiserver_args=["--watch-cache-sizes=services#0"]
        ) as plane,
        relay(plane.address) as front,
    ):
        api = _core(plane)
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="gap")))
        stay_ip = _service(api, "gap", "stay")
        for name in ("gone-a", "gone-b"):
            _service(api, "gap", name)
        _service(api, "gap", "moved", cluster_ip="10.96.77.1")
        stay, moved, born = (f"{name}.gap.{ZONE}" for name in ("stay", "moved", "born"))
        gone = [f"{name}.gap.{ZONE}" for name in ("gone-a", "gone-b")]
        kubeconfig = plane.kubeconfig_for(front.url, tmp_path / "front.kubeconfig")
        with _following(kubeconfig) as server:
            metrics = endpoint(server, "metrics") + "/metrics"
            assert eventually(lambda: _addresses(server.port, moved), timeout=30) == ["10.96.77.1"]
            assert [_addresses(server.port, name) != [] for name in gone] == [True, True]
            before = scrape(metrics)
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                assert front.reset() >= 3  # a watch per kind, at least
                for name in ("gone-a", "gone-b", "moved"):
                    api.delete_namespaced_service(name, "gap")
                _service(api, "gap", "moved", cluster_ip="10.96.77.2")
                born_ip = _service(api, "gap", "born")
                for step in range(20):  # history the compaction removes
                    api.patch_namespaced_service("stay", "gap", {"metadata": {"labels": {"step": str(step)}}})
                revision = plane.etcd_revision()
                plane.compact_etcd(revision)
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert eventually(lambda: _addresses(server.port, born), timeout=30) == [born_ip]
            assert _addresses(server.port, moved) == ["10.96.77.2"]
            assert [_nxdomain(server.port, name) for name in gone] == [True, True]
            assert _addresses(server.port, stay) == [stay_ip]
            after = scrape(metrics)
            expired = server.logged("services: resourceVersion")
        apiserver_log = (plane.logs / "kube-apiserver.log").read_text()

    # the watch resumed from a version etcd no longer holds: the API server's etcd watch says so ...
    assert "required revision has been compacted" in apiserver_log
    # ... and kdns got it as a 410 (an ERROR event carrying a Status, in a 200 response), then listed
    assert len(expired) == 1 and expired[0].endswith("expired; listing again")
    held = int(re.search(r"resourceVersion (\d+) expired", expired[0])[1])
    assert held < revision
    ends = "kdns_kubernetes_watch_ends_total"
    lists = "kdns_kubernetes_lists_total"
    assert metric(after, ends, kind="Service", reason="expired") == 1
    assert metric(after, lists, kind="Service") == metric(before, lists, kind="Service") + 1
    assert metric(after, "kdns_kubernetes_requests_total", kind="Service", verb="watch", code="410") == 0
    for kind in ("Namespace", "EndpointSlice"):  # resumed from the watch cache's history
        assert metric(after, ends, kind=kind, reason="expired") == 0
        assert metric(after, lists, kind=kind) == metric(before, lists, kind=kind)


AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {
            "level": "Metadata",
            "resources": [{"group": "", "resources": ["services"]}],
            "verbs": ["list", "watch"],
        },
        {"level": "None"},
    ],
}


def _service_requests(audit: Path, verb: str) -> list[dict[str, str]]:
    """The query parameters of each list or watch of Services kdns (the admin user: the API server's
    own informers are another) made, in order, as the API server's audit log holds them (a watch once
    its response started, a list once complete)."""
    stage = "ResponseStarted" if verb == "watch" else "ResponseComplete"
    found = []
    for line in audit.read_text().splitlines() if audit.exists() else ():
        event = json.loads(line)
        if event["verb"] == verb and event["stage"] == stage and event["user"]["username"] == ADMIN_USER:
            query = event["requestURI"].partition("?")[2]
            found.append(dict(part.partition("=")[::2] for part in query.split("&") if part))
    return found


def test_a_quiet_watch_is_kept_current_by_bookmarks_and_resumes_from_one(tmp_path: Path):
    """The API server sends a watch that allows bookmarks one about a minute after it began (and 2 s
    before its deadline, minutes away for kdns), carrying the watch cache's resourceVersion, when that
    has moved past what the watch last carried. The cache follows etcd's revision through etcd's
    progress notifications, every 5 s as kubeadm configures etcd (etcd's default: 10 minutes).
    Nothing changes among Services: the watch stays open and gets the bookmark; reset at the front
    afterwards, it resumes from the bookmark's resourceVersion, newer than the initial state's (a watch
    list), without getting the state again."""
    policy, audit = tmp_path / "audit-policy.json", tmp_path / "audit.log"
    policy.write_text(json.dumps(AUDIT_POLICY))
    with (
        control_plane(
            tmp_path,
            controller_manager=False,
            etcd_args=["--watch-progress-notify-interval=5s"],
            apiserver_args=[f"--audit-policy-file={policy}", f"--audit-log-path={audit}"],
        ) as plane,
        relay(plane.address) as front,
    ):
        api = _core(plane)
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="quiet")))
        quiet_ip, web = _service(api, "quiet", "web"), f"web.quiet.{ZONE}"
        kubeconfig = plane.kubeconfig_for(front.url, tmp_path / "front.kubeconfig")
        with _following(kubeconfig, "--log-level", "debug") as server:  # debug: the state's version
            metrics = endpoint(server, "metrics") + "/metrics"
            assert eventually(lambda: _addresses(server.port, web), timeout=30) == [quiet_ip]
            first = eventually(lambda: _service_requests(audit, "watch"), timeout=10)
            # the state came by watch list, which goes on as the watch
            assert first[0]["sendInitialEvents"] == "true" and first[0]["allowWatchBookmarks"] == "true"
            [state] = server.logged("services: listed")
            listed = int(re.search(r"at resourceVersion (\d+)", state)[1])
            synced = scrape(metrics)
            sync = "kdns_kubernetes_last_sync_timestamp_seconds"

            def bookmarked():
                now = scrape(metrics)
                return (
                    now if metric(now, sync, kind="Service") > metric(synced, sync, kind="Service") else None
                )

            quiet = eventually(bookmarked, timeout=75, interval=0.5)
            revision = plane.etcd_revision()
            for samples in (synced, quiet):  # nothing came but the bookmark: no event, no list, no end
                assert metric(samples, "kdns_kubernetes_events_total", kind="Service") == 0
                assert metric(samples, "kdns_kubernetes_lists_total", kind="Service") == 1
                assert metric(samples, "kdns_kubernetes_watch_ends_total", kind="Service") == 0
                assert metric(samples, "kdns_kubernetes_watch_open", kind="Service") == 1
            assert front.reset() >= 3
            watches = eventually(lambda: _service_requests(audit, "watch")[1:], timeout=30)
            resumed = int(watches[0]["resourceVersion"])
            assert listed < resumed <= revision  # the bookmark's version: kdns learned it from nothing else
            after = scrape(metrics)
            assert metric(after, "kdns_kubernetes_lists_total", kind="Service") == 1
            assert not _service_requests(audit, "list")
            assert "sendInitialEvents" not in watches[0]  # a watch from a version, not the state again
            assert metric(after, "kdns_kubernetes_watch_ends_total", kind="Service", reason="dropped") == 1
            later_ip = _service(api, "quiet", "later")  # the resumed watch follows
            later = f"later.quiet.{ZONE}"
            assert eventually(lambda: _addresses(server.port, later), timeout=30) == [later_ip]
