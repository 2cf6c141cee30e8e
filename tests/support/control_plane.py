"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver and kube-controller-manager built
from the Go module proxy by ``tests/cluster/build.sh``, with certificates and keys made for the run.

``control_plane(directory)`` starts the three (etcd's data, the certificates and the admin kubeconfig
live in ``directory``), waits until the API server's ``/readyz`` answers ok and stops them by PID when
the block ends. Faults a real control plane has: ``ControlPlane.stop_apiserver``/``start_apiserver``
(a restart on the same port, certificates and etcd), ``ControlPlane.compact_etcd`` (history before a
revision gone, as the API server's own compactor does every 5 minutes) and
``ControlPlane.delete_from_etcd`` (a change the API server does not make); tests/support/relay.py puts
a front whose connections can be reset before ``ControlPlane.address``."""

from __future__ import annotations

import base64
import dataclasses
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.paths import ROOT
from tests.support.process import free_port, stop

HOST = "127.0.0.1"
SERVICE_RANGE = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"  # the first address of the range: the ``kubernetes`` Service
BUILD = ROOT / "tests" / "cluster" / "build.sh"
# The controllers kdns's tests lean on: EndpointSlices for Services (and mirrored from Endpoints),
# namespace deletion, owner-based garbage collection, each namespace's default service account (pods
# are admitted only once it exists) and service account tokens.
CONTROLLERS = (
    "endpointslice,endpointslicemirroring,namespace,garbagecollector,serviceaccount,serviceaccount-token"
)
# What Deployments, ReplicaSets and PodDisruptionBudgets need besides: their controllers, and the
# disruption controller's budget status, without which the eviction API refuses every eviction.
WORKLOAD_CONTROLLERS = f"{CONTROLLERS},deployment,replicaset,disruption"
# The admin identity: a client certificate in the group every request is allowed for.
ADMIN_USER, ADMIN_GROUP = "kdns-admin", "system:masters"


def binaries() -> Path:
    """The directory of ``etcd``, ``kube-apiserver`` and ``kube-controller-manager``, built on first use
    (``make tools-cluster`` builds them beforehand: the first build takes minutes)."""
    done = subprocess.run([str(BUILD)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{BUILD} failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


class _Child:
    """A program run as a child process logging to ``logs/NAME.log``, which can be stopped by PID
    (SIGTERM, then SIGKILL ``grace`` seconds later) and started again with the same command line."""

    def __init__(self, name: str, argv: Sequence[str], logs: Path) -> None:
        self.argv = list(argv)
        self.log = logs / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        with self.log.open("a") as log:  # a restart appends to what the first run logged
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self.process

    def stop(self, grace: float = 15) -> None:
        if self.process is not None:
            stop(self.process, grace=grace)


@dataclasses.dataclass
class ControlPlane:
    """A running control plane: its API server's URL, the CA that signed its certificate and an admin
    kubeconfig (client certificate in ``system:masters``) for tests and for ``kdns serve``."""

    url: str
    ca_file: Path
    kubeconfig: Path
    logs: Path
    etcd_url: str
    admin_cert: Path
    admin_key: Path
    _apiserver: _Child = dataclasses.field(repr=False)
    _client: ssl.SSLContext = dataclasses.field(repr=False)
    _timeout: float = 90

    def stop_apiserver(self, grace: float = 15) -> None:
        """Stop kube-apiserver as a pod is stopped: SIGTERM, then SIGKILL ``grace`` seconds later. On
        SIGTERM it stops accepting connections at once but drains the requests it holds for up to its
        60 s request timeout: open watches stay open, silent, until it exits or is killed."""
        self._apiserver.stop(grace)

    def start_apiserver(self) -> None:
        """Start kube-apiserver again, on the same port with the same certificates and etcd; return once
        its ``/readyz`` is ok."""
        process = self._apiserver.start()
        _wait_until(
            f"{self.url}/readyz", _apiserver_ready, process, self._apiserver.log, self._timeout, self._client
        )

    def etcd_revision(self) -> int:
        """etcd's current revision: every write through the API server advances it; resourceVersions
        are revisions."""
        header = self._etcd("kv/range", {"key": base64.b64encode(b"/registry/").decode()})["header"]
        return int(header["revision"])

    def compact_etcd(self, revision: int) -> None:
        """Compact etcd's history before ``revision`` (physically, before returning): lists, continue
        tokens and watches served from etcd (a resource without a watch cache) at older
        resourceVersions get ``410 Gone``; the watch cache keeps its own history."""
        self._etcd("kv/compaction", {"revision": str(revision), "physical": True})

    def delete_from_etcd(self, key: str) -> int:
        """Delete ``key`` (e.g. ``/registry/services/specs/NS/NAME``) in etcd, behind the API server's
        back; how many keys went."""
        deleted = self._etcd("kv/deleterange", {"key": base64.b64encode(key.encode()).decode()})
        return int(deleted.get("deleted", 0))

    @property
    def address(self) -> tuple[str, int]:
        """The API server's host and port."""
        host, port = self.url.removeprefix("https://").rsplit(":", 1)
        return host, int(port)

    def kubeconfig_for(self, url: str, path: Path) -> Path:
        """An admin kubeconfig at ``path`` that reaches the API server through ``url`` (a front)."""
        return write_kubeconfig(
            path, server=url, ca_file=self.ca_file, user=_admin(self.admin_cert, self.admin_key)
        )

    def _etcd(self, call: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.etcd_url}/v3/{call}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, user: dict[str, str]) -> Path:
    """A kubeconfig at ``path`` for the API server at ``server`` (verified with ``ca_file``) as
    ``user`` (client-certificate and client-key, or token)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))
    return path


def _admin(cert: Path, key: Path) -> dict[str, str]:
    return {"client-certificate": str(cert), "client-key": str(key)}


def _service_account_key(directory: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "service-account.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


@contextmanager
def _process(name: str, argv: Sequence[str], logs: Path) -> Iterator[subprocess.Popen]:
    """``argv`` as a child process logging to ``logs/name.log``, stopped when the block ends."""
    child = _Child(name, argv, logs)
    try:
        yield child.start()
    finally:
        child.stop()


def _wait_until(
    url: str,
    ok: Callable[[str], bool],
    process: subprocess.Popen,
    log: Path,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> None:
    """Poll ``url`` until a 200 reply's body passes ``ok``; fail with the end of ``log`` if ``process``
    ends or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as reply:
                last = reply.read().decode()
                if reply.status == 200 and ok(last):
                    return
        except (urllib.error.URLError, OSError, ValueError) as error:
            last = str(error)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s ({last}):\n{_tail(log)}")


def _etcd_healthy(body: str) -> bool:
    return json.loads(body).get("health") == "true"


def _apiserver_ready(body: str) -> bool:
    return body.strip() == "ok"


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def control_plane(
    directory: Path,
    *,
    controller_manager: bool = True,
    apiserver_args: Sequence[str] = (),
    etcd_args: Sequence[str] = (),
    controllers: str = CONTROLLERS,
    timeout: float = 90,
) -> Iterator[ControlPlane]:
    """etcd (then ``etcd_args``), kube-apiserver (TLS, ``Node,RBAC``, service range ``SERVICE_RANGE``,
    then ``apiserver_args``) and, with ``controller_manager``, kube-controller-manager running
    ``controllers``, all on 127.0.0.1 with their state in ``directory``; yields once ``/readyz`` is ok."""
    bin_dir = binaries()
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    serving = ca.issue_cert(HOST, "localhost", "kubernetes", "kubernetes.default.svc", API_SERVICE_IP)
    serving_cert, serving_key = directory / "apiserver.crt", directory / "apiserver.key"
    serving.cert_chain_pems[0].write_to_path(str(serving_cert))
    serving.private_key_pem.write_to_path(str(serving_key))
    admin = ca.issue_cert(ADMIN_USER, common_name=ADMIN_USER, organization_name=ADMIN_GROUP)
    admin_cert, admin_key = directory / "admin.crt", directory / "admin.key"
    admin.cert_chain_pems[0].write_to_path(str(admin_cert))
    admin.private_key_pem.write_to_path(str(admin_key))
    sa_key = _service_account_key(directory)

    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url, peer_url = f"http://{HOST}:{etcd_port}", f"http://{HOST}:{peer_port}"
    url = f"https://{HOST}:{api_port}"
    kubeconfig = write_kubeconfig(
        directory / "admin.kubeconfig", server=url, ca_file=ca_file, user=_admin(admin_cert, admin_key)
    )
    client = ssl.create_default_context(cafile=str(ca_file))
    client.load_cert_chain(str(admin_cert), str(admin_key))

    with ExitStack() as stack:
        etcd = stack.enter_context(
            _process(
                "etcd",
                [
                    str(bin_dir / "etcd"),
                    "--name=test",
                    f"--data-dir={directory / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=test={peer_url}",
                    "--log-level=warn",
                    *etcd_args,
                ],
                logs,
            )
        )
        _wait_until(f"{etcd_url}/health", _etcd_healthy, etcd, logs / "etcd.log", timeout)
        apiserver = _Child(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={api_port}",
                f"--cert-dir={directory / 'apiserver-certs'}",
                f"--tls-cert-file={serving_cert}",
                f"--tls-private-key-file={serving_key}",
                f"--client-ca-file={ca_file}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                # loopback is no valid endpoint address: leave the kubernetes Service's endpoints alone
                "--endpoint-reconciler-type=none",
                *apiserver_args,
            ],
            logs,
        )
        stack.callback(apiserver.stop)
        _wait_until(f"{url}/readyz", _apiserver_ready, apiserver.start(), apiserver.log, timeout, client)
        if controller_manager:
            stack.enter_context(
                _process(
                    "kube-controller-manager",
                    [
                        str(bin_dir / "kube-controller-manager"),
                        f"--kubeconfig={kubeconfig}",
                        f"--controllers={controllers}",
                        f"--service-account-private-key-file={sa_key}",
                        f"--root-ca-file={ca_file}",
                        f"--bind-address={HOST}",
                        f"--secure-port={free_port()}",
                        "--leader-elect=false",
                    ],
                    logs,
                )
            )
        yield ControlPlane(
            url=url,
            ca_file=ca_file,
            kubeconfig=kubeconfig,
            logs=logs,
            etcd_url=etcd_url,
            admin_cert=admin_cert,
            admin_key=admin_key,
            _apiserver=apiserver,
            _client=client,
            _timeout=timeout,
        )
