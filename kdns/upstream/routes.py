"""The forwarders of one listener, numbered as its blocks' forward stanzas (``Route.number``), and a
query's way along the stanzas of its block.

A pending query's packed answer names the route that takes it first (``Packed.delegate``); ``Routes``
is the ``Answerer`` that hands it to that forwarder. The forward stanzas of a block form a chain in
the order written, as CoreDNS chains them (each stanza's next plugin is the stanza after it):

- a stanza with stanzas after it hands on a query whose upstream answered one of its ``next``
  rcodes (or whose name it excepts) to the first later stanza that takes the name (the one asked
  upstream: a rewrite's, a chased CNAME target, or the question's); that stanza answers as if it had
  been first, and may hand on in turn. When no later stanza takes the name, the query is SERVFAIL:
  no plugin comes after ``forward`` in kdns, and CoreDNS's ``plugin.NextOrFailure`` answers SERVFAIL
  when there is no next plugin;
- the last stanza of a block has no forward after it, and CoreDNS hands on only to another
  ``forward``: its ``next`` is not acted on, its upstream's answer stands.

The stanzas of a block share one answer cache (``kdns.app``), as CoreDNS's ``cache`` sits in front of
the whole chain: a later stanza's answer is cached under the client's question, where the responder
looks for it next time, and a ``next`` answer handed on is never cached.
"""

from __future__ import annotations

from collections.abc import Sequence

from kdns.blocks import Route
from kdns.codes import SERVFAIL
from kdns.upstream.forward import Forwarder, PassToNext
from kdns.wire.packed import Packed, error_packed
from kdns.wire.pending import PendingQuery


class Routes:
    def __init__(self, forwarders: Sequence[Forwarder], chains: Sequence[Sequence[Route]] = ()) -> None:
        """``forwarders`` by route number (from 1); ``chains``: each block's routes, in the order
        written (a route in no chain has none after it)."""
        self.forwarders = tuple(forwarders)
        self._after: dict[int, tuple[Route, ...]] = {}  # a route's number -> the routes written after it
        for chain in chains:
            for at, route in enumerate(chain):
                self._after[route.number] = tuple(chain[at + 1 :])

    def forwarder(self, number: int) -> Forwarder:
        """The forwarder of route ``number`` (from 1)."""
        return self.forwarders[number - 1]

    def admits(self, query: PendingQuery) -> bool:
        return self.forwarder(query.route or query.packed.delegate).admits(query)

    async def answer(self, query: PendingQuery) -> Packed:
        """The answer of the route that takes ``query``, or of the later ones it is handed on to."""
        number = query.route or query.packed.delegate
        while True:  # each turn moves to a route written later in the block: bounded by the block
            after = self._after.get(number, ())
            if not after:
                return await self.forwarder(number).answer(query)
            try:
                return await self.forwarder(number).forward(query)
            except PassToNext:
                name = query.upstream_name
                route = next((route for route in after if route.takes(name)), None)
                if route is None:
                    return error_packed(SERVFAIL, recursion_available=query.recursion_available)
                query.route = number = route.number
