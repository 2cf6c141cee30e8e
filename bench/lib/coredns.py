"""CoreDNS as the benchmarks run it beside kdns: kubeadm's Corefile on loopback (the text
``tests.support.coredns.kubeadm_corefile`` makes, which kdns runs too) and ``coredns`` as a pinned
child process, started once its ``/ready`` says 200 (the ``kubernetes`` plugin has synced).

``GOMAXPROCS`` is set or left out as asked; left out, Go takes the number of CPUs the process may run
on (its affinity), so pinning to one CPU alone also means one.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.lib.processes import CpuSet, popen
from bench.lib.servers import Server, wait_answering, wait_ready
from tests.support.coredns import Ports, binary, kubeadm_corefile


@dataclass(frozen=True)
class Corefile:
    """A Corefile written to ``path`` whose server block listens on 127.0.0.1 at ``ports``."""

    path: Path
    ports: Ports


def kubeadm(path: Path, *, kubeconfig: Path, upstream: str, pods: str = "insecure") -> Corefile:
    """kubeadm's Corefile on free ports of 127.0.0.1, following ``kubeconfig``'s API server and
    forwarding to ``upstream`` (``127.0.0.1:PORT``), with ``pods`` as its ``pods`` line, written to
    ``path``."""
    ports = Ports.free()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = kubeadm_corefile(ports, kubeconfig=kubeconfig, upstream=upstream, pods=pods)
    path.write_text(text, encoding="utf-8")
    return Corefile(path, ports)


@dataclass
class CoreDNS(Server):
    """A running ``coredns``: when it was spawned and when its ``/ready`` first said 200
    (``time.monotonic()``)."""

    started: float = 0.0
    ready_at: float = 0.0


def start(
    corefile: Corefile, log: Path, cpus: CpuSet, *, gomaxprocs: int | None, timeout: float = 600.0
) -> CoreDNS:
    """``coredns -conf PATH`` on ``cpus`` with ``GOMAXPROCS`` (None: unset), returned once ``/ready``
    is 200 and it answers the cluster zone's SOA."""
    env = {key: value for key, value in os.environ.items() if key != "GOMAXPROCS"}
    if gomaxprocs is not None:
        env["GOMAXPROCS"] = str(gomaxprocs)
    command = [str(binary()), "-conf", str(corefile.path)]  # built (or found) before the clock starts
    started = time.monotonic()
    server = CoreDNS("coredns", popen(command, log, cpus, env), corefile.ports.dns, log, started=started)
    try:
        server.ready_at = wait_ready(corefile.ports.ready, server, timeout)
        wait_answering(server, ("cluster.local",), timeout)
    except BaseException:
        server.stop()
        raise
    return server
