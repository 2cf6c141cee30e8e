"""kdns as the benchmarks run it: ``kdns serve`` as a child process on 127.0.0.1, and what it tells.

``start`` is the one way to run it: from a snapshot or following an API server (``--kubeconfig``), one
process or ``--workers N``, ``--no-forward`` or forwarding to a loopback upstream, with its metrics on
127.0.0.1 or without; or as a Corefile says (``--corefile``, the one CoreDNS runs beside it). It returns
once kdns has logged that it is ready and answers its zones' SOA. The
``Kdns`` it returns reads kdns's metrics, its log (each line with when it was seen and when kdns wrote
it) and the CPU time and memory of all its processes. ``dump_zones`` is ``kdns dump``, split by zone.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.lib.coredns import Corefile
from bench.lib.metrics import Metrics, scrape
from bench.lib.processes import CpuSet, popen
from bench.lib.servers import HOST, READY, ZONES, Server, free_port, wait_answering, wait_ready

_WORKERS_READY = re.compile(r"ready: (\d+) workers \(pids ([\d, ]+)\) sharing 127\.0\.0\.1 port (\d+)")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) ")
_PROBLEMS = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback", "Exception")
# ``trace_gc``: kdns started through this, logging every garbage collection of 5 ms or more
GC_TRACE = """\
import gc, sys, time
_start = [0.0]
def _traced(phase, info):
    if phase == "start":
        _start[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _start[0]) * 1000
    if ms >= 5:
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + ",%03d" % (now % 1 * 1000)
        print(f"{stamp} GC gc: generation {info['generation']} took {ms:.1f} ms", file=sys.stderr, flush=True)
gc.callbacks.append(_traced)
from kdns.cli import main
sys.exit(main(sys.argv[1:]))
"""


def command(*, trace_gc: bool = False) -> list[str]:
    """The ``kdns`` command of this interpreter's environment (through ``GC_TRACE`` with ``trace_gc``)."""
    if trace_gc:
        return [sys.executable, "-c", GC_TRACE]
    script = Path(sys.executable).with_name("kdns")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kdns"]


@dataclass
class Kdns(Server):
    """A running ``kdns serve``: the process started (with ``--workers N``, the supervisor), the workers
    it forked, and where its metrics are."""

    metrics_port: int | None = None
    workers: list[int] = field(default_factory=list)  # the workers' pids under --workers N
    started: float = 0.0  # time.monotonic() just before the spawn
    trace_gc: bool = False  # logs its garbage collections (``GC_TRACE``)
    ready_at: float | None = None  # time.monotonic() when its /ready first said 200 (``Corefile``)

    @property
    def pids(self) -> list[int]:
        return [self.pid, *self.workers]

    @property
    def answering(self) -> list[int]:
        """The pids that answer queries: the workers, or the one process."""
        return self.workers or [self.pid]

    def check_alive(self) -> None:
        super().check_alive()
        for pid in self.workers:
            if not Path(f"/proc/{pid}").exists():
                raise RuntimeError(f"{self.name}: worker {pid} is gone; see {self.log}")

    def metrics(self) -> Metrics:
        """A scrape of its ``/metrics`` (with workers, the supervisor's sum of theirs)."""
        if self.metrics_port is None:
            raise RuntimeError(f"{self.name} was started without metrics")
        return scrape(self.metrics_port)

    def problems(self) -> list[str]:
        """Its log lines at WARNING and above, and tracebacks."""
        self.tail.poll()
        return [line for line in self.tail.lines if any(mark in line for mark in _PROBLEMS)]


def start(
    *,
    log: Path,
    cpus: CpuSet,
    snapshot: Path | None = None,
    kubeconfig: Path | None = None,
    corefile: Corefile | None = None,
    upstream: str | None = None,
    workers: int = 1,
    metrics: bool = False,
    extra: Sequence[str] = (),
    name: str = "kdns",
    timeout: float = 120.0,
    trace_gc: bool = False,
) -> Kdns:
    """``kdns serve`` on ``cpus`` answering the ``snapshot`` or following the API server of
    ``kubeconfig``, its output to ``log``.

    ``--no-forward`` keeps every packet on loopback (no upstream, no loop probe); ``upstream``
    (``127.0.0.1:PORT``) forwards outside names there instead. One process listens on ``--port 0`` and
    says which port in its ready line; ``workers`` above 1 runs ``--workers N`` on a free port and waits
    for every worker's ready line too. ``metrics`` serves ``/metrics`` on a free port of 127.0.0.1.
    ``extra`` are further options of ``kdns serve``.

    ``corefile`` instead configures everything (``--corefile``, with ``workers``): where it listens,
    what it follows and forwards to, its metrics; kdns is then started once its ``/ready`` says 200
    (``ready_at``), which is when the ``kubernetes`` plugin has synced."""
    workers_flag = ["--workers", str(workers)] if workers > 1 else []
    if corefile is not None:
        if (snapshot, kubeconfig, upstream, metrics, *extra) != (None, None, None, False):
            raise ValueError("a Corefile configures everything but --workers")
        port, metrics_port = corefile.ports.dns, corefile.ports.metrics
        options = ["--corefile", str(corefile.path), *workers_flag]
    else:
        if (snapshot is None) == (kubeconfig is None):
            raise ValueError("kdns follows either a snapshot or a kubeconfig")
        if upstream is not None and not upstream.startswith(f"{HOST}:"):
            raise ValueError(f"upstream {upstream!r} is not on {HOST}")
        source = ["--snapshot", str(snapshot)] if snapshot is not None else ["--kubeconfig", str(kubeconfig)]
        forward = ["--upstream", upstream] if upstream is not None else ["--no-forward"]
        metrics_port = free_port() if metrics else None
        served = ["--metrics", f"{HOST}:{metrics_port}"] if metrics_port is not None else []
        port = free_port() if workers > 1 else 0
        options = [*source, "--listen", HOST, "--port", str(port), *workers_flag, *forward, *served, *extra]
    argv = [*command(trace_gc=trace_gc), "serve", *options]
    started = time.monotonic()
    process = popen(argv, log, cpus)
    kdns = Kdns(name, process, port, log, metrics_port=metrics_port, started=started, trace_gc=trace_gc)
    try:
        if corefile is not None:
            kdns.ready_at = wait_ready(corefile.ports.ready, kdns, timeout)
        if workers > 1:
            [(supervisor, _)] = kdns.tail.wait_for(_WORKERS_READY, kdns, timeout)
            kdns.workers = [int(pid) for pid in supervisor[2].split(", ")]
            if int(supervisor[3]) != port:
                raise RuntimeError(f"{name} listens on port {supervisor[3]}, not {port}")
            kdns.tail.wait_for(READY, kdns, timeout, count=workers)
        else:
            [(ready, _)] = kdns.tail.wait_for(READY, kdns, timeout)
            if int(ready[1]) != port and corefile is not None:
                raise RuntimeError(f"{name} listens on port {ready[1]}, not {port}")
            kdns.port = int(ready[1])
        wait_answering(kdns, ZONES, timeout)
    except BaseException:
        kdns.stop()
        raise
    return kdns


def logged_at(line: str) -> float | None:
    """When kdns wrote a log line, on ``time.monotonic()``'s clock (its asctime has milliseconds)."""
    match = _STAMP.match(line)
    if match is None:
        return None
    wall = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").timestamp() + int(match[2]) / 1000  # local time
    return wall - (time.time() - time.monotonic())


def split_zones(dump: str) -> dict[str, str]:
    """``kdns dump`` text -> zone-file text per apex, from its ``$ORIGIN`` lines; comments dropped."""
    zones: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in dump.splitlines():
        if line.startswith("$ORIGIN"):
            current = zones.setdefault(line.split()[1].rstrip(".").lower(), [])
        if current is not None and line.strip() and not line.lstrip().startswith(";"):
            current.append(line)
    return {apex: "\n".join(lines) + "\n" for apex, lines in zones.items()}


def dump_zones(snapshot: Path, timeout: float = 300.0) -> dict[str, str]:
    """The zones kdns would serve for ``snapshot`` (``kdns dump``), zone-file text per apex."""
    argv = [*command(), "dump", "--snapshot", str(snapshot)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)
    return split_zones(result.stdout)
