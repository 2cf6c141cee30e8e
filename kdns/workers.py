"""``--workers N``: N processes answering on the same address and port, one per core.

The supervisor binds every worker's UDP and TCP sockets with SO_REUSEPORT (so the kernel spreads
queries across them), forks the workers (after a snapshot is loaded, so they share it copy-on-write;
each follows the Kubernetes API itself), and serves /health, /ready and /metrics for all of them: it
asks each worker over a socket pair for its readiness and its metrics, and adds the metrics up. A
worker that dies stops the supervisor with an error, so Kubernetes restarts the pod. SIGTERM and SIGINT
go on to the workers, which finish their lameduck period and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from kdns.config import OpsSettings, ServeConfig, port_taken
from kdns.ops import http as ops_http
from kdns.ops.memory import watch_memory
from kdns.transport.listen import Shares, Where, bind

log = logging.getLogger("kdns")
# Gauges that describe one shared thing rather than a per-worker amount: not added up.
GAUGE_MERGE = {
    "kdns_zone_names": max,
    "kdns_kubernetes_synced": min,
    "kdns_kubernetes_api_up": min,
    "kdns_kubernetes_last_sync_timestamp_seconds": min,  # the worker furthest behind
    "kdns_build_info": max,
    "coredns_build_info": max,
    "coredns_plugin_enabled": max,
    "python_info": max,
}

# Each worker's own: reported with a ``worker`` label, never added up (a sum of resident memories or
# of start times means nothing).
PER_WORKER_PREFIX = "process_"

Serve = Callable[[Shares, socket.socket, ServeConfig], int]  # one worker: its sockets, line, settings


@dataclass
class Worker:
    number: int
    pid: int
    line: socket.socket
    exit_code: int | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    lock: asyncio.Lock | None = None

    async def ask(self, command: bytes) -> bytes:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(sock=self.line)
            self.lock = asyncio.Lock()
        async with self.lock:
            self.writer.write(command)
            await self.writer.drain()
            length = int.from_bytes(await self.reader.readexactly(4))
            return await self.reader.readexactly(length)


def supervise(config: ServeConfig, serve: Serve) -> int:
    """Fork ``config.workers`` processes running ``serve``; supervise them; return the exit code."""
    ports = {where: where[1] for where in config.listeners}  # port 0: the first worker's, for all
    shares: list[Shares] = []
    for _ in range(config.workers):
        share: Shares = {}
        for where in config.listeners:
            try:
                ports[where], share[where] = bind(where[0], ports[where], reuse_port=True)
            except OSError as exc:
                raise port_taken(exc, ports[where], corefile=config.corefile is not None) from None
        shares.append(share)
    worker_config = dataclasses.replace(config, ops=OpsSettings(lameduck=config.ops.lameduck))
    workers = []
    for number, share in enumerate(shares):
        ours, theirs = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            ours.close()
            code = 1
            try:
                for other in shares:
                    if other is not share:
                        _close(other)
                code = serve(share, theirs, worker_config)
            except BaseException:
                log.exception("worker %d failed", number)
            finally:
                os._exit(code)
        theirs.close()
        workers.append(Worker(number, pid, ours))
    for share in shares:
        _close(share)
    return asyncio.run(_supervise(config, workers, list(ports.items())))


def _close(share: Shares) -> None:
    for bound in share.values():
        for sock in (s for pair in bound for s in pair):
            sock.close()


async def _supervise(config: ServeConfig, workers: list[Worker], ports: list[tuple[Where, int]]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    shutting_down = False

    async def not_ready() -> list[str]:
        if shutting_down:
            return ["shutting down"]
        waiting: set[str] = set()
        for worker in workers:
            try:
                answer = await asyncio.wait_for(worker.ask(b"r"), 5)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                return [f"worker {worker.number}"]
            waiting.update(filter(None, answer.decode().split("\n")))
        return sorted(waiting)

    async def metrics() -> bytes:
        texts = []
        for worker in workers:
            text = ""  # a worker that does not answer reports nothing; the others keep their numbers
            with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
                text = (await asyncio.wait_for(worker.ask(b"m"), 10)).decode()
            texts.append(text)
        return merge_metrics(texts)

    endpoints = None
    ops = config.ops
    if ops.health is not None or ops.ready is not None or ops.metrics is not None:
        endpoints = await ops_http.start(
            ops,
            not_ready=not_ready,
            metrics=metrics if ops.metrics is not None else None,
            healthy=lambda: all(w.exit_code is None for w in workers),
        )
    shown = "".join(f"; {name} on {where}" for name, where in (endpoints.bound if endpoints else {}).items())
    log.info(
        "ready: %d workers (pids %s) sharing %s%s",
        len(workers),
        ", ".join(str(w.pid) for w in workers),
        ", ".join(f"{', '.join(addresses)} port {port}" for (addresses, _), port in ports),
        shown,
    )
    memory = watch_memory()  # the workers share the supervisor's cgroup
    watching = loop.create_task(memory.run()) if memory is not None else None
    code = 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        for worker in _reap(workers):
            if worker.exit_code:  # exit 0: it was told to stop (e.g. the whole group got SIGTERM)
                log.error(
                    "worker %d (pid %d) exited with %d; stopping", worker.number, worker.pid, worker.exit_code
                )
                code = 1
            stop.set()
    shutting_down = True
    if watching is not None:
        watching.cancel()
    code = await _stop(workers, grace=ops.lameduck + 10) or code
    if endpoints is not None:
        await endpoints.close()
    log.info("shutting down")
    return code


def _reap(workers: list[Worker]) -> list[Worker]:
    """The workers that have exited since the last look."""
    gone = []
    for worker in workers:
        if worker.exit_code is None:
            pid, status = os.waitpid(worker.pid, os.WNOHANG)
            if pid:
                worker.exit_code = os.waitstatus_to_exitcode(status)
                gone.append(worker)
    return gone


async def _stop(workers: list[Worker], *, grace: float) -> int:
    """SIGTERM every worker, wait up to ``grace`` seconds (their lameduck), then SIGKILL; return the
    first non-zero exit code."""
    for worker in workers:
        if worker.exit_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while any(w.exit_code is None for w in workers) and loop.time() < deadline:
        await asyncio.sleep(0.1)
        _reap(workers)
    for worker in workers:
        if worker.exit_code is None:
            os.kill(worker.pid, signal.SIGKILL)
            os.waitpid(worker.pid, 0)
            worker.exit_code = -signal.SIGKILL
    return next((w.exit_code for w in workers if w.exit_code), 0)


def merge_metrics(texts: list[str]) -> bytes:
    """The workers' metrics (``texts``, by worker number) added up, sample by sample (a few gauges take
    the max or min instead); the ``process_*`` ones are each worker's, labelled ``worker`` with its
    number."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple, float]] = {}
    for number, text in enumerate(texts):
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            combine = GAUGE_MERGE.get(family.name, sum) if family.type == "gauge" else sum
            own = family.name.startswith(PER_WORKER_PREFIX)
            table = values.setdefault(family.name, {})
            for sample in family.samples:
                labels = {**sample.labels, "worker": str(number)} if own else sample.labels
                key = (sample.name, tuple(sorted(labels.items())))
                table[key] = combine((table[key], sample.value)) if key in table else sample.value
            merged.type = family.type

    class Merged:
        def collect(self) -> list[Metric]:
            out = []
            for name, family in families.items():
                for (sample_name, labels), value in values[name].items():
                    family.add_sample(sample_name, dict(labels), value)
                out.append(family)
            return out

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Merged())
    return generate_latest(registry)
