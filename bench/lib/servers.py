"""The servers under test as child processes on 127.0.0.1: what each one is (a process, its port, its
log; its CPU time, memory and pinning; stopping it), waiting until one answers, and the references kdns
is measured against: Knot DNS and the Python servers ``bench.minimal_server`` (on uvloop and on asyncio)
and ``bench.dnslib_server``. kdns itself is started by ``bench.lib.kdns``.

Every wait is bounded; children get SIGTERM when the benchmark dies (``processes.pinned``) and are
stopped by ``Server.stop``.
"""

from __future__ import annotations

import http.client
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from bench.lib.processes import CpuSet, pin_process, popen, process_cpu, process_memory

HOST = "127.0.0.1"
ZONES = ("cluster.local", "in-addr.arpa", "ip6.arpa")
READY = re.compile(r"ready: listening on 127\.0\.0\.1 port (\d+)")
HTTP_OK = 200


class LogTail:
    """The lines a child writes to its log file, read as they come, each with when it was first seen
    (``time.monotonic()``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self.seen: list[float] = []
        self._offset = 0
        self._partial = ""

    def poll(self) -> list[str]:
        """The lines completed since the last poll."""
        with self.path.open("r", errors="replace") as stream:
            stream.seek(self._offset)
            text = stream.read()
            self._offset = stream.tell()
        *complete, self._partial = (self._partial + text).split("\n")
        self.lines += complete
        self.seen += [time.monotonic()] * len(complete)
        return complete

    def wait_for(
        self, pattern: re.Pattern[str], server: Server, timeout: float, count: int = 1
    ) -> list[tuple[re.Match[str], float]]:
        """The first ``count`` lines matching ``pattern`` (from the start of the log) with when each was
        seen, once the log holds that many; ``server`` must stay alive meanwhile."""
        deadline = time.monotonic() + timeout
        found: list[tuple[re.Match[str], float]] = []
        scanned = 0
        while True:
            self.poll()
            for line, at in zip(self.lines[scanned:], self.seen[scanned:], strict=True):
                if match := pattern.search(line):
                    found.append((match, at))
            scanned = len(self.lines)
            if len(found) >= count:
                return found[:count]
            server.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern.pattern!r} in {self.path} after {timeout:.0f} s")
            time.sleep(0.005)

    def matching(self, text: str) -> list[str]:
        """The lines so far that hold ``text``."""
        self.poll()
        return [line for line in self.lines if text in line]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log: Path
    tail: LogTail = field(init=False)

    def __post_init__(self) -> None:
        self.tail = LogTail(self.log)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pids(self) -> list[int]:
        """Every process of the server."""
        return [self.pid]

    def cpu_times(self) -> tuple[float, float]:
        """User and system CPU seconds of its processes and all their threads, those gone included."""
        times = [process_cpu(pid) for pid in self.pids]
        return sum(user for user, _ in times), sum(system for _, system in times)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of its processes and all their threads."""
        return sum(self.cpu_times())

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM in KiB, added up over its processes (pages they share count in each)."""
        values: dict[str, int] = {}
        for pid in self.pids:
            for key, kib in process_memory(pid).items():
                values[key] = values.get(key, 0) + kib
        return values

    def rss_mb(self) -> float:
        return self.memory_kib().get("VmRSS", 0) / 1024

    def pin(self, cpus: CpuSet) -> int:
        """Keep every thread on ``cpus``; returns how many had to be moved.

        taskset pins the process at start, but a server may move its own threads afterwards (knotd
        binds UDP worker ``i`` to CPU ``i % ncpus``)."""
        return sum(pin_process(pid, cpus) for pid in self.pids)

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


def probe_ok(port: int, path: str = "/ready", timeout: float = 1.0) -> bool:
    """Whether ``http://127.0.0.1:PORT/PATH`` answers 200 (a health or readiness probe)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as reply:
            return reply.status == HTTP_OK
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return False  # HTTPException: e.g. a connection to the not yet bound port that met itself


def wait_ready(port: int, server: Server, timeout: float, interval: float = 0.01) -> float:
    """Poll the readiness probe on ``port`` every ``interval`` seconds while ``server`` lives; the
    ``time.monotonic()`` of its first 200."""
    deadline = time.monotonic() + timeout
    while not probe_ok(port):
        server.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server.name}: /ready on port {port} not 200 after {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic()


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


def start_announced(name: str, command: list[str], log: Path, cpu: CpuSet, timeout: float = 120.0) -> Server:
    """Start a server that prints ``ready: listening on 127.0.0.1 port N`` and wait until it answers."""
    server = Server(name, popen(command, log, cpu), 0, log)
    try:
        [(ready, _)] = server.tail.wait_for(READY, server, timeout)
        server.port = int(ready[1])
        wait_answering(server, ZONES, timeout)
    except BaseException:
        server.stop()
        raise
    return server


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
    server = Server("knot", popen([knotd, "-c", str(config)], log, cpu), port, log)
    try:
        wait_answering(server, tuple(zones), timeout)
    except BaseException:
        server.stop()
        raise
    return server
