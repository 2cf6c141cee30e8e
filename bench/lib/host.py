"""Where a benchmark ran: the machine and the versions of kdns and of the tools, as each report states
them."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from typing import Any

from bench.lib import dnsperf
from bench.lib.processes import ROOT


def _sh(command: list[str], timeout: float = 30) -> str:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip()


def date() -> str:
    """Now, as a report dates its run: "2026-05-09 18:41 UTC"."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def machine() -> dict[str, Any]:
    """The CPU model, how many CPUs this process may use, the kernel and the benchmark's niceness."""
    models = [line.split(":", 1)[1].strip() for line in _sh(["lscpu"]).splitlines() if "Model name" in line]
    model = models[0] if models else platform.processor() or "unknown"
    return {
        "cpu": model,
        "nproc": _sh(["nproc"]) or str(os.cpu_count()),
        "kernel": platform.release(),
        "nice": os.nice(0),
    }


def versions() -> dict[str, Any]:
    """kdns's commit (and whether kdns/ has uncommitted changes), Python and the libraries and tools."""
    knot = _sh(["knotd", "--version"]).rsplit(" ", 1)[-1] or "unknown"
    try:
        import uvloop  # noqa: F401, PLC0415

        event_loop = "uvloop"
    except ImportError:
        event_loop = "asyncio event loop"
    return {
        "kdns_commit": _sh(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
        "kdns_dirty": bool(_sh(["git", "status", "--porcelain", "--", "kdns"])),
        "python": platform.python_version(),
        "event_loop": event_loop,
        "knot": knot,
        "dnsperf": dnsperf.version(),
        "uvloop": _version("uvloop"),
        "dnslib": _version("dnslib"),
        "py_spy": _version("py-spy"),
        "perf": _sh(["perf", "--version"]).rsplit(" ", 1)[-1] or "none",
        "kubernetes_client": _version("kubernetes"),
    }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def describe(machine: dict[str, Any]) -> str:
    """``machine()`` for a report: "MODEL, 2 CPUs, Linux 6.1", and the niceness when above the default."""
    nice = machine.get("nice", 0)
    niceness = (
        f"; the benchmark and every server and client it started ran at nice {nice}" if nice < 0 else ""
    )
    return f"{machine['cpu']}, {machine['nproc']} CPUs, Linux {machine['kernel']}{niceness}"


def commit(versions: dict[str, Any]) -> str:
    """kdns's commit for a report, with a word on uncommitted changes in kdns/."""
    return versions["kdns_commit"] + (" with uncommitted changes in kdns/" if versions["kdns_dirty"] else "")
