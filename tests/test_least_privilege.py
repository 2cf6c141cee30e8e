"""Least privilege: the pod runs kdns as a non-root user on a read-only root filesystem, its role grants
list and watch on exactly what kdns follows, a running kdns listens on the configured addresses and
nowhere else, and the API token never reaches its logs or its metrics."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import select
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fake_upstream import upstream
from tests.kube_fake import KubeFake
from tests.support.client import HOST, ask, lookup
from tests.support.deploy import load_documents, manifest_files, one, stages
from tests.support.in_cluster import grants
from tests.support.metrics import endpoint, get, http_addresses
from tests.support.objects import endpoint_slice, namespace, service
from tests.support.polling import eventually
from tests.support.process import Server, running

SECRET = "kdns-test-token-3f9c1a7e5b2d4c6e8a0b"
POD = {
    "kind": "Pod",
    "metadata": {"name": "web-0", "namespace": "default"},
    "status": {"phase": "Running", "podIP": "10.1.0.1", "podIPs": [{"ip": "10.1.0.1"}]},
}


# -- the pod as the manifests and the Dockerfile describe it ----------------------------------------------
def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, pod spec) of every workload in deploy/ and deploy/optional/."""
    for path in manifest_files():
        for doc in load_documents(path):
            if doc["kind"] in {"Deployment", "DaemonSet", "StatefulSet"}:
                yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def test_every_container_runs_unprivileged_on_a_read_only_root():
    specs = dict(pod_specs())
    assert "kdns" in specs
    for name, spec in specs.items():
        assert not {"hostNetwork", "hostPID", "hostIPC"} & {k for k, v in spec.items() if v}, name
        assert all("hostPath" not in volume for volume in spec.get("volumes", [])), name
        pod_context = spec.get("securityContext", {})
        for container in spec["containers"] + spec.get("initContainers", []):
            context = {**pod_context, **container["securityContext"]}
            assert context["runAsNonRoot"] is True and context["runAsUser"] > 0, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False and not context.get("privileged"), name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert set(context["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}, name
            assert all(m.get("readOnly") is True for m in container.get("volumeMounts", [])), name


def test_the_image_runs_as_the_pods_non_root_user_and_declares_no_writable_volume():
    final = stages()[-1]
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    uid = int(users[-1].split(":")[0])
    assert uid > 0
    assert uid == dict(pod_specs())["kdns"]["containers"][0]["securityContext"]["runAsUser"]
    assert not [arguments for keyword, arguments in final if keyword == "VOLUME"]
    after_user = final[[keyword for keyword, _ in final].index("USER") :]
    assert not [a for k, a in after_user if k == "COPY" and "--chown" in a], "files the user could rewrite"


# -- RBAC against what kdns asks the API -----------------------------------------------------------------
def granted() -> set[tuple[str, str, str]]:
    return set(grants(one("ClusterRole", "system:kdns")))


def requested(api: KubeFake) -> set[tuple[str, str, str]]:
    """(API group, resource, verb) of every request kdns made; each must be a list or watch of a
    whole collection, never a read of one object or a write."""
    asked = set()
    for request in api.requests:
        assert request.method == "GET", request
        match = re.fullmatch(r"/api/v1/(\w+)|/apis/([\w.-]+)/v1\w*/(\w+)", request.path)
        assert match, f"not a collection: {request.path}"
        group, resource = ("", match[1]) if match[1] else (match[2], match[3])
        asked.add((group, resource, "watch" if request.query.get("watch") in {"true", "1"} else "list"))
    return asked


@pytest.mark.slow
def test_the_cluster_role_grants_exactly_what_kdns_lists_and_watches(tmp_path):
    """kdns following every resource it can (--pods verified, --multicluster), through a restart of
    its watches: the role's grants and kdns's requests are the same set."""
    kinds = ("Namespace", "Service", "EndpointSlice", "Pod", "ServiceImport")
    with KubeFake(bookmark_interval=0.2) as api:
        for obj in (
            namespace("default"),
            service("web", ip="10.96.0.50"),
            endpoint_slice("web-1", "web"),
            POD,
        ):
            api.create(obj)
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        with running(
            "--kubeconfig", str(kubeconfig), "--pods", "verified", "--multicluster", "clusterset.local"
        ) as server:
            eventually(lambda: server.logged("synced with the Kubernetes API"), timeout=10)
            eventually(lambda: all(api.watch_count(kind) for kind in kinds), timeout=10)
            api.close_watches()
            eventually(lambda: all(api.watch_count(kind) >= 2 for kind in kinds), timeout=10)
        assert requested(api) == granted()


@pytest.mark.slow
def test_noendpoints_asks_for_no_endpoint_slices_at_all(tmp_path):
    """A Corefile's noendpoints: kdns lists and watches what it follows, and EndpointSlices are not
    among them, so a role without them would do (the shipped one grants them for the default)."""
    corefile = tmp_path / "Corefile"
    corefile.write_text(
        ".:0 {\n    bind 127.0.0.1\n    kubernetes cluster.local {\n        noendpoints\n    }\n}\n"
    )
    with KubeFake(bookmark_interval=0.2) as api:
        for obj in (namespace("default"), service("web", ip="10.96.0.50"), endpoint_slice("web-1", "web")):
            api.create(obj)
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        with running("--corefile", str(corefile), "--kubeconfig", str(kubeconfig)) as server:
            eventually(lambda: server.logged("synced with the Kubernetes API"), timeout=10)
            eventually(lambda: api.watch_count("Service") and api.watch_count("Namespace"), timeout=10)
        without_slices = {grant for grant in granted() if grant[1] in {"namespaces", "services"}}
        assert requested(api) == without_slices


# -- sockets -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InetSocket:
    proto: str  # tcp or udp
    local: tuple[str, int]
    remote: tuple[str, int]
    listening: bool  # TCP in LISTEN, or UDP bound and not connected


def _address(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is host-order
    return str(ipaddress.ip_address(raw)), int(port, 16)


def inet_sockets() -> dict[int, InetSocket]:
    """Every IPv4 and IPv6 TCP and UDP socket of this network namespace, by inode."""
    found = {}
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = _address(fields[1]), _address(fields[2]), fields[3], int(fields[9])
            proto = table.rstrip("6")
            listening = state == "0A" if proto == "tcp" else remote[1] == 0
            found[inode] = InetSocket(proto, local, remote, listening)
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since the listing
            continue
        if match := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(int(match[1]))
    return inodes


def family(pid: int) -> list[int]:
    """``pid`` and its children (the workers of ``--workers``)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def sockets_of(pids: list[int]) -> dict[int, list[InetSocket]]:
    table = inet_sockets()
    return {pid: [table[inode] for inode in socket_inodes(pid) if inode in table] for pid in pids}


@pytest.mark.parametrize("workers", [1, 2])
def test_kdns_listens_on_the_configured_addresses_only(workers: int):
    """DNS on 127.0.0.1 and ::1, probes and metrics each on a loopback address of their own: every
    listening socket of every kdns process is one of them; every other one is connected to loopback."""
    with upstream("example.com. 60 IN A 192.0.2.1") as fake:
        args = ("--listen", "127.0.0.1", "::1", "--upstream", fake.address, "--workers", str(workers))
        http = ("--health", "127.0.0.1:0", "--ready", "[::1]:0", "--metrics", "127.0.0.2:0")
        with running(*args, *http) as server:
            line = eventually(lambda: [x for x in server.logged("ready:") if "health on" in x])[0]
            endpoints = http_addresses(line)
            assert set(endpoints) == {"health", "ready", "metrics"}
            for host in ("127.0.0.1", "::1"):  # answering, forwarded names included
                reply = ask(server.port, "example.com", host=host)
                assert reply.answer[0][0].address == "192.0.2.1"
            for name in endpoints:
                assert get(endpoint(server, name) + f"/{name}")[0] == 200
            pids = eventually(
                lambda: (
                    len(family(server.process.pid)) == workers + (workers > 1) and family(server.process.pid)
                )
            )
            found = sockets_of(pids)
    expected = {("udp", (host, server.port)) for host in ("127.0.0.1", "::1")}
    expected |= {("tcp", (host, server.port)) for host in ("127.0.0.1", "::1")}
    expected |= {("tcp", where) for where in endpoints.values()}
    listening = {(s.proto, s.local) for sockets in found.values() for s in sockets if s.listening}
    assert listening == expected
    for pid, sockets in found.items():
        for s in sockets:
            assert ipaddress.ip_address(s.local[0]).is_loopback, (pid, s)
            assert s.listening or ipaddress.ip_address(s.remote[0]).is_loopback, (pid, s)
    if workers > 1:  # each worker holds its own DNS sockets; the supervisor only the HTTP ones
        supervisor, *children = pids
        assert {s.local[1] for s in found[supervisor] if s.listening} == {p for _, p in endpoints.values()}
        for child in children:
            assert {(s.proto, s.local) for s in found[child] if s.listening} == {
                (p, (h, server.port)) for p in ("udp", "tcp") for h in ("127.0.0.1", "::1")
            }
    print(f"workers {workers}: {sum(map(len, found.values()))} sockets in {len(pids)} processes checked")


# -- secrets -------------------------------------------------------------------------------------------------
def leaks(text: str, secret: str) -> bool:
    forms = {secret, base64.b64encode(secret.encode()).decode(), secret[:12]}
    return any(form in text for form in forms)


def go_through_failures(api: KubeFake, server: Server, scenario: str) -> None:
    """``statuses``: 401, 403 and 500 answers to the requests after the watches end; ``outage``: the
    API gone (its connections refused or cut), then back. Either way kdns follows the API again."""
    seen = len(server.log)
    if scenario == "statuses":
        for code in (401, 403, 500):
            api.fail(code)
        api.close_watches()
        for code in (401, 403, 500):
            eventually(lambda code=code: server.logged(f"HTTP {code}"), timeout=10)
    else:
        api.stop()
        broken = ("Kubernetes API unavailable", "request broke")
        eventually(lambda: [line for line in server.log[seen:] if any(b in line for b in broken)], timeout=10)
        api.start()
    api.create(service("late", ip="10.96.0.77"))
    eventually(
        lambda: lookup(server.port, "late.default.svc.cluster.local") == ("NOERROR", {"10.96.0.77"}),
        timeout=20,
    )


def populated(api: KubeFake) -> KubeFake:
    for obj in (
        namespace("default"),
        service("web", ip="10.96.0.50"),
        endpoint_slice("web-1", "web", addresses=["10.1.0.1"]),
    ):
        api.create(obj)
    return api


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["statuses", "outage"])
def test_the_kubeconfig_token_never_reaches_logs_or_metrics(tmp_path, scenario: str):
    """At debug level, through 401, 403 and 500 answers, or an outage: the token is in no log line, on
    no stdout, in no metric."""
    with KubeFake(token=SECRET, bookmark_interval=0.2) as api:
        populated(api)
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        args = (
            "--kubeconfig",
            str(kubeconfig),
            "--log-level",
            "debug",
            "--log-queries",
            "--metrics",
            "127.0.0.1:0",
        )
        with running(*args, stdout=True) as server:
            eventually(lambda: server.logged("synced with the Kubernetes API"), timeout=10)
            ask(server.port, "web.default.svc.cluster.local")
            go_through_failures(api, server, scenario)
            metrics = get(endpoint(server, "metrics") + "/metrics")[1]
    assert "coredns_dns_requests_total" in metrics
    for output in ("\n".join(server.log), server.stdout, metrics):
        assert not leaks(output, SECRET)


@pytest.mark.slow
def test_a_rejected_token_is_not_logged(tmp_path):
    """The API refuses the kubeconfig's token (401 on every request): the token is still not shown."""
    with KubeFake(token="the-token-the-api-expects") as api:
        populated(api)
        kubeconfig = tmp_path / "kubeconfig"
        api.write_kubeconfig(kubeconfig)
        kubeconfig.write_text(kubeconfig.read_text().replace("the-token-the-api-expects", SECRET))
        with running(
            "--kubeconfig", str(kubeconfig), "--log-level", "debug", "--startup-timeout", "1", stdout=True
        ) as server:
            eventually(lambda: server.logged("HTTP 401"), timeout=10)
            time.sleep(1)  # a few retries
    assert server.logged("starting unsynced")
    assert not leaks("\n".join(server.log), SECRET) and not leaks(server.stdout, SECRET)


IN_CLUSTER = (
    "import sys; import kubernetes.config.incluster_config as c; "
    "c.SERVICE_TOKEN_FILENAME, c.SERVICE_CERT_FILENAME = sys.argv[1:3]; "
    "from kdns.cli import main; sys.exit(main(sys.argv[3:]))"
)


@contextmanager
def tls_front(backend: int, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A TLS endpoint on 127.0.0.1 (a fresh self-signed certificate) relaying to ``backend`` in plain
    HTTP, as the API server's in-cluster address is reached; yields its port and the CA file."""
    cert, key = tmp_path / "ca.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class Relay(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                client = context.wrap_socket(self.request, server_side=True)
            except OSError:
                return
            with client:
                try:
                    api = socket.create_connection((HOST, backend), timeout=5)
                except OSError:  # the API is down: so is this connection
                    return
                with api:
                    pump(client, api)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer((HOST, 0), Relay)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server.server_address[1], cert
    finally:
        server.shutdown()
        server.server_close()


def pump(client: ssl.SSLSocket, api: socket.socket) -> None:
    """Copy bytes both ways until either side closes (bounded: 60 s without traffic)."""
    while True:
        ready = (client.pending() and [client]) or select.select([client, api], [], [], 60)[0]
        if not ready:
            return
        for source in ready:
            target = api if source is client else client
            try:
                data = source.recv(65536)
                if not data:
                    return
                target.sendall(data)
            except OSError:
                return


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["statuses", "outage"])
def test_the_service_account_token_never_reaches_logs_or_metrics(tmp_path, scenario: str):
    """--in-cluster, through TLS as in a pod: the token read from the service-account file is never
    logged (nor its path), through 401, 403 and 500 answers or an outage, at debug level."""
    token = tmp_path / "serviceaccount-token"
    token.write_text(SECRET)
    # The fake checks no token in this test: what it asserts is where the token does not go.
    with KubeFake(bookmark_interval=0.2) as api, tls_front(api.port, tmp_path) as (port, ca):
        populated(api)
        env = {**os.environ, "KUBERNETES_SERVICE_HOST": HOST, "KUBERNETES_SERVICE_PORT": str(port)}
        launcher = ("-c", IN_CLUSTER, str(token), str(ca))
        args = ("--in-cluster", "--log-level", "debug", "--metrics", "127.0.0.1:0")
        with running(*args, launcher=launcher, env=env, stdout=True) as server:
            eventually(lambda: server.logged("synced with the Kubernetes API"), timeout=10)
            assert server.logged(f"in-cluster API at {HOST}:{port}")
            go_through_failures(api, server, scenario)
            metrics = get(endpoint(server, "metrics") + "/metrics")[1]
    for output in ("\n".join(server.log), server.stdout, metrics):
        assert not leaks(output, SECRET)
        assert str(token) not in output
