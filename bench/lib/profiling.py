"""Where a server's CPU goes under dnsperf load: py-spy for its Python functions, perf for native code.

Both sample the server at once while dnsperf loads it, from dnsperf's CPU:

- ``py-spy record --nonblocking --format raw`` writes one line per distinct stack, ``frame;frame;...
  count``, outermost first, a frame being ``function (file:line)``. Non-blocking, because blocking
  samples (py-spy stops the process for each) land where the kernel delivers the stop, at syscall exits:
  here they put some 80% of the samples in ``sendmsg`` and ``recvmsg`` while /proc says the server spends
  under half its time in the kernel. Without blocking py-spy cannot unwind native frames, so the C code a
  Python function runs (``sendto``, dict lookups, the event loop under ``Runner.run``) is charged to it;
  and CPython 3.11 saves the running frame's line only at calls, so lines are left out.
- ``perf record -F 999`` (when perf is installed) sees the CPU from below: the kernel, libpython, uvloop
  and libc, by shared object and by symbol.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.lib import dnsperf
from bench.lib.dnsperf import Load
from bench.lib.processes import popen, process_cpu
from bench.lib.servers import Server
from bench.lib.tables import table

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_PERF_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)(?:\s+\[[.k]\]\s+(.*?))?\s*$")


@dataclass
class Profile:
    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)  # innermost Python function -> samples
    inclusive: Counter[str] = field(default_factory=Counter)  # function anywhere on the stack -> samples

    def top(self, n: int) -> list[tuple[str, float, float]]:
        """``(function, own share, inclusive share)`` of the ``n`` functions with the most own samples."""
        total = self.samples or 1
        return [
            (name, count / total, self.inclusive[name] / total) for name, count in self.own.most_common(n)
        ]


def pyspy_executable() -> str | None:
    """py-spy beside this interpreter (the venv) or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def function_of(frame: str) -> str:
    """``function (file)``: a py-spy frame without its line number."""
    match = _FRAME.match(frame.strip())
    return f"{match.group('name')} ({match.group('file')})" if match else frame.strip()


def summarise(raw: str) -> Profile:
    """Own and inclusive samples per function from py-spy's raw (collapsed stack) output."""
    profile = Profile()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        functions = [function_of(frame) for frame in stack.split(";")]
        profile.samples += count
        profile.own[functions[-1]] += count
        for name in set(functions):
            profile.inclusive[name] += count
    return profile


def perf_report(data: Path, sort: str, n: int) -> list[tuple[str, float]]:
    """``perf report --sort SORT``'s top ``n`` rows as ``(what, share)``."""
    command = ["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    rows = []
    for line in result.stdout.splitlines():
        match = _PERF_LINE.match(line)
        if match:
            dso, symbol = match.group(2), match.group(3)
            rows.append((f"{symbol} ({dso})" if symbol else dso, float(match.group(1)) / 100))
    return rows[:n]


def record(server: Server, load: Load, seconds: float, out: Path) -> dict[str, Any]:
    """Profile ``server`` for ``seconds`` with py-spy and perf at once while dnsperf loads it."""
    spy, perf = pyspy_executable(), shutil.which("perf")
    if spy is None and perf is None:
        return {"error": "neither py-spy (pip install py-spy) nor perf is installed"}
    raw, perf_data = out / "pyspy-kdns.txt", out / "perf-kdns.data"
    profilers: dict[str, list[str]] = {}
    if spy:
        profilers["py-spy"] = [
            spy, "record", "--nonblocking", "--rate", "200", "--format", "raw", "--output", str(raw),
            "--pid", str(server.pid), "--duration", f"{seconds:g}",
        ]  # fmt: skip
    if perf:
        profilers["perf"] = [
            perf, "record", "-F", "999", "-p", str(server.pid), "-o", str(perf_data), "--",
            "sleep", f"{seconds:g}",
        ]  # fmt: skip
    busy = Load(load.queries, load.clients, load.outstanding, seconds + 3, load.cpu)
    children: list[subprocess.Popen] = []
    returncodes: dict[str, int | None] = {}
    try:
        children.append(
            popen(dnsperf.command(busy, server.port), out / "dnsperf-kdns-profiled.txt", load.cpu)
        )
        time.sleep(1.0)
        started = {
            name: popen(command, out / f"{name}-kdns.log", load.cpu) for name, command in profilers.items()
        }
        children += started.values()
        for name, child in started.items():
            returncodes[name] = child.wait(seconds + 60)
        children[0].wait(busy.seconds + 30)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    text = (out / "dnsperf-kdns-profiled.txt").read_text(encoding="utf-8", errors="replace")
    outcome: dict[str, Any] = {"seconds": seconds, "qps_while_profiled": dnsperf.parse(text).qps}
    if returncodes.get("py-spy") == 0 and raw.exists():
        profile = summarise(raw.read_text(encoding="utf-8", errors="replace"))
        outcome["pyspy"] = {"samples": profile.samples, "functions": profile.top(12), "raw": raw.name}
    elif spy:
        outcome["pyspy"] = {"error": f"py-spy exited with {returncodes.get('py-spy')}; see py-spy-kdns.log"}
    if returncodes.get("perf") == 0 and perf_data.exists():
        outcome["perf"] = {
            "dsos": perf_report(perf_data, "dso", 8),
            "symbols": perf_report(perf_data, "dso,sym", 15),
        }
        perf_data.unlink()
    elif perf:
        outcome["perf"] = {"error": f"perf exited with {returncodes.get('perf')}; see perf-kdns.log"}
    return outcome


# -- recording a process between two moments (a relist) -------------------------------------------------
@dataclass
class Recording:
    """py-spy and perf recording one process until ``stop_recording``."""

    raw: Path  # py-spy's collapsed stacks
    perf_data: Path
    children: dict[str, subprocess.Popen] = field(default_factory=dict)
    started: float = 0.0


def start_recording(pid: int, out: Path, name: str, cpu: int, *, rate: int = 250) -> Recording:
    """Start py-spy (``--nonblocking``) and perf on ``pid`` from ``cpu``; they record until stopped."""
    recording = Recording(out / f"pyspy-{name}.txt", out / f"perf-{name}.data")
    for stale in (recording.raw, recording.perf_data):
        stale.unlink(missing_ok=True)
    spy, perf = pyspy_executable(), shutil.which("perf")
    commands: dict[str, list[str]] = {}
    if spy:
        commands["py-spy"] = [
            spy, "record", "--nonblocking", "--gil", "--rate", str(rate), "--format", "raw", "--output",
            str(recording.raw), "--pid", str(pid), "--duration", "600",
        ]  # fmt: skip
    if perf:
        commands["perf"] = [perf, "record", "-F", "999", "-p", str(pid), "-o", str(recording.perf_data)]
    for tool, command in commands.items():
        recording.children[tool] = popen(command, out / f"{tool}-{name}.log", cpu)
    recording.started = time.monotonic()
    return recording


def stop_recording(recording: Recording, *, functions: int = 15, symbols: int = 15) -> dict[str, Any]:
    """Stop the recorders (SIGINT, as Ctrl-C: both write what they have) and summarise what they saw."""
    seconds = time.monotonic() - recording.started
    profiler_cpu = {}
    for tool, child in recording.children.items():
        if child.poll() is None:
            with contextlib.suppress(OSError):
                profiler_cpu[tool] = sum(process_cpu(child.pid))
            child.send_signal(signal.SIGINT)
    for child in recording.children.values():
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
    outcome: dict[str, Any] = {"seconds": seconds, "profiler_cpu_s": profiler_cpu}
    if "py-spy" in recording.children:
        if recording.raw.exists():
            raw = recording.raw.read_text(encoding="utf-8", errors="replace")
            profile = summarise(raw)
            outcome["pyspy"] = {
                "samples": profile.samples,
                "functions": profile.top(functions),
                "inclusive": inclusive_top(profile, functions),
                "roles": roles(raw),
                "raw": recording.raw.name,
            }
        else:
            outcome["pyspy"] = {
                "error": f"py-spy wrote nothing (exit {recording.children['py-spy'].returncode})"
            }
    else:
        outcome["pyspy"] = {"error": "py-spy is not installed"}
    if "perf" in recording.children and recording.perf_data.exists():
        every = perf_report(recording.perf_data, "dso,sym", 100_000)
        outcome["perf"] = {
            "dsos": perf_report(recording.perf_data, "dso", 8),
            "symbols": every[:symbols],
            "groups": symbol_groups(every),
        }
        recording.perf_data.unlink()
    else:
        outcome["perf"] = {"error": "perf is not installed or wrote nothing"}
    return outcome


def inclusive_top(profile: Profile, n: int) -> list[tuple[str, float, float]]:
    """``(function, own share, inclusive share)`` of the ``n`` functions with the most inclusive samples,
    the outermost frames every stack has (thread entry points, ``<module>``) left out."""
    total = profile.samples or 1
    ranked = [
        (name, count)
        for name, count in profile.inclusive.most_common()
        if not name.startswith("<module>") and not name.endswith(("(threading.py)", "(kdns/cli.py)"))
    ]
    return [(name, profile.own[name] / total, count / total) for name, count in ranked[:n]]


# Which thread a py-spy stack ran on: the first role with a marker (a file or function name) in it. A
# stack read while the process runs can come back cut short (``--nonblocking``); the later markers place
# those by the code they reached.
REFLECTOR = "reflector threads: list, read, parse JSON, convert"
LOOP = "event loop: apply to the zone, answer queries"
ROLES = (
    (REFLECTOR, ("reflector.py",)),
    (LOOP, ("runners.py", "kdns/app.py")),
    (REFLECTOR, ("convert.py", "urllib3/", "json/", "ipaddress.py", "socket.py", "http/client.py")),
    (LOOP, ("kdns/zone/", "_apply_forever", "responder.py", "kdns/transport/")),
)


def roles(raw: str) -> list[tuple[str, float]]:
    """Shares of the samples by the thread they ran on (``ROLES``), largest first."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        role = next((label for label, markers in ROLES if any(m in stack for m in markers)), "unattributed")
        counts[role] += int(count_text)
    total = sum(counts.values()) or 1
    return [(role, count / total) for role, count in counts.most_common()]


# Native symbols by what they do, for the perf summary: first match wins
SYMBOL_GROUPS = (
    ("garbage collection (CPython's gc)", re.compile(
        r"^(gc_collect|collect|deduce_unreachable|move_unreachable|move_legacy_finalizers|subtract_refs|"
        r"update_refs|visit_decref|visit_reachable|visit_move|dict_traverse|list_traverse|tupletraverse|"
        r"subtype_traverse|func_traverse|_PyGC_|gc_)"
    )),
    ("the JSON scanner's own code (_json)", re.compile(r"\(_json\.")),
    ("kernel", re.compile(r"\[kernel\.kallsyms\]")),
    ("allocating and freeing objects", re.compile(
        r"^(_PyObject_Malloc|_PyObject_Free|_PyObject_Realloc|_PyObject_GC_|PyObject_GC_|pymalloc|_Py_Dealloc|"
        r"_Py_NewReference|object_dealloc|subtype_dealloc|dict_dealloc|list_dealloc|tupledealloc|"
        r"unicode_dealloc|free_keys_object|new_keys_object|dictresize|_PyTrash_|_PyMem_|PyMem_|"
        r"malloc|free|_int_malloc|_int_free|cfree|realloc|__libc_)"
    )),
    ("dict, attribute and type lookups", re.compile(
        r"^(_Py_dict_lookup|unicodekeys_lookup|dict_get|dict_subscript|_PyType_Lookup|insertdict|"
        r"insert_to_emptydict|_PyDict_|PyDict_|dict_ass_sub|lookdict|_PyObject_GenericGetAttr|"
        r"PyObject_GetAttr|_PyObject_LookupAttr|update_one_slot|slot_tp_)"
    )),
    ("the interpreter loop (the Python code itself)", re.compile(r"^(_PyEval_EvalFrameDefault|_PyFrame_)")),
)  # fmt: skip


def symbol_groups(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """perf's self time by ``SYMBOL_GROUPS`` (each ``symbol (shared object)`` row counted once)."""
    shares: Counter[str] = Counter()
    for name, share in rows:
        group = next((label for label, pattern in SYMBOL_GROUPS if pattern.search(name)), "everything else")
        shares[group] += share
    return shares.most_common()


# -- profiles as tables of bench/README.md --------------------------------------------------------------
def function_table(rows: list[list[Any]]) -> list[str]:
    """``Profile.top`` or ``inclusive_top`` rows: each function's own and inclusive share."""
    cells = [[f"`{name}`", f"{own:.1%}", f"{inclusive:.1%}"] for name, own, inclusive in rows]
    return table(["Python function (file)", "Own", "Inclusive"], cells)


def share_table(what: str, rows: list[list[Any]], *, code: bool = True) -> list[str]:
    """``(name, share)`` rows (perf's shared objects or symbols, threads, groups of native code) under
    the heading ``what``; ``code`` sets the names as code."""
    return table([what, "Share"], [[f"`{name}`" if code else name, f"{share:.1%}"] for name, share in rows])
