"""kdns serving the example cluster in this process: its real listeners on loopback (UDP and TCP, bound
as ``kdns serve`` binds them), the exchange, the responder and the forwarder a configuration builds,
on the test's own event loop. Clients ask from a thread (``asyncio.to_thread``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kdns.app import build_answering, build_forwarder
from kdns.config import ServeConfig
from kdns.transport.exchange import Exchange
from kdns.transport.listen import Listeners, listen
from kdns.upstream.answerer import Answerer
from tests.support.zone import example_zone


@asynccontextmanager
async def serving(config: ServeConfig, *, answerer: Answerer | None = None) -> AsyncIterator[Listeners]:
    """The example cluster answered as ``config`` says, by the forwarder it configures unless
    ``answerer`` stands in for it."""
    zone = example_zone()
    forwarder = build_forwarder(config)
    answering = build_answering(config, zone, forwarder)
    exchange = Exchange(answering.responder, answerer or answering.answerer, query_log=answering.query_log)
    listeners = await listen(exchange, config)
    try:
        yield listeners
    finally:
        exchange.cancel()
        await listeners.close()
        if forwarder is not None:
            forwarder.close()
