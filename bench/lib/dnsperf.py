"""Running dnsperf against 127.0.0.1 and reading its statistics.

dnsperf 2.10 prints the average latency and its standard deviation, no percentiles. With ``-v`` it
prints one line per answer, ``> NOERROR name type 0.000123``, from which ``latencies`` reads the
latencies for ``bench.lib.stats``; printing costs dnsperf CPU, so runs that measure the maximum rate go
without it.
"""

from __future__ import annotations

import re
import resource
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.lib.processes import CpuSet, pinned
from bench.lib.servers import HOST

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
    """dnsperf settings: ``-c clients -q outstanding -l seconds``, and ``-Q rate`` when ``rate`` is set."""

    queries: Path
    clients: int = 8
    outstanding: int = 100
    seconds: float = 10.0
    cpu: CpuSet = 0
    rate: int | None = None

    def flags(self) -> str:
        """The load as dnsperf options, for the report."""
        rate = f" -Q {self.rate}" if self.rate else ""
        return f"-c {self.clients} -q {self.outstanding} -l {self.seconds:g}{rate}"


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

    def brief(self) -> dict[str, Any]:
        """The figures a report shows: QPS, counts, average latency in ms, response codes."""
        figures = asdict(self)
        return {key: figures[key] for key in ("qps", "sent", "completed", "lost")} | {
            "avg_latency_ms": self.avg_latency * 1e3,
            "rcodes": self.rcodes,
        }


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


def command(
    load: Load, port: int, *, once: bool = False, verbose: bool = False, extra: tuple[str, ...] = ()
) -> list[str]:
    """The dnsperf command line (to be run on ``load.cpu``); ``once`` sends the query file a single time
    instead; ``verbose`` adds ``-v`` (a line per answer); ``extra`` are further options (``-m tcp``)."""
    limit = ["-n", "1"] if once else ["-l", f"{load.seconds:g}"]
    rate = ["-Q", str(load.rate)] if load.rate else []
    return [
        "dnsperf", "-s", HOST, "-p", str(port), "-d", str(load.queries),
        "-c", str(load.clients), "-q", str(load.outstanding), *limit, *rate, *(["-v"] if verbose else []),
        *extra,
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


def run(
    load: Load,
    port: int,
    output: Path,
    *,
    once: bool = False,
    verbose: bool = False,
    timeout: float | None = None,
    extra: tuple[str, ...] = (),
) -> Outcome:
    """Run dnsperf to completion within ``timeout`` seconds and save what it printed to ``output``.

    Its standard output goes straight to ``output`` (a file, so dnsperf buffers it), then is read back."""
    timeout = timeout if timeout is not None else load.seconds + 30
    output.parent.mkdir(parents=True, exist_ok=True)
    cpu, start = _children_cpu(), time.monotonic()
    with output.open("wb") as out:
        result = subprocess.run(
            pinned(command(load, port, once=once, verbose=verbose, extra=extra), load.cpu),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    wall, cpu = time.monotonic() - start, _children_cpu() - cpu
    text = output.read_text(encoding="utf-8", errors="replace")
    if result.returncode != 0:
        raise RuntimeError(f"dnsperf exited with {result.returncode}; see {output}")
    return Outcome(text, cpu, wall)


def latencies(text: str) -> list[float]:
    """The latencies in seconds of the answers a ``-v`` run printed, sorted."""
    values = []
    for line in text.splitlines():
        if line.startswith("> "):
            try:
                values.append(float(line.rsplit(" ", 1)[1]))
            except ValueError:
                continue  # a lost query's line carries no latency
    values.sort()
    return values


def drop_answer_lines(output: Path, text: str) -> None:
    """Rewrite a ``-v`` run's output without its per-answer lines, which run to tens of megabytes."""
    kept = [line for line in text.splitlines() if not line.startswith("> ")]
    output.write_text("\n".join(kept) + "\n", encoding="utf-8")


def version() -> str:
    result = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True, timeout=10, check=False)
    match = re.search(r"Version (\S+)", result.stdout + result.stderr)
    return match.group(1) if match else "unknown"
