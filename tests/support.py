"""Shared test helpers: building zones from objects, asking the resolver, running ``kdns serve``."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kdns.cluster.convert import to_object
from kdns.config import ZoneSettings
from kdns.resolver import Resolver
from kdns.sources.snapshot import read_snapshot
from kdns.wire.records import rrset_lines
from kdns.zone.cluster_zone import ClusterZone
from kdns.zone.names import to_wire

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "zones" / "example.yaml"
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
TYPES = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "PTR": 12,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
    "SRV": 33,
    "AXFR": 252,
    "ANY": 255,
    "HTTPS": 65,
}


def example_zone(**settings: Any) -> ClusterZone:
    zone = ClusterZone(ZoneSettings(**settings))
    zone.load(read_snapshot(EXAMPLE))
    return zone


def zone_of(objects: Iterable[dict], **settings: Any) -> ClusterZone:
    zone = ClusterZone(ZoneSettings(**settings))
    zone.load(to_object(raw) for raw in objects)
    return zone


def normalise(line: str) -> str:
    return " ".join(line.split())


@dataclasses.dataclass
class Reply:
    rcode: str
    answer: list[str]
    authority: list[str]
    additional: list[str]
    aa: bool


def ask(zone: ClusterZone, name: str, qtype: str = "A", qclass: int = 1) -> Reply:
    """Ask the resolver directly and render the reply as zone-file lines (sorted within sections)."""
    resolver = Resolver(zone.index, zone.layout, zone.settings)
    answer = resolver.resolve(to_wire(name), TYPES[qtype], qclass)

    def lines(rrsets) -> list[str]:
        rendered = (normalise(line) for rrset in rrsets for line in rrset_lines(rrset))
        return sorted(re.sub(r" SOA (\S+ \S+) \d+ ", r" SOA \1 SERIAL ", line) for line in rendered)

    return Reply(
        rcode=RCODES[answer.rcode],
        answer=lines(answer.answer),
        authority=lines(answer.authority),
        additional=lines(answer.additional),
        aa=answer.authoritative,
    )


# -- Kubernetes objects for tests -----------------------------------------------------------------------
def namespace(name: str) -> dict:
    return {"kind": "Namespace", "metadata": {"name": name}}


def service(
    name: str,
    ns: str = "default",
    *,
    ip: str | list[str] | None = "10.96.1.1",
    ports: list[tuple[str, int, str]] = (),
    **spec: Any,
) -> dict:
    body: dict[str, Any] = {"ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}
    if ip == "None":
        body["clusterIP"] = "None"
    elif isinstance(ip, list):
        body["clusterIP"], body["clusterIPs"] = ip[0], ip
    elif ip:
        body["clusterIP"] = ip
    body.update(spec)
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def endpoint_slice(
    name: str,
    svc: str,
    ns: str = "default",
    *,
    addresses: Iterable[str | dict] = (),
    ports: list[tuple[str, int, str]] = (),
    address_type: str = "IPv4",
) -> dict:
    endpoints = [
        a if isinstance(a, dict) else {"addresses": [a], "conditions": {"ready": True}} for a in addresses
    ]
    return {
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
    }


# -- running the server ---------------------------------------------------------------------------------
NO_UVLOOP = (
    "import sys; sys.modules['uvloop'] = None; from kdns.cli import main; sys.exit(main(sys.argv[1:]))"
)
READY = re.compile(r"ready: listening on (?P<addrs>.+?) port (?P<port>\d+)")


@dataclasses.dataclass
class Server:
    """A running ``kdns serve``; ``log`` keeps growing with its stderr lines while it runs."""

    process: subprocess.Popen
    port: int
    log: list[str]
    reader: threading.Thread | None = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        if self.reader is not None:
            self.reader.join(timeout)
        return code

    def logged(self, text: str) -> list[str]:
        return [line for line in list(self.log) if text in line]


def _follow(stream, log: list[str]) -> None:
    for line in stream:
        log.append(line.rstrip("\n"))


@contextmanager
def running(*args: str, timeout: float = 20, uvloop: bool = True) -> Iterator[Server]:
    """``kdns serve --port 0 ARGS`` as a child process, until it logs its ready line.

    ``uvloop=False`` runs it as on a machine without uvloop, on asyncio's own event loop. Without
    ``--upstream``, ``--resolv-conf`` or a Corefile it runs with ``--no-forward``: a test never reaches
    the machine's own resolvers."""
    launcher = ["-m", "kdns"] if uvloop else ["-c", NO_UVLOOP]
    if not {"--upstream", "--no-forward", "--corefile", "--resolv-conf"} & set(args):
        args = (*args, "--no-forward")  # never the machine's own resolvers: tests stay on loopback
    port_args = () if "--corefile" in args else ("--port", "0")  # a Corefile names its own port
    process = subprocess.Popen(
        [sys.executable, *launcher, "serve", *port_args, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log: list[str] = []
    deadline = time.monotonic() + timeout
    port = None
    while port is None:
        line = process.stderr.readline()
        if not line:
            process.wait(5)
            raise AssertionError(f"kdns serve exited {process.returncode} before ready:\n" + "\n".join(log))
        log.append(line.rstrip("\n"))
        if match := READY.search(line):
            port = int(match["port"])
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("kdns serve did not get ready:\n" + "\n".join(log))
    reader = threading.Thread(target=_follow, args=(process.stderr, log), daemon=True)
    reader.start()
    server = Server(process, port, log, reader)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def eventually(check, *, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``check`` until it returns something truthy; fail with its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        time.sleep(interval)
