"""What answers a query later: the one protocol the exchange hands a ``PendingQuery`` to.

The forwarder implements it (names upstream, ExternalName targets outside the zones); autopath
implements it by walking a pod's search path and leaving the rest to a forwarder. Both return an
answer packed for the question; rendering it for the client (ID, flags, size, OPT) is the exchange's
``PendingQuery.reply``, and a failure, raised, becomes SERVFAIL there.
"""

from __future__ import annotations

from typing import Protocol

from kdns.wire.packed import Packed
from kdns.wire.pending import PendingQuery


class Answerer(Protocol):
    def admits(self, query: PendingQuery) -> bool:
        """Whether ``query`` may be taken on now; ``False`` past the limit of queries in flight, when
        the client gets REFUSED at once, before any task is made for it (so a flood past the limit
        costs little more than a cached answer)."""
        ...

    async def answer(self, query: PendingQuery) -> Packed:
        """The answer to ``query``'s question."""
        ...
