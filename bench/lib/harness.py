"""What every benchmark command does around its measurements: one benchmark at a time on the machine,
a time limit, ``results.json``, the README it writes, and work beside the measurement (dnsperf
processes side by side, a thread of its own)."""

from __future__ import annotations

import fcntl
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.lib import dnsperf
from bench.lib.dnsperf import Load

BENCH = Path(__file__).resolve().parents[1]
LOCK = BENCH / "out" / ".lock"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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


def run_exclusively(out: Path, seconds: int, measure: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """``measure()`` while no other benchmark runs, ended after ``seconds``; its result, also written to
    ``out/results.json``. ``None`` (said on stderr) when another benchmark is running."""
    out.mkdir(parents=True, exist_ok=True)
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another benchmark is running in {LOCK.parent}")
            return None
        bound_in_time(seconds)
        try:
            result = measure()
        finally:
            signal.alarm(0)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def readme_for(quick: bool) -> Path:
    """bench/README.md, or bench/out/README.md for a quick run."""
    return BENCH / "out" / "README.md" if quick else BENCH / "README.md"


def concurrently(*jobs: tuple[Load, int, Path, tuple[str, ...]]) -> list[dnsperf.Outcome]:
    """Several dnsperf processes at once, each ``(load, port, output, extra options)``; their outcomes
    in order."""
    outcomes: list[dnsperf.Outcome | None] = [None] * len(jobs)
    errors: list[BaseException] = []

    def one(i: int, load: Load, port: int, output: Path, extra: tuple[str, ...]) -> None:
        try:
            outcomes[i] = dnsperf.run(load, port, output, extra=extra)
        except BaseException as exc:  # raised below, on the harness's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, *job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(job[0].seconds for job in jobs) + 120)
    if errors:
        raise errors[0]
    return [outcome for outcome in outcomes if outcome is not None]


class Background:
    """Work on a thread of its own (``_run``, which returns once ``_stop`` is set), until ``stop``."""

    def __init__(self, thread_name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        raise NotImplementedError
