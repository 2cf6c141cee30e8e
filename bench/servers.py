"""The servers under test as child processes on 127.0.0.1, pinned to one CPU: kdns, Knot DNS, and the
Python references (``bench.minimal_server`` on uvloop and on asyncio, ``bench.dnslib_server``).

Children get SIGTERM when the harness dies (``PR_SET_PDEATHSIG``) and are stopped by ``Server.stop``;
every wait is bounded.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
ZONES = ("cluster.local", "in-addr.arpa", "ip6.arpa")
_PR_SET_PDEATHSIG = 1
_READY = re.compile(r"ready: listening on 127\.0\.0\.1 port (\d+)")
_WORKERS_READY = re.compile(r"ready: (\d+) workers \(pids ([\d, ]+)\) sharing 127\.0\.0\.1 port (\d+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _on_alarm(signum: int, frame: object) -> None:
    raise TimeoutError("the benchmark ran past its time limit")


def _on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def bound_in_time(seconds: int) -> None:
    """End this benchmark (and, through the cleanup that follows, its servers) after ``seconds``, or on
    SIGTERM."""
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)


CpuSet = int | tuple[int, ...]  # one CPU, or several (``taskset -c 0,1``)


def cpu_set(cpus: CpuSet) -> set[int]:
    return {cpus} if isinstance(cpus, int) else set(cpus)


def cpu_list(cpus: CpuSet) -> str:
    """``cpus`` as taskset's ``-c`` list."""
    return ",".join(str(cpu) for cpu in sorted(cpu_set(cpus)))


def process_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` and all its threads, those gone included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return utime / _CLK_TCK, stime / _CLK_TCK


def process_memory(pid: int, keys: tuple[str, ...] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """``keys`` of /proc/PID/status, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in keys:
            values[key] = int(rest.split()[0])
    return values


def proportional_kib(pid: int) -> int:
    """The process's proportional set size (Pss, /proc/PID/smaps_rollup): its resident pages, those it
    shares (e.g. copy-on-write after a fork) divided among their sharers."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def pin_process(pid: int, cpus: CpuSet) -> int:
    """Keep every thread of ``pid`` on ``cpus``; returns how many had to be moved."""
    wanted, moved = cpu_set(cpus), 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        try:
            if os.sched_getaffinity(tid) != wanted:
                os.sched_setaffinity(tid, wanted)
                moved += 1
        except ProcessLookupError:
            continue
    return moved


def die_with_parent() -> None:
    """Run in the child before exec: SIGTERM it when the harness exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_times(self) -> tuple[float, float]:
        """User and system CPU seconds of the process and all its threads, those gone included."""
        return process_cpu(self.pid)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process and all its threads."""
        return sum(self.cpu_times())

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM in KiB."""
        return process_memory(self.pid)

    def pin(self, cpu: CpuSet) -> int:
        """Keep every thread on ``cpu`` (or the CPUs listed); returns how many had to be moved.

        taskset pins the process at start, but a server may move its own threads afterwards (knotd
        binds UDP worker ``i`` to CPU ``i % ncpus``)."""
        return pin_process(self.pid, cpu)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


@dataclass
class WorkerGroup(Server):
    """``kdns serve --workers N``: the supervisor (``process``) and the worker processes it forked."""

    workers: list[int] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [self.pid, *self.workers]

    def cpu_times(self) -> tuple[float, float]:
        """User and system CPU seconds of the supervisor and every worker."""
        times = [process_cpu(pid) for pid in self.pids]
        return sum(user for user, _ in times), sum(system for _, system in times)

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM added up over the processes (pages shared after the fork count in each)."""
        values: dict[str, int] = {}
        for pid in self.pids:
            for key, kib in process_memory(pid).items():
                values[key] = values.get(key, 0) + kib
        return values

    def pin(self, cpu: CpuSet) -> int:
        return sum(pin_process(pid, cpu) for pid in self.pids)

    def check_alive(self) -> None:
        super().check_alive()
        for pid in self.workers:
            if not Path(f"/proc/{pid}").exists():
                raise RuntimeError(f"{self.name}: worker {pid} is gone; see {self.log}")


def spawn(command: list[str], log: Path, cpu: CpuSet) -> subprocess.Popen:
    """``command`` pinned to ``cpu`` with ``taskset``, run in the repository, its output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(
            ["taskset", "-c", cpu_list(cpu), *command],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (the harness starts no threads)
        )


def answers(port: int, zone: str, timeout: float = 0.5) -> bool:
    """Whether the server on ``port`` answers the SOA of ``zone`` with NOERROR."""
    query = dns.message.make_query(zone, "SOA")
    try:
        response = dns.query.udp(query, HOST, port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException):
        return False
    return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


def wait_answering(server: Server, zones: tuple[str, ...], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for zone in zones:
        while not answers(server.port, zone):
            server.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server.name} does not answer {zone} SOA after {timeout:.0f}s")
            time.sleep(0.1)


def kdns_command() -> list[str]:
    script = Path(sys.executable).with_name("kdns")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kdns"]


def wait_logged(server: Server, pattern: re.Pattern[str], count: int, deadline: float) -> list[re.Match[str]]:
    """The first ``count`` matches of ``pattern`` in the server's log, once it holds that many."""
    while len(found := list(pattern.finditer(server.log.read_text(errors="replace")))) < count:
        server.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server.name} not ready in time; see {server.log}")
        time.sleep(0.1)
    return found[:count]


def start_announced(name: str, command: list[str], log: Path, cpu: CpuSet, timeout: float = 120.0) -> Server:
    """Start a server that prints ``ready: listening on 127.0.0.1 port N`` and wait until it answers."""
    server = Server(name, spawn(command, log, cpu), 0, log)
    try:
        server.port = int(wait_logged(server, _READY, 1, time.monotonic() + timeout)[0].group(1))
        wait_answering(server, ZONES, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def start_workers(
    name: str, command: list[str], workers: int, log: Path, cpu: CpuSet, *, timeout: float = 120.0
) -> WorkerGroup:
    """Start ``command --workers N`` on a free port; wait for the supervisor's ready line (with the
    workers' pids), each worker's own, and an answer."""
    port = free_port()
    process = spawn([*command, "--port", str(port), "--workers", str(workers)], log, cpu)
    group = WorkerGroup(name, process, port, log)
    deadline = time.monotonic() + timeout
    try:
        supervisor = wait_logged(group, _WORKERS_READY, 1, deadline)[0]
        group.workers = [int(pid) for pid in supervisor.group(2).split(", ")]
        if int(supervisor.group(3)) != port:
            raise RuntimeError(f"{name} listens on port {supervisor.group(3)}, not {port}")
        wait_logged(group, _READY, workers, deadline)
        wait_answering(group, ZONES, timeout)
    except BaseException:
        group.stop()
        raise
    return group


def start_kdns(
    snapshot: Path,
    log: Path,
    cpu: CpuSet,
    timeout: float = 120.0,
    *,
    name: str = "kdns",
    upstream: str | None = None,
    workers: int = 1,
    extra: Sequence[str] = (),
) -> Server:
    """``kdns serve --port 0``; the port is read from its ready line. Authoritative only, as Knot is here:
    ``--no-forward`` also keeps every packet on loopback (no upstream, no loop probe). ``upstream``
    (``127.0.0.1:PORT``, loopback only) forwards outside names there instead; ``workers`` above 1 runs
    ``--workers N`` on a free port."""
    if upstream is not None and not upstream.startswith(f"{HOST}:"):
        raise ValueError(f"upstream {upstream!r} is not on {HOST}")
    forward = ["--upstream", upstream] if upstream is not None else ["--no-forward"]
    command = [*kdns_command(), "serve", "--snapshot", str(snapshot), "--listen", HOST, *forward, *extra]
    if workers > 1:
        return start_workers(name, command, workers, log, cpu, timeout=timeout)
    return start_announced(name, [*command, "--port", "0"], log, cpu, timeout)


def start_minimal(loop: str, kdns_port: int, queries: Path, log: Path, cpu: int) -> Server:
    """``bench.minimal_server`` on ``loop`` ("uvloop" or "asyncio") with kdns's answers to ``queries``."""
    command = [
        sys.executable, "-m", "bench.minimal_server",
        "--kdns-port", str(kdns_port), "--queries", str(queries), "--loop", loop,
    ]  # fmt: skip
    return start_announced(f"minimal-{loop}", command, log, cpu)


def start_dnslib(kdns_port: int, queries: Path, log: Path, cpu: int) -> Server:
    """``bench.dnslib_server``: dnslib's ``DNSServer`` answering kdns's responses to ``queries``."""
    command = [
        sys.executable, "-m", "bench.dnslib_server", "--kdns-port", str(kdns_port), "--queries", str(queries),
    ]  # fmt: skip
    return start_announced("dnslib", command, log, cpu)


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
    command = [*kdns_command(), "dump", "--snapshot", str(snapshot)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    return split_zones(result.stdout)


def knot_config(directory: Path, port: int, zones: list[str]) -> str:
    """A minimal knot.conf: one UDP, TCP and background worker, zone files in ``directory``."""
    entries = "".join(f"  - domain: {zone}\n    file: {zone}.zone\n" for zone in zones)
    return (
        "server:\n"
        f"    listen: {HOST}@{port}\n"
        f"    rundir: {directory}\n"
        "    udp-workers: 1\n"
        "    tcp-workers: 1\n"
        "    background-workers: 1\n"
        "log:\n"
        "  - target: stderr\n"
        "    any: info\n"
        "database:\n"
        f"    storage: {directory / 'db'}\n"
        "template:\n"
        "  - id: default\n"
        f"    storage: {directory}\n"
        "    zonefile-sync: -1\n"
        "    zonefile-load: whole\n"
        "    journal-content: none\n"
        "zone:\n" + entries
    )


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 at the time of asking."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on 127.0.0.1")


def start_knot(zones: dict[str, str], directory: Path, cpu: CpuSet, timeout: float = 120.0) -> Server:
    """``knotd`` in the foreground, serving ``zones`` (apex -> zone-file text)."""
    knotd = shutil.which("knotd") or "/usr/sbin/knotd"
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "db").mkdir(parents=True)
    for apex, text in zones.items():
        (directory / f"{apex}.zone").write_text(text, encoding="utf-8")
    config, log, port = directory / "knot.conf", directory / "knotd.log", free_port()
    config.write_text(knot_config(directory.resolve(), port, sorted(zones)), encoding="utf-8")
    server = Server("knot", spawn([knotd, "-c", str(config)], log, cpu), port, log)
    try:
        wait_answering(server, tuple(zones), timeout)
    except BaseException:
        server.stop()
        raise
    return server
