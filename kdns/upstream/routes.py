"""The forwarders of one listener, numbered as its blocks' forward stanzas (``Route.number``).

A pending query's packed answer says which route takes it (``Packed.delegate``); ``Routes`` is the
``Answerer`` that hands it to that forwarder.
"""

from __future__ import annotations

from collections.abc import Sequence

from kdns.upstream.forward import Forwarder
from kdns.wire.packed import Packed
from kdns.wire.pending import PendingQuery


class Routes:
    def __init__(self, forwarders: Sequence[Forwarder]) -> None:
        self.forwarders = tuple(forwarders)

    def forwarder(self, number: int) -> Forwarder:
        """The forwarder of route ``number`` (from 1)."""
        return self.forwarders[number - 1]

    def admits(self, query: PendingQuery) -> bool:
        return self.forwarder(query.packed.delegate).admits(query)

    async def answer(self, query: PendingQuery) -> Packed:
        return await self.forwarder(query.packed.delegate).answer(query)
