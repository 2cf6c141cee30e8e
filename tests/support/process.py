"""``kdns`` as a child process: ``running`` serves until the test is done with it, ``run_kdns`` runs a
command (``dump``, or a ``serve`` that must refuse to start) to its exit."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from tests.support.client import HOST
from tests.support.paths import ROOT

KDNS = ("-m", "kdns")
# kdns as on a machine without uvloop, on asyncio's own event loop
NO_UVLOOP = (
    "-c",
    "import sys; sys.modules['uvloop'] = None; from kdns.cli import main; sys.exit(main(sys.argv[1:]))",
)
READY = re.compile(r"ready: listening on (?P<addrs>.+?) port (?P<port>\d+)")


@dataclasses.dataclass
class Server:
    """A running ``kdns serve``; ``log`` keeps growing with its stderr lines while it runs, ``stdout``
    is what it printed, once it has ended (with ``running(..., stdout=True)``)."""

    process: subprocess.Popen
    port: int
    log: list[str]
    reader: threading.Thread | None = None
    stdout: str = ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        if self.reader is not None:
            self.reader.join(timeout)
        return code

    def logged(self, text: str) -> list[str]:
        return [line for line in list(self.log) if text in line]


def _follow(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))


@contextmanager
def running(
    *args: str,
    timeout: float = 20,
    launcher: Sequence[str] = KDNS,
    env: Mapping[str, str] | None = None,
    stdout: bool = False,
) -> Iterator[Server]:
    """``kdns serve --port 0 ARGS`` as a child process, from when it logs its ready line.

    Without ``--upstream``, ``--resolv-conf`` or a Corefile it runs with ``--no-forward``: a test never
    reaches the machine's own resolvers. ``launcher`` is what follows the Python interpreter on the
    command line (``NO_UVLOOP``, or code that sets kdns up otherwise and calls ``kdns.cli.main`` with
    the arguments after its own); ``env`` is the whole environment (default: this process's). When the
    block ends, a kdns still running is stopped with SIGTERM, as a pod is (its workers too), and killed
    if it has not exited 10 s later; with ``stdout``, what it printed on stdout until then is kept in
    ``Server.stdout``."""
    if not {"--upstream", "--no-forward", "--corefile", "--resolv-conf"} & set(args):
        args = (*args, "--no-forward")  # never the machine's own resolvers: tests stay on loopback
    port_args = () if "--corefile" in args else ("--port", "0")  # a Corefile names its own port
    process = subprocess.Popen(
        [sys.executable, *launcher, "serve", *port_args, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
    )
    printed: list[str] = []
    printer = None
    if stdout:
        printer = threading.Thread(target=lambda: printed.extend(process.stdout), daemon=True)
        printer.start()
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
        stop(process, grace=10)
        reader.join(5)
        if printer is not None:
            printer.join(5)
            server.stdout = "".join(printed)


def stop(process: subprocess.Popen, *, grace: float) -> None:
    """Stop a child by PID as a pod is stopped: SIGTERM, then SIGKILL if it has not ended ``grace``
    seconds later."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 now (a test takes it at once)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind((HOST, port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port")


def run_kdns(
    *args: str, timeout: float = 30, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m kdns ARGS`` to its exit, its output captured; ``env`` is the whole environment
    (default: this process's)."""
    return subprocess.run(
        [sys.executable, *KDNS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )
