"""The child processes of a benchmark and what /proc says about them.

Every child is started through ``pinned``: ``taskset`` keeps it on its CPUs, and ``setpriv --pdeathsig
TERM`` sends it SIGTERM when the thread that started it ends, however the benchmark ends (safe from a
process with threads running, as a ``preexec_fn`` is not). The servers run alone on ``SERVER_CPU``;
dnsperf, the other clients and the benchmark itself on ``CLIENT_CPU``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_CPU, CLIENT_CPU = 1, 0
CpuSet = int | tuple[int, ...]  # one CPU, or several (``taskset -c 0,1``)
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_SETPRIV = shutil.which("setpriv")


def cpu_set(cpus: CpuSet) -> set[int]:
    return {cpus} if isinstance(cpus, int) else set(cpus)


def cpu_list(cpus: CpuSet) -> str:
    """``cpus`` as taskset's ``-c`` list."""
    return ",".join(str(cpu) for cpu in sorted(cpu_set(cpus)))


def pinned(command: Sequence[str], cpus: CpuSet) -> list[str]:
    """``command`` on ``cpus``, to be sent SIGTERM when the thread that starts it ends."""
    death = [_SETPRIV, "--pdeathsig", "TERM"] if _SETPRIV else []
    return ["taskset", "-c", cpu_list(cpus), *death, *command]


def popen(
    command: Sequence[str], log: Path, cpus: CpuSet, env: Mapping[str, str] | None = None
) -> subprocess.Popen:
    """Start ``command`` ``pinned`` to ``cpus``, in the repository, its output to ``log``; ``env``
    replaces the environment."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(
            pinned(command, cpus),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )


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


def machine_busy() -> float:
    """CPU seconds all CPUs have spent busy since boot: /proc/stat's user, nice, system, irq, softirq
    and steal."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields)
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK
