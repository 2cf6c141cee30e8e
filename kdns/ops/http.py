"""HTTP beside DNS, as CoreDNS serves it: ``GET /health`` (liveness), ``GET /ready`` (readiness: 200 once
the zone is synced, 503 before and while shutting down) and ``GET /metrics`` (Prometheus).

Each endpoint listens where the configuration says ("HOST:PORT"; ":8080" means every interface);
endpoints given the same address share one listener.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from kdns.config import HEALTH_PORT, METRICS_PORT, READY_PORT, OpsSettings, split_address


@dataclass
class Endpoints:
    """The running HTTP listeners and where each endpoint ended up ("health" -> "127.0.0.1:8080")."""

    runners: list[web.AppRunner] = field(default_factory=list)
    bound: dict[str, str] = field(default_factory=dict)

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def exposition(registry: CollectorRegistry) -> Callable[[], Awaitable[bytes]]:
    """The text of ``registry``, made on a thread (a large answer cache takes a while to count)."""

    async def render() -> bytes:
        return await asyncio.get_running_loop().run_in_executor(None, generate_latest, registry)

    return render


async def start(
    ops: OpsSettings,
    *,
    not_ready: Callable[[], Awaitable[list[str]]],
    metrics: Callable[[], Awaitable[bytes]] | None,
    healthy: Callable[[], bool] = lambda: True,
) -> Endpoints:
    """Start the configured endpoints; ``not_ready`` names what is not ready yet (empty: ready)."""

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="OK") if healthy() else web.Response(status=503, text="a worker stopped")

    async def ready(request: web.Request) -> web.Response:
        waiting = await not_ready()
        if waiting:
            return web.Response(status=503, text="\n".join(waiting))
        return web.Response(text="OK")

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=await metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    wanted = [
        ("health", ops.health, HEALTH_PORT, "/health", health),
        ("ready", ops.ready, READY_PORT, "/ready", ready),
        ("metrics", ops.metrics if metrics is not None else None, METRICS_PORT, "/metrics", scrape),
    ]
    apps: dict[tuple[str | None, int], tuple[web.Application, list[str]]] = {}
    for name, address, default_port, path, handler in wanted:
        if address is None:
            continue
        where = split_address(address, default_port)
        app, names = apps.setdefault(where, (web.Application(), []))
        app.router.add_get(path, handler)
        names.append(name)
    endpoints = Endpoints()
    try:
        for (host, port), (app, names) in apps.items():
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            endpoints.runners.append(runner)
            site = web.TCPSite(runner, host, port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"cannot listen on {host or '*'} port {port}/TCP for "
                    f"{' and '.join(names)}: {exc.strerror}",
                ) from None
            shown = f"{host or '*'}:{runner.addresses[-1][1]}"
            for name in names:
                endpoints.bound[name] = shown
    except BaseException:
        await endpoints.close()
        raise
    return endpoints
