"""Running dnsperf against 127.0.0.1 and reading its statistics."""

from __future__ import annotations

import re
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import HOST, die_with_parent

_NUMBERS = {
    "sent": r"Queries sent:\s+(\d+)",
    "completed": r"Queries completed:\s+(\d+)",
    "lost": r"Queries lost:\s+(\d+)",
    "run_time": r"Run time \(s\):\s+([\d.]+)",
    "qps": r"Queries per second:\s+([\d.]+)",
    "avg_latency": r"Average Latency \(s\):\s+([\d.]+)",
    "latency_stddev": r"Latency StdDev \(s\):\s+([\d.]+)",
}
_RCODE = re.compile(r"([A-Z]+) (\d+) \(")


@dataclass(frozen=True, slots=True)
class Load:
    """dnsperf settings: ``-c clients -q outstanding -l seconds``."""

    queries: Path
    clients: int = 8
    outstanding: int = 100
    seconds: float = 10.0
    cpu: int = 0


@dataclass(frozen=True, slots=True)
class Stats:
    sent: int
    completed: int
    lost: int
    run_time: float
    qps: float
    avg_latency: float  # seconds
    latency_stddev: float  # seconds
    rcodes: dict[str, int] = field(default_factory=dict)


def parse(output: str) -> Stats:
    """The statistics block of dnsperf's output; ``ValueError`` when a figure is missing."""
    values: dict[str, float] = {}
    for key, pattern in _NUMBERS.items():
        match = re.search(pattern, output)
        if match is None:
            raise ValueError(f"dnsperf output has no {key!r}")
        values[key] = float(match.group(1))
    codes = re.search(r"Response codes:\s+(.*)", output)
    rcodes = {name: int(n) for name, n in _RCODE.findall(codes.group(1))} if codes else {}
    return Stats(
        sent=int(values["sent"]),
        completed=int(values["completed"]),
        lost=int(values["lost"]),
        run_time=values["run_time"],
        qps=values["qps"],
        avg_latency=values["avg_latency"],
        latency_stddev=values["latency_stddev"],
        rcodes=rcodes,
    )


def command(load: Load, port: int, *, once: bool = False) -> list[str]:
    """The pinned dnsperf command line; ``once`` sends the query file a single time instead."""
    limit = ["-n", "1"] if once else ["-l", f"{load.seconds:g}"]
    return [
        "taskset", "-c", str(load.cpu),
        "dnsperf", "-s", HOST, "-p", str(port), "-d", str(load.queries),
        "-c", str(load.clients), "-q", str(load.outstanding), *limit,
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one dnsperf process printed, the CPU seconds it used and how long it ran."""

    text: str
    cpu: float
    wall: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(load: Load, port: int, output: Path, *, once: bool = False, timeout: float | None = None) -> Outcome:
    """Run dnsperf to completion within ``timeout`` seconds and save what it printed to ``output``."""
    timeout = timeout if timeout is not None else load.seconds + 30
    cpu, start = _children_cpu(), time.monotonic()
    result = subprocess.run(
        command(load, port, once=once),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=die_with_parent,
    )
    wall, cpu = time.monotonic() - start, _children_cpu() - cpu
    text = result.stdout + result.stderr
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    if result.returncode != 0:
        raise RuntimeError(f"dnsperf exited with {result.returncode}; see {output}")
    return Outcome(text, cpu, wall)


def version() -> str:
    result = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True, timeout=10, check=False)
    match = re.search(r"Version (\S+)", result.stdout + result.stderr)
    return match.group(1) if match else "unknown"
