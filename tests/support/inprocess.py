"""kdns serving the example cluster in this process: its real listeners on loopback (UDP and TCP, bound
as ``kdns serve`` binds them), the exchange, the responder and the forwarders a configuration builds,
on the test's own event loop. Clients ask from a thread (``asyncio.to_thread``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kdns.app import build_answering, build_forwarders
from kdns.config import EVERY_ZONE, ForwardSettings, ServeConfig, ServerSettings
from kdns.transport.exchange import Exchange
from kdns.transport.listen import Listeners, listen
from kdns.upstream.answerer import Answerer
from tests.support.zone import example_zone


def forwarding(*forward: ForwardSettings, **server: object) -> ServeConfig:
    """One '.' block on a free port: the cluster, then the ``forward`` stanzas, in the order given."""
    block = ServerSettings(zones=EVERY_ZONE, port=0, forward=forward, **server)  # type: ignore[arg-type]
    return ServeConfig(servers=(block,))


@asynccontextmanager
async def serving(config: ServeConfig, *, answerer: Answerer | None = None) -> AsyncIterator[Listeners]:
    """The example cluster answered as ``config``'s one listener says, by the forwarders it
    configures unless ``answerer`` stands in for them."""
    zone = example_zone()
    ((addresses, port), servers), *_ = config.listeners.items()
    forwarders = build_forwarders(config)
    answering = build_answering(config, servers, zone, forwarders)
    exchange = Exchange(answering.responder, answerer or answering.answerer, query_log=answering.query_log)
    listeners = await listen(exchange, config, addresses, port)
    try:
        yield listeners
    finally:
        exchange.cancel()
        await listeners.close()
        for forwarder in forwarders.values():
            forwarder.close()
