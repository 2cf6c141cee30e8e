"""CoreDNS, the reference kdns answers like, built from the Go module proxy at the version pinned in
tests/coredns/go.mod (``tests/cluster/build.sh coredns``), run as kubeadm configures it.

``kubeadm_corefile`` is kubeadm's Corefile (tests/corefiles/kubeadm.Corefile, as the cluster installs
it) moved to loopback: the server block on a given port bound to 127.0.0.1, ``health``, ``ready`` and
``prometheus`` on ports of 127.0.0.1, the ``kubernetes`` plugin following the API server of a
kubeconfig, ``forward`` to a loopback upstream instead of /etc/resolv.conf. kdns reads the same text.
``running_coredns`` starts it and waits until ``/ready`` says the kubernetes plugin has synced."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.support.client import HOST
from tests.support.control_plane import BUILD
from tests.support.paths import ROOT
from tests.support.process import free_port, stop

KUBEADM_COREFILE = ROOT / "tests" / "corefiles" / "kubeadm.Corefile"


def binary() -> Path:
    """``coredns``, built on first use (the first build takes minutes; ``make tools-cluster`` builds it
    beforehand)."""
    done = subprocess.run([str(BUILD), "coredns"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{BUILD} coredns failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1]) / "coredns"


@dataclasses.dataclass(frozen=True)
class Ports:
    """Where a server block of the kubeadm Corefile listens on 127.0.0.1."""

    dns: int
    health: int
    ready: int
    metrics: int

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


def kubeadm_corefile(ports: Ports, *, kubeconfig: Path, upstream: str, pods: str = "insecure") -> str:
    """kubeadm's Corefile on loopback, following ``kubeconfig``'s API server and forwarding to
    ``upstream`` (``127.0.0.1:PORT``); ``pods`` in place of kubeadm's ``pods insecure``."""
    if not upstream.startswith(f"{HOST}:"):
        raise ValueError(f"upstream {upstream!r} is not on {HOST}")
    lines = [line for line in KUBEADM_COREFILE.read_text().splitlines() if not line.startswith("#")]
    edits = {
        ".:53 {": f".:{ports.dns} {{\n    bind {HOST}",
        "    health {": f"    health {HOST}:{ports.health} {{",
        "    ready": f"    ready {HOST}:{ports.ready}",
        "       pods insecure": f"       kubeconfig {kubeconfig}\n       pods {pods}",
        "    prometheus :9153": f"    prometheus {HOST}:{ports.metrics}",
        "    forward . /etc/resolv.conf {": f"    forward . {upstream} {{",
    }
    missing = set(edits) - set(lines)
    if missing:
        raise ValueError(f"{KUBEADM_COREFILE} no longer has the lines {sorted(missing)}")
    return "\n".join(edits.get(line, line) for line in lines) + "\n"


def moved_to_loopback(corefile: str, ports: Ports, *, upstream: str) -> str:
    """A cluster's one-block Corefile (``.:53``) served on ``ports`` of 127.0.0.1: the block bound
    there, health, ready and prometheus moved there, ``forward`` sent to ``upstream``; the rest as it is."""
    rules = [
        (r"^(\s*)\.:53 \{$", rf"\1.:{ports.dns} {{\n\1    bind {HOST}"),
        (r"^(\s*)health(?: [^\s{]+)?( \{)?$", rf"\1health {HOST}:{ports.health}\2"),
        (r"^(\s*)ready(?: \S+)?$", rf"\1ready {HOST}:{ports.ready}"),
        (r"^(\s*)prometheus(?: \S+)?$", rf"\1prometheus {HOST}:{ports.metrics}"),
        (r"^(\s*)forward \. \S+( \{)?$", rf"\1forward . {upstream}\2"),
    ]
    lines = corefile.splitlines()
    for pattern, replacement in rules:
        matched = [i for i, line in enumerate(lines) if re.match(pattern, line)]
        if len(matched) != 1:
            raise ValueError(f"the Corefile has {len(matched)} lines like {pattern!r}, not one")
        lines[matched[0]] = re.sub(pattern, replacement, lines[matched[0]])
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class CoreDNS:
    """A running CoreDNS: its process, its ports and its log."""

    process: subprocess.Popen
    ports: Ports
    log: Path

    @property
    def port(self) -> int:
        return self.ports.dns

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def ready(ports: Ports) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{ports.ready}/ready", timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_coredns(
    corefile: str,
    ports: Ports,
    directory: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[CoreDNS]:
    """CoreDNS serving ``corefile`` (written to ``directory``), once its ``/ready`` on ``ports`` says
    200; stopped by PID when the block ends. ``env`` adds to the environment (e.g. ``GOMAXPROCS``)."""
    directory.mkdir(parents=True, exist_ok=True)
    path, log = directory / "Corefile", directory / "coredns.log"
    path.write_text(corefile)
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(binary()), "-conf", str(path)],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
            env={**os.environ, **(env or {})},
        )
    server = CoreDNS(process, ports, log)
    try:
        deadline = time.monotonic() + timeout
        while not ready(ports):
            if process.poll() is not None:
                raise RuntimeError(f"coredns exited {process.returncode}:\n{server.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"coredns not ready after {timeout} s:\n{server.output()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        stop(process, grace=10)
